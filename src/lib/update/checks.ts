/** A rolling update's checks against the live cluster: etcd (nodes, elections, the raft leader) and, for storage nodes, Ceph. */
import {CephCli, DEFAULT_CEPH_BACKEND, type CephBackend} from '../ceph/cli.js'
import {osdsOkToStop, osdsOnNode} from '../ceph/osd.js'
import {listElections, type ElectionState} from '../election/state.js'
import type {EtcdStore} from '../etcd/store.js'
import {probeEtcd} from '../health/etcd-members.js'
import type {NodeRecord} from '../nodes/record.js'
import {NodeRegistry} from '../nodes/registry.js'
import type {ClusterSpec} from '../spec/types.js'
import type {SshHost} from '../ssh/index.js'
import {candidatesCheck, quorumCheck, type BatchCheck, type Leadership, type UpdateBatch} from './plan.js'

/** What the checks read from etcd, at the time of the check. */
export interface ClusterReads {
  nodes: NodeRecord[]
  elections: ElectionState[]
}

export async function readCluster(store: EtcdStore, spec: ClusterSpec): Promise<ClusterReads> {
  const [nodes, elections] = await Promise.all([new NodeRegistry(store).list(), listElections(store, spec)])
  return {nodes, elections}
}

/** Who leads what now; the etcd leader is unknown (undefined) when etcd cannot say. */
export async function readLeadership(store: EtcdStore, elections: readonly ElectionState[]): Promise<Leadership> {
  const leads = new Map<string, string[]>()
  for (const e of elections) if (e.leader) leads.set(e.leader, [...(leads.get(e.leader) ?? []), e.service])
  let etcdLeader: string | undefined
  try {
    etcdLeader = (await probeEtcd(store)).members.find((m) => m.isLeader)?.name
  } catch {
    // The order is a preference: without the raft leader it still puts election leaders last.
  }
  return {etcdLeader, leads}
}

/**
 * Ceph's `ok-to-stop` for the OSDs of the batch's storage nodes, asked on one of them. Skipped
 * where no storage node of the batch has OSDs (no Ceph there).
 */
export async function cephCheck(batch: readonly NodeRecord[], sshOf: (node: string) => Promise<SshHost>, backend: CephBackend): Promise<BatchCheck> {
  const storage = batch.filter((n) => n.type === 'storage')
  if (storage.length === 0) return {check: 'ceph', status: 'skipped', observed: 'no storage node in the batch'}
  const osds: number[] = []
  let asker: CephCli | undefined
  for (const node of storage) {
    const cli = new CephCli(await sshOf(node.name), backend)
    const ids = await osdsOnNode(cli, node.name)
    if (ids.length > 0) asker ??= cli
    osds.push(...ids)
  }
  if (!asker) return {check: 'ceph', status: 'skipped', observed: `no Ceph OSD on ${storage.map((n) => n.name).join(', ')}`}
  const verdict = await osdsOkToStop(asker, osds)
  const observed = `ceph osd ok-to-stop ${osds.join(' ')}: ${verdict.message || (verdict.ok ? 'ok' : 'refused')}`
  if (verdict.ok) return {check: 'ceph', status: 'ok', observed}
  return {check: 'ceph', status: 'refused', observed, fix: 'Wait until Ceph is healthy (ceph -s: every PG active+clean), or update fewer storage nodes at once (--serial 1)'}
}

/** Every check of one batch against what was read now. */
export async function checkBatch(index: number, batch: readonly string[], spec: ClusterSpec, reads: ClusterReads, sshOf: (node: string) => Promise<SshHost>): Promise<UpdateBatch> {
  const records = batch.map((name) => reads.nodes.find((n) => n.name === name)).filter((n): n is NodeRecord => n !== undefined)
  return {
    index,
    nodes: [...batch],
    checks: [quorumCheck(batch, reads.nodes), candidatesCheck(batch, reads.elections, spec, reads.nodes), await cephCheck(records, sshOf, spec.ceph?.backend ?? DEFAULT_CEPH_BACKEND)],
  }
}
