/** etcd's own health for status and health: the member probe of `xcluster etcd health` (src/lib/etcd/maintenance.ts), summed up. */
import {inspectEtcdCluster} from '../etcd/maintenance.js'
import type {EtcdStore} from '../etcd/store.js'
import type {EtcdStatus} from './types.js'

const usesTls = (store: EtcdStore): boolean => Boolean(store.connection.ca || store.connection.cert) || store.connection.endpoints.some((e) => e.startsWith('https://'))

/** Every member's status, the leader and whether a quorum of voting members is healthy. */
export async function probeEtcd(store: EtcdStore): Promise<EtcdStatus> {
  const state = await inspectEtcdCluster(store.connection)
  const sizes = state.members.map((m) => m.dbSize).filter((n): n is number => n !== null)
  return {
    endpoints: store.connection.endpoints,
    tls: usesTls(store),
    members: state.members,
    leader: state.leader,
    quorum: {members: state.voters, healthy: state.healthyVoters, needed: Math.floor(state.voters / 2) + 1, ok: state.quorum},
    dbSize: sizes.length > 0 ? Math.max(...sizes) : null,
  }
}
