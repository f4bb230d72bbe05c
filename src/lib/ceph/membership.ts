import type {EtcdStore} from '../etcd/store.js'
import type {CephBackend} from './cli.js'

/**
 * The Ceph cluster xcluster formed, as etcd records it (keys.cephCluster): which backend, its
 * fsid and the nodes that run a monitor (each with a manager). No key is kept here: the
 * keyrings live on the members, and a join copies them node to node over SSH.
 */
export interface CephClusterRecord {
  backend: CephBackend
  fsid: string
  /** Monitor nodes in the order they joined; the first bootstrapped the cluster. */
  mons: string[]
  bootstrappedAt: string
  updatedAt: string
}

export async function readCephCluster(store: EtcdStore): Promise<CephClusterRecord | undefined> {
  return (await store.getJson<CephClusterRecord>(store.keys.cephCluster()))?.value
}

/** Records a bootstrap: create-only, so two bootstraps can never both be recorded. Returns whether it wrote. */
export async function recordBootstrap(store: EtcdStore, backend: CephBackend, fsid: string, node: string): Promise<boolean> {
  const now = new Date().toISOString()
  const record: CephClusterRecord = {backend, fsid, mons: [node], bootstrappedAt: now, updatedAt: now}
  return store.transaction().ifAbsent(store.keys.cephCluster()).put(store.keys.cephCluster(), record).commit()
}

/** Adds a monitor node, in one transaction against the record as read (a concurrent join is read again). */
export async function recordMon(store: EtcdStore, node: string): Promise<boolean> {
  for (;;) {
    const current = await store.getJson<CephClusterRecord>(store.keys.cephCluster())
    if (!current) throw new Error('the Ceph cluster record vanished during the join')
    if (current.value.mons.includes(node)) return false
    const next: CephClusterRecord = {...current.value, mons: [...current.value.mons, node], updatedAt: new Date().toISOString()}
    if (await store.transaction().ifUnchanged(current.key, current.modRevision).put(current.key, next).commit()) return true
  }
}

/** Takes a monitor node out (`ceph leave`), in one transaction against the record as read, like recordMon. Returns whether it wrote. */
export async function recordMonLeft(store: EtcdStore, node: string): Promise<boolean> {
  for (;;) {
    const current = await store.getJson<CephClusterRecord>(store.keys.cephCluster())
    if (!current) throw new Error('the Ceph cluster record vanished during the leave')
    if (!current.value.mons.includes(node)) return false
    const next: CephClusterRecord = {...current.value, mons: current.value.mons.filter((m) => m !== node), updatedAt: new Date().toISOString()}
    if (await store.transaction().ifUnchanged(current.key, current.modRevision).put(current.key, next).commit()) return true
  }
}
