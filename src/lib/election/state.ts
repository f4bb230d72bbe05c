/** Reading elections: one consistent read per service, the list, the history. */
import {usageError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {readStoredSpecIfAny} from '../spec/store.js'
import type {ClusterSpec} from '../spec/types.js'
import type {CandidateRecord, HandoverRequest, HistoryEntry, LeaderRecord, ViewRecord} from './records.js'

export interface ElectionState {
  service: string
  leader: string | null
  /** The fencing token: the leader key's create revision. */
  token: string | null
  since: string | null
  /** Seconds left on the leader's lease as etcd counts them. */
  ttlLeft: number | null
  candidates: string[]
  views: ViewRecord[]
  handover: HandoverRequest | null
}

/** Every service in the spec, plus any with election keys in etcd (e.g. removed from the spec). */
export async function serviceNames(store: EtcdStore, spec: ClusterSpec | undefined): Promise<string[]> {
  const {reads} = await store.transaction().getPrefix(store.keys.electionsPrefix(), {keysOnly: true}).commitAt()
  const keys = (reads[0] ?? []).map((kv) => kv.key)
  const names = new Set((spec?.services ?? []).map((s) => s.name))
  for (const key of keys) names.add(store.keys.serviceFromElectionKey(key))
  return [...names].filter(Boolean).sort()
}

/** One consistent read (a single transaction) of a service's election. */
export async function readElection(store: EtcdStore, service: string): Promise<ElectionState> {
  const k = store.keys
  const {reads} = await store
    .transaction()
    .get(k.electionLeader(service))
    .getPrefix(k.electionCandidatesPrefix(service))
    .getPrefix(k.electionViewsPrefix(service))
    .get(k.electionHandover(service))
    .commitAt()
  const [leaderReads = [], candidates = [], views = [], handovers = []] = reads
  const leaderKv = leaderReads[0]
  const leader = leaderKv?.value as LeaderRecord | undefined
  const ttlLeft = leaderKv && leaderKv.lease !== '0' ? await store.leaseTtl(leaderKv.lease) : null
  return {
    service,
    leader: leader?.node ?? null,
    token: leaderKv?.createRevision ?? null,
    since: leader?.since ?? null,
    ttlLeft,
    candidates: candidates.map((kv) => (kv.value as CandidateRecord).node),
    views: views.map((kv) => kv.value as ViewRecord),
    handover: (handovers[0]?.value as HandoverRequest | undefined) ?? null,
  }
}

export async function listElections(store: EtcdStore, spec: ClusterSpec | undefined): Promise<ElectionState[]> {
  const names = await serviceNames(store, spec)
  return Promise.all(names.map((n) => readElection(store, n)))
}

/** Fails with a usage error when the service is neither in the spec nor in etcd. */
export async function requireService(store: EtcdStore, spec: ClusterSpec | undefined, service: string): Promise<void> {
  const names = await serviceNames(store, spec)
  if (!names.includes(service)) {
    throw usageError(`No service "${service}" in the spec or in etcd.`, names.length > 0 ? `Known services: ${names.join(', ')}.` : 'Declare it under services: in xcluster.yaml and run config apply.')
  }
}

/** Leadership changes, oldest first. */
export async function electionHistory(store: EtcdStore, service: string): Promise<HistoryEntry[]> {
  const rows = await store.listJson<HistoryEntry>(store.keys.electionHistoryPrefix(service))
  return rows.map((r) => r.value)
}

/** The stored spec when there is one: listing elections works without it. */
export async function storedSpecIfAny(store: EtcdStore): Promise<ClusterSpec | undefined> {
  return readStoredSpecIfAny(store)
}
