import type {EtcdStore} from '../etcd/store.js'
import {readClusterSnapshot} from '../health/snapshot.js'
import type {HostKeyRecord} from '../ssh/host-key-store.js'
import {buildInventory, type AnsibleInventory, type InventoryAccess} from './inventory.js'

/** The inventory as of one etcd revision, with what else that read brought. */
export interface InventoryRead {
  inventory: AnsibleInventory
  revision: string
  /** Nodes whose records say removed: left out of the inventory, named in `--host`'s error. */
  removed: string[]
  /** Pinned host keys by node name (only when asked for). */
  pins: Map<string, HostKeyRecord>
}

/**
 * Reads the spec, the nodes, the leases (and with `pins`, the host-key pins) in a few paged range
 * reads at one revision, however many nodes (the reader `status` and `health` share), and builds
 * the inventory from them.
 */
export async function readInventory(store: EtcdStore, access: InventoryAccess, options: {pins?: boolean; now?: number} = {}): Promise<InventoryRead> {
  const snapshot = await readClusterSnapshot(store, {hostKeys: options.pins === true})
  const inventory = buildInventory({spec: snapshot.spec, nodes: snapshot.nodes, leases: snapshot.leases, now: options.now ?? Date.now()}, access, store.keys.cluster)
  return {
    inventory,
    revision: snapshot.revision,
    removed: snapshot.nodes.filter((n) => n.state === 'removed').map((n) => n.name),
    pins: snapshot.hostKeys,
  }
}
