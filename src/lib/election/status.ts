import type {RbdLockHolder} from '../ceph/rbd.js'
import {ExitStatus, preconditionError, usageError, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {settings} from '../settings.js'
import type {ClusterSpec, ServiceSpec} from '../spec/types.js'
import {guardedWrite} from './fence.js'
import type {CandidateRecord, HandoverRequest, HistoryEntry, LeaderRecord, ViewRecord} from './records.js'
import {kvsOf, prefixRangeOp, rangeOp, txn} from './txn.js'

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
  const keys = await store.call('list elections', (c) => c.getAll().prefix(store.keys.electionsPrefix()).keys())
  const names = new Set((spec?.services ?? []).map((s) => s.name))
  for (const key of keys) names.add(store.keys.serviceFromElectionKey(key))
  return [...names].filter(Boolean).sort()
}

/** One consistent read (a single transaction) of a service's election. */
export async function readElection(store: EtcdStore, service: string): Promise<ElectionState> {
  const k = store.keys
  const res = await store.call('read election', (c) =>
    txn(c, {
      compare: [],
      success: [rangeOp(k.electionLeader(service)), prefixRangeOp(k.electionCandidatesPrefix(service)), prefixRangeOp(k.electionViewsPrefix(service)), rangeOp(k.electionHandover(service))],
    }),
  )
  const leaderKv = kvsOf(res, 0)[0]
  const leader = leaderKv?.value as LeaderRecord | undefined
  let ttlLeft: number | null = null
  if (leaderKv && leaderKv.lease !== '0') {
    // Short deadlines: a call that lands on a cut-off member is retried on another one.
    const ttl = await store.call('lease TTL', (c) => c.leaseClient.leaseTimeToLive({ID: leaderKv.lease}, {deadline: Date.now() + settings.election.callTimeoutMs}))
    ttlLeft = Number(ttl.TTL) >= 0 ? Number(ttl.TTL) : null
  }
  return {
    service,
    leader: leader?.node ?? null,
    token: leaderKv?.createRevision ?? null,
    since: leader?.since ?? null,
    ttlLeft,
    candidates: kvsOf(res, 1).map((kv) => (kv.value as CandidateRecord).node),
    views: kvsOf(res, 2).map((kv) => kv.value as ViewRecord),
    handover: (kvsOf(res, 3)[0]?.value as HandoverRequest | undefined) ?? null,
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
    throw usageError(
      `No service "${service}" in the spec or in etcd.`,
      names.length > 0 ? `Known services: ${names.join(', ')}.` : 'Declare it under services: in xcluster.yaml and run config apply.',
    )
  }
}

/** Leadership changes, oldest first. */
export async function electionHistory(store: EtcdStore, service: string): Promise<HistoryEntry[]> {
  const rows = await store.listJson<HistoryEntry>(store.keys.electionHistoryPrefix(service))
  return rows.map((r) => r.value)
}

export interface HandoverResult {
  service: string
  from: {node: string; token: string}
  to: {node: string; token: string} | null
  /** Milliseconds from the request until the new leader held the seat. */
  ms: number
}

/**
 * Asks the current leader to resign (`to` null) or to hand over to `to`, and waits until a new
 * leader holds the seat. The request is written guarded by the leader's token, so it can only
 * address the leadership that was read.
 */
export async function requestHandover(store: EtcdStore, service: string, to: string | null, timeoutMs: number = settings.election.handoverTimeoutMs): Promise<HandoverResult> {
  const state = await readElection(store, service)
  if (!state.leader || !state.token) {
    throw preconditionError('NO_LEADER', `Service "${service}" has no leader right now.`, 'Check that xcluster serve --elect runs on its nodes: xcluster election list.')
  }
  const from = {node: state.leader, token: state.token}
  if (to !== null) {
    if (to === state.leader) return {service, from, to: from, ms: 0}
    if (!state.candidates.includes(to)) {
      throw preconditionError(
        'NOT_A_CANDIDATE',
        `Node "${to}" is not campaigning for "${service}" (candidates: ${state.candidates.join(', ') || 'none'}).`,
        `Start xcluster serve --elect ${service} on ${to}, or pick one of the candidates.`,
      )
    }
  }
  const started = Date.now()
  const request: HandoverRequest = {token: state.token, from: state.leader, to, requestedAt: new Date().toISOString(), until: started + timeoutMs}
  const written = await guardedWrite(store, service, state.token, [{kind: 'put', key: store.keys.electionHandover(service), value: request}])
  if (!written) {
    throw new XclusterError(`Leadership of "${service}" changed while the request was being made.`, {
      code: 'LEADER_CHANGED',
      exit: ExitStatus.failure,
      suggestion: 'Look at xcluster election list and try again.',
    })
  }
  for (;;) {
    const now = await readElection(store, service)
    if (now.token && now.token !== state.token && (to === null || now.leader === to)) {
      return {service, from, to: {node: now.leader as string, token: now.token}, ms: Date.now() - started}
    }
    if (Date.now() - started > timeoutMs) {
      throw new XclusterError(`No new leader for "${service}" within ${timeoutMs} ms (leader now: ${now.leader ?? 'none'}).`, {
        code: 'HANDOVER_TIMEOUT',
        exit: ExitStatus.failure,
        suggestion: 'Check the daemons\' logs; the request lapses on its own.',
      })
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}

export type VipHolders = (address: string) => Promise<string[]>
/** The holders of an RBD image's locks, or null when they cannot be read from here. */
export type RbdHolders = (image: string) => Promise<RbdLockHolder[] | null>

export interface Disagreement {
  service: string
  kind: 'multiple-leaders' | 'leader-mismatch' | 'leader-without-view' | 'stale-view' | 'vip-not-on-leader' | 'vip-on-several-nodes' | 'rbd-lock-not-on-leader' | 'rbd-lock-several'
  nodes: string[]
  message: string
}

export interface CheckResult {
  ok: boolean
  services: {service: string; leader: string | null; token: string | null; believers: string[]; vipHolders: string[] | null; rbdHolders: {node: string | null; token: string | null; lock: string}[] | null}[]
  disagreements: Disagreement[]
}

/** Every way the published views, etcd's leader key and the VIP can disagree, for one sample. */
function disagreements(state: ElectionState, service: ServiceSpec | undefined, vipHolders: string[] | null, rbdHolders: RbdLockHolder[] | null): Disagreement[] {
  const out: Disagreement[] = []
  const s = state.service
  const believers = state.views.filter((v) => v.believesLeader)
  if (believers.length > 1) {
    out.push({service: s, kind: 'multiple-leaders', nodes: believers.map((v) => v.node), message: `${believers.map((v) => `${v.node} (token ${v.token})`).join(' and ')} each believe they lead ${s}`})
  }
  for (const v of believers) {
    if (v.node !== state.leader || v.token !== state.token) {
      out.push({service: s, kind: 'leader-mismatch', nodes: [v.node, ...(state.leader ? [state.leader] : [])], message: `${v.node} believes it leads ${s} with token ${v.token}, but etcd's leader is ${state.leader ?? 'nobody'} (token ${state.token ?? '-'})`})
    }
  }
  if (state.leader && !believers.some((v) => v.node === state.leader)) {
    out.push({service: s, kind: 'leader-without-view', nodes: [state.leader], message: `etcd says ${state.leader} leads ${s} (token ${state.token}), but its daemon does not claim it`})
  }
  for (const v of state.views.filter((x) => !x.believesLeader)) {
    if (state.leader && (v.leader !== state.leader || v.token !== state.token)) {
      out.push({service: s, kind: 'stale-view', nodes: [v.node], message: `${v.node} believes ${v.leader ?? 'nobody'} (token ${v.token ?? '-'}) leads ${s}, but etcd says ${state.leader} (token ${state.token})`})
    }
  }
  if (service?.vip && vipHolders) {
    if (vipHolders.length > 1) {
      out.push({service: s, kind: 'vip-on-several-nodes', nodes: vipHolders, message: `the VIP ${service.vip} of ${s} is on ${vipHolders.join(' and ')} at once`})
    } else if (state.leader && vipHolders[0] !== state.leader) {
      out.push({service: s, kind: 'vip-not-on-leader', nodes: [...vipHolders, state.leader], message: `the VIP ${service.vip} of ${s} is on ${vipHolders[0] ?? 'no node'}, but ${state.leader} leads`})
    }
  }
  if (service?.rbdImage && rbdHolders) out.push(...rbdDisagreements(state, service.rbdImage, rbdHolders))
  return out
}

/** The image's lock must be held by the leader's current leadership, and by nobody else. */
function rbdDisagreements(state: ElectionState, image: string, holders: RbdLockHolder[]): Disagreement[] {
  const s = state.service
  const who = (h: RbdLockHolder) => (h.node ? `${h.node} (token ${h.token})` : `${h.lock.locker} (lock "${h.lock.id}")`)
  const nodes = (hs: RbdLockHolder[]) => hs.map((h) => h.node ?? h.lock.locker)
  if (holders.length > 1) {
    return [{service: s, kind: 'rbd-lock-several', nodes: nodes(holders), message: `${image} of ${s} is locked by ${holders.map(who).join(' and ')} at once`}]
  }
  const [holder] = holders
  if (!state.leader) {
    return holder ? [{service: s, kind: 'rbd-lock-not-on-leader', nodes: nodes(holders), message: `${image} of ${s} is locked by ${who(holder)}, but nobody leads`}] : []
  }
  if (!holder) return [{service: s, kind: 'rbd-lock-not-on-leader', nodes: [state.leader], message: `${state.leader} leads ${s} (token ${state.token}), but ${image} is not locked`}]
  if (holder.node !== state.leader || holder.token !== state.token) {
    return [{service: s, kind: 'rbd-lock-not-on-leader', nodes: [...nodes(holders), state.leader], message: `${image} of ${s} is locked by ${who(holder)}, but ${state.leader} leads with token ${state.token}`}]
  }
  return []
}

const fingerprint = (d: Disagreement): string => `${d.service}|${d.kind}|${[...d.nodes].sort().join(',')}`

/**
 * Split-brain detection: compares every daemon's published view with etcd's leader key, the
 * VIP holder and the holder of the service's RBD image lock. A handover in flight looks like a disagreement for a few milliseconds, so a
 * second sample is taken and only what persists in both is reported.
 */
export async function checkElections(
  store: EtcdStore,
  spec: ClusterSpec | undefined,
  probes: {vipHolders?: VipHolders; rbdHolders?: RbdHolders} = {},
  resampleMs: number = settings.election.checkResampleMs,
): Promise<CheckResult> {
  const {vipHolders, rbdHolders} = probes
  const sample = async () => {
    const states = await listElections(store, spec)
    return Promise.all(
      states.map(async (state) => {
        const service = spec?.services?.find((x) => x.name === state.service)
        const holders = service?.vip && vipHolders ? await vipHolders(service.vip) : null
        const locks = service?.rbdImage && rbdHolders ? await rbdHolders(service.rbdImage) : null
        return {state, holders, locks, found: disagreements(state, service, holders, locks)}
      }),
    )
  }
  const first = await sample()
  if (first.every((r) => r.found.length === 0)) return summarize(first, [])
  await new Promise((r) => setTimeout(r, resampleMs))
  const second = await sample()
  const before = new Set(first.flatMap((r) => r.found.map(fingerprint)))
  return summarize(second, second.flatMap((r) => r.found).filter((d) => before.has(fingerprint(d))))
}

function summarize(rows: {state: ElectionState; holders: string[] | null; locks: RbdLockHolder[] | null}[], found: Disagreement[]): CheckResult {
  return {
    ok: found.length === 0,
    services: rows.map(({state, holders, locks}) => ({
      service: state.service,
      leader: state.leader,
      token: state.token,
      believers: state.views.filter((v) => v.believesLeader).map((v) => v.node),
      vipHolders: holders,
      rbdHolders: locks?.map((h) => ({node: h.node, token: h.token, lock: h.lock.id})) ?? null,
    })),
    disagreements: found,
  }
}

/** The stored spec when there is one: listing elections works without it. */
export async function storedSpecIfAny(store: EtcdStore): Promise<ClusterSpec | undefined> {
  return (await store.getJson<ClusterSpec>(store.keys.spec()))?.value
}
