/** Split-brain detection: every daemon's view against etcd, the VIP holder and the RBD lock holder. */
import {isManagedLock, type RbdLockHolder} from '../ceph/rbd.js'
import type {EtcdStore} from '../etcd/store.js'
import {settings} from '../settings.js'
import type {ClusterSpec, ServiceSpec} from '../spec/types.js'
import type {RbdFenceRecord} from './records.js'
import {listElections, type ElectionState} from './state.js'

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
  services: {
    service: string
    leader: string | null
    token: string | null
    believers: string[]
    vipHolders: string[] | null
    /** Who holds the image's locks: the client (locker, address) and, when it is a leadership's, its node and token. */
    rbdHolders: {node: string | null; token: string | null; lock: string; locker: string; address: string}[] | null
    /** The latest fence of the image: which leadership, what it blocklisted, the client it recorded as its own. */
    rbdFence: {token: string; node: string; blocklisted: string[]; holder: string | null} | null
  }[]
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
      out.push({
        service: s,
        kind: 'leader-mismatch',
        nodes: [v.node, ...(state.leader ? [state.leader] : [])],
        message: `${v.node} believes it leads ${s} with token ${v.token}, but etcd's leader is ${state.leader ?? 'nobody'} (token ${state.token ?? '-'})`,
      })
    }
  }
  if (state.leader && !believers.some((v) => v.node === state.leader)) {
    out.push({service: s, kind: 'leader-without-view', nodes: [state.leader], message: `etcd says ${state.leader} leads ${s} (token ${state.token}), but its daemon does not claim it`})
  }
  for (const v of state.views.filter((x) => !x.believesLeader)) {
    if (state.leader && (v.leader !== state.leader || v.token !== state.token)) {
      out.push({
        service: s,
        kind: 'stale-view',
        nodes: [v.node],
        message: `${v.node} believes ${v.leader ?? 'nobody'} (token ${v.token ?? '-'}) leads ${s}, but etcd says ${state.leader} (token ${state.token})`,
      })
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

/**
 * Names the leadership behind each lock: librbd's own lock (`auto ...`, the service's mapping) is
 * the leader's when its client is the one the leader's fence record names; an old advisory lock
 * carries node and token in its id.
 */
export function attributeRbdHolders(holders: RbdLockHolder[], fence: RbdFenceRecord | undefined): RbdLockHolder[] {
  return holders.map((h) =>
    isManagedLock(h.lock) && fence?.holder && fence.holder.address === h.lock.address && fence.holder.locker === h.lock.locker ? {...h, node: fence.node, token: fence.token} : h,
  )
}

/**
 * The image's locks with the leadership behind each named, from the fence record of the service
 * the spec gives that image (`ceph lock list`): the same attribution `election check` makes.
 */
export async function attributeImageLocks(store: EtcdStore, spec: ClusterSpec | undefined, image: string, holders: RbdLockHolder[]): Promise<RbdLockHolder[]> {
  const service = spec?.services?.find((s) => s.rbdImage === image)
  if (!service) return holders
  return attributeRbdHolders(holders, (await store.getJson<RbdFenceRecord>(store.keys.electionFence(service.name)))?.value)
}

/** The image's lock must be held by the leader's current leadership, and by nobody else. */
function rbdDisagreements(state: ElectionState, image: string, holders: RbdLockHolder[]): Disagreement[] {
  const s = state.service
  const who = (h: RbdLockHolder) => (h.node ? `${h.node} (token ${h.token})` : `${h.lock.locker} at ${h.lock.address} (lock "${h.lock.id}")`)
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
    return [
      {
        service: s,
        kind: 'rbd-lock-not-on-leader',
        nodes: [...nodes(holders), state.leader],
        message: `${image} of ${s} is locked by ${who(holder)}, but ${state.leader} leads with token ${state.token}`,
      },
    ]
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
  return (await sampleElections(store, spec, probes, resampleMs)).result
}

/** checkElections, with the elections as its last sample read them (status shows both: one read). */
export async function sampleElections(
  store: EtcdStore,
  spec: ClusterSpec | undefined,
  probes: {vipHolders?: VipHolders; rbdHolders?: RbdHolders} = {},
  resampleMs: number = settings.election.checkResampleMs,
): Promise<{result: CheckResult; states: ElectionState[]}> {
  const {vipHolders, rbdHolders} = probes
  const sample = async () => {
    const states = await listElections(store, spec)
    return Promise.all(
      states.map(async (state) => {
        const service = spec?.services?.find((x) => x.name === state.service)
        const holders = service?.vip && vipHolders ? await vipHolders(service.vip) : null
        const fence = service?.rbdImage ? (await store.getJson<RbdFenceRecord>(store.keys.electionFence(state.service)))?.value : undefined
        const raw = service?.rbdImage && rbdHolders ? await rbdHolders(service.rbdImage) : null
        const locks = raw ? attributeRbdHolders(raw, fence) : null
        return {state, holders, locks, fence, found: disagreements(state, service, holders, locks)}
      }),
    )
  }
  const first = await sample()
  if (first.every((r) => r.found.length === 0)) return {result: summarize(first, []), states: first.map((r) => r.state)}
  await new Promise((r) => setTimeout(r, resampleMs))
  const second = await sample()
  const before = new Set(first.flatMap((r) => r.found.map(fingerprint)))
  const found = second.flatMap((r) => r.found).filter((d) => before.has(fingerprint(d)))
  return {result: summarize(second, found), states: second.map((r) => r.state)}
}

function summarize(rows: {state: ElectionState; holders: string[] | null; locks: RbdLockHolder[] | null; fence: RbdFenceRecord | undefined}[], found: Disagreement[]): CheckResult {
  return {
    ok: found.length === 0,
    services: rows.map(({state, holders, locks, fence}) => ({
      service: state.service,
      leader: state.leader,
      token: state.token,
      believers: state.views.filter((v) => v.believesLeader).map((v) => v.node),
      vipHolders: holders,
      rbdHolders: locks?.map((h) => ({node: h.node, token: h.token, lock: h.lock.id, locker: h.lock.locker, address: h.lock.address})) ?? null,
      rbdFence: fence ? {token: fence.token, node: fence.node, blocklisted: fence.blocklisted, holder: fence.holder?.address ?? null} : null,
    })),
    disagreements: found,
  }
}
