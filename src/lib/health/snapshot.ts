import type {Lease} from '../dhcp/lease.js'
import type {EtcdStore, StoredKv} from '../etcd/store.js'
import type {NodeRecord} from '../nodes/record.js'
import type {HostKeyRecord} from '../ssh/index.js'
import type {ClusterSpec} from '../spec/types.js'
import {readClusterView} from '../spec/view.js'
import {certificateState, type CertificateState} from './certs.js'
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
  /** The CA, issued certificates and CRL, by expiry (no key, sealed or not). */
  certificates: CertificateState
}

const parse = <T>(kv: StoredKv): T | undefined => {
  try {
    return JSON.parse(kv.value.toString()) as T
  } catch {
    return undefined // not ours to interpret: skipped, not a crash of the report
  }
}

/**
 * One read at one revision (a consistent picture) of the spec, the nodes as readers must see them
 * (src/lib/spec/view.ts), leases and runs: one round trip for the first page of every prefix,
 * then one per further page of the largest, whatever the number of nodes: never a read per node.
 */
export async function readClusterSnapshot(store: EtcdStore, options: {hostKeys?: boolean} = {}): Promise<ClusterSnapshot> {
  const k = store.keys
  const view = await readClusterView(store, {spec: 'always', nodes: 'all', extra: [k.leasesPrefix(), k.runsPrefix(), k.certsPrefix(), ...(options.hostKeys ? [k.hostKeysPrefix()] : [])]})
  const [leases = [], runs = [], certs = [], pins = []] = view.extra
  const hostKeys = new Map<string, HostKeyRecord>()
  for (const kv of pins) {
    const pin = parse<HostKeyRecord>(kv)
    if (pin) hostKeys.set(kv.key.slice(k.hostKeysPrefix().length), pin)
  }
  return {
    revision: view.revision,
    spec: view.spec,
    nodes: view.nodes,
    leases: rows<Lease>(leases),
    runs: rows<RunRecord>(runs),
    hostKeys,
    certificates: certificateState(
      k,
      certs.map((kv) => ({key: kv.key, value: parse<unknown>(kv)})),
    ),
  }
}

function rows<T>(kvs: StoredKv[]): T[] {
  return kvs.map((kv) => parse<T>(kv)).filter((v): v is Awaited<T> & T => v !== undefined)
}
