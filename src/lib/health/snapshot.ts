import type {Lease} from '../dhcp/lease.js'
import type {EtcdStore, StoredKv} from '../etcd/store.js'
import type {NodeRecord} from '../nodes/record.js'
import type {HostKeyRecord} from '../ssh/index.js'
import type {ClusterSpec} from '../spec/types.js'
import type {RunRecord} from '../tasks/journal.js'

/** The cluster's keys a status or health report needs, read together. */
export interface ClusterSnapshot {
  revision: string
  spec: ClusterSpec | undefined
  nodes: NodeRecord[]
  leases: Lease[]
  runs: RunRecord[]
  /** Pinned host keys by node name (read only when asked: SSH checks). */
  hostKeys: Map<string, HostKeyRecord>
}

const parse = <T>(kv: StoredKv): T | undefined => {
  try {
    return JSON.parse(kv.value.toString()) as T
  } catch {
    return undefined // not ours to interpret: skipped, not a crash of the report
  }
}

/**
 * One paged range read per prefix, all at one revision (a consistent picture), whatever the
 * number of nodes: never a read per node. 1,000 nodes are two pages of `nodes/`.
 */
export async function readClusterSnapshot(store: EtcdStore, options: {hostKeys?: boolean} = {}): Promise<ClusterSnapshot> {
  const k = store.keys
  const prefixes = [k.spec(), k.nodesPrefix(), k.leasesPrefix(), k.runsPrefix(), ...(options.hostKeys ? [k.hostKeysPrefix()] : [])]
  const empty = (): ClusterSnapshot => ({revision: '0', spec: undefined, nodes: [], leases: [], runs: [], hostKeys: new Map()})
  let snapshot = empty()
  const revision = await store.readPrefixes(
    prefixes,
    (page) => {
      for (const kv of page) {
        if (kv.key === k.spec()) snapshot.spec = parse<ClusterSpec>(kv)
        else if (kv.key.startsWith(k.nodesPrefix())) push(snapshot.nodes, parse<NodeRecord>(kv))
        else if (kv.key.startsWith(k.leasesPrefix())) push(snapshot.leases, parse<Lease>(kv))
        else if (kv.key.startsWith(k.runsPrefix())) push(snapshot.runs, parse<RunRecord>(kv))
        else if (kv.key.startsWith(k.hostKeysPrefix())) {
          const pin = parse<HostKeyRecord>(kv)
          if (pin) snapshot.hostKeys.set(kv.key.slice(k.hostKeysPrefix().length), pin)
        }
      }
    },
    () => (snapshot = empty()),
  )
  return {...snapshot, revision}
}

function push<T>(rows: T[], value: T | undefined): void {
  if (value !== undefined) rows.push(value)
}
