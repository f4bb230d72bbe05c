import type {Etcd3, IStatusResponse} from 'etcd3'

import {EtcdPermissionDeniedError} from 'etcd3'

import {settings} from '../settings.js'
import {connectProbe} from './member-gate.js'
import {EtcdStore, type EtcdConnection} from './store.js'

/** One etcd member as `etcd members` and `etcd health` show it (the --json contract of both). */
export interface EtcdMemberState {
  /** The member ID in hex, as etcdctl prints it; null when no member list could be read. */
  id: string | null
  /** The member's name (empty until a newly added member first starts). */
  name: string
  peerUrls: string[]
  clientUrls: string[]
  learner: boolean
  /** The endpoint that answered for this member (a configured one first, else an advertised client URL). */
  endpoint: string | null
  isLeader: boolean
  raftTerm: number | null
  raftIndex: number | null
  /** Bytes of the member's backend database, as allocated on disk. */
  dbSize: number | null
  version: string | null
  /** Answered its status, knows a leader, raises no alarm, and served a quorum read, all within the probe timeout. */
  healthy: boolean
  /** Why it is not healthy (null when it is). */
  problem: string | null
  /** How long the probe took. */
  tookMs: number | null
}

export interface EtcdClusterState {
  members: EtcdMemberState[]
  /** The leader's name, as the members that answered with the highest raft term report it. */
  leader: string | null
  /** Voting members (learners do not count towards quorum). */
  voters: number
  healthyVoters: number
  /** More than half of the voting members are healthy: etcd can commit writes. */
  quorum: boolean
  /** Quorum, and every member healthy. */
  healthy: boolean
  /** Set when no endpoint gave the member list: the members are then the configured endpoints. */
  memberListError: string | null
}

interface Probe {
  endpoint: string
  memberId?: string
  status?: IStatusResponse
  problem?: string
  tookMs: number
}

const hexId = (id: string | number): string => BigInt(id).toString(16)

const reason = (err: unknown): string => {
  const message = String((err as Error)?.message ?? err)
  // etcd's own refusal (leader changed, no leader, too many requests) says more than gRPC's code.
  const refusal = /etcdserver: [^\n]*/.exec(message)
  if (refusal) return refusal[0]
  if (/ECONNREFUSED|connection refused/i.test(message)) return 'connection refused'
  if (/deadline|timed? ?out/i.test(message)) return `no answer within ${settings.etcdMaintenance.memberProbeTimeoutMs} ms`
  if (/UNAVAILABLE|No connection established/i.test(message)) return 'unreachable'
  return message.split('\n')[0]!.slice(0, 200)
}

/**
 * One client bound to one endpoint, with the connection's TLS files and no retrying: a probe
 * must say what this endpoint does now, not what some other member does after a retry.
 */
export class MemberEndpoint {
  private readonly store: EtcdStore
  readonly client: Etcd3

  constructor(
    connection: EtcdConnection,
    readonly endpoint: string,
  ) {
    this.store = new EtcdStore({...connection, endpoints: [endpoint]})
    this.client = this.store.memberClients()[0]!
  }

  /**
   * Status, then a linearizable read (as `etcdctl endpoint health` does: a member cut off from
   * the leader may still answer its status, but cannot serve a read that needs quorum). A read
   * etcd refuses for permission still went through raft, so it counts as healthy.
   */
  async probe(timeoutMs = settings.etcdMaintenance.memberProbeTimeoutMs): Promise<Probe> {
    const started = Date.now()
    const deadline = started + timeoutMs
    const took = () => Date.now() - started
    // A connect first, that can be given up: gRPC's own connect to a dead machine cannot be
    // cancelled and would keep the process alive until the kernel gives up (~3 s).
    const reached = await connectProbe(this.endpoint, timeoutMs)
    if (!reached.up) return {endpoint: this.endpoint, problem: reached.problem as string, tookMs: took()}
    let status: IStatusResponse
    try {
      status = await this.client.maintenance.status({deadline})
    } catch (err) {
      return {endpoint: this.endpoint, problem: reason(err), tookMs: took()}
    }
    const found = {endpoint: this.endpoint, memberId: String(status.header.member_id), status}
    if (String(status.leader) === '0') return {...found, problem: 'no raft leader (no quorum)', tookMs: took()}
    if (status.errors?.length) return {...found, problem: `alarm: ${status.errors.join('; ')}`, tookMs: took()}
    try {
      await this.client.kv.range({key: Buffer.from('health'), serializable: false}, {deadline})
    } catch (err) {
      if (!(err instanceof EtcdPermissionDeniedError)) return {...found, problem: `quorum read failed: ${reason(err)}`, tookMs: took()}
    }
    return {...found, tookMs: took()}
  }

  async close(): Promise<void> {
    await this.store.close()
  }
}

/** Runs `fn` with a client bound to `endpoint`, closed afterwards. */
export async function withMemberEndpoint<R>(connection: EtcdConnection, endpoint: string, fn: (member: MemberEndpoint) => Promise<R>): Promise<R> {
  const member = new MemberEndpoint(connection, endpoint)
  try {
    return await fn(member)
  } finally {
    await member.close()
  }
}

const sameEndpoint = (a: string, b: string): boolean => a.replace(/^[a-z]+:\/\//, '') === b.replace(/^[a-z]+:\/\//, '')

const probeEndpoint = (connection: EtcdConnection, endpoint: string): Promise<Probe> => withMemberEndpoint(connection, endpoint, (m) => m.probe())

/**
 * Every member of the etcd cluster with its status and health, in one pass:
 *
 * 1. probes each configured endpoint (they are what this host can reach: a member advertising an
 *    address only its LAN routes is still found through them);
 * 2. reads the member list (from any member; it needs no quorum);
 * 3. probes each member no configured endpoint answered for, at its advertised client URLs.
 *
 * Each probe has its own short deadline, so a dead or partitioned member costs at most that.
 * Throws ETCD_UNREACHABLE only with `requireMemberList` and no endpoint answering; otherwise an
 * unreachable cluster is reported as members that are not healthy.
 */
export async function inspectEtcdCluster(connection: EtcdConnection, options: {requireMemberList?: boolean} = {}): Promise<EtcdClusterState> {
  const configured = await Promise.all(connection.endpoints.map((e) => probeEndpoint(connection, e)))
  const store = new EtcdStore(connection)
  let list: Awaited<ReturnType<Etcd3['cluster']['memberList']>> | undefined
  let memberListError: string | null = null
  try {
    list = await store.call('member list', (c) => c.cluster.memberList({}, {deadline: Date.now() + settings.etcdMaintenance.memberProbeTimeoutMs}))
  } catch (err) {
    if (options.requireMemberList) throw err
    memberListError = reason(err).replace(/\.$/, '')
  } finally {
    await store.close()
  }

  if (!list) {
    const members = configured.map((p) => memberState(p, {id: p.memberId ? hexId(p.memberId) : null, name: p.endpoint, peerUrls: [], clientUrls: [p.endpoint], learner: false}))
    return summarise(members, configured, memberListError)
  }

  const byMember = new Map<string, Probe>()
  for (const p of configured) if (p.memberId && (!byMember.has(p.memberId) || byMember.get(p.memberId)!.problem)) byMember.set(p.memberId, p)
  const probes = await Promise.all(
    list.members.map(async (m) => {
      const known = byMember.get(String(m.ID))
      if (known && !known.problem) return known
      let last: Probe | undefined = known
      for (const url of m.clientURLs ?? []) {
        // A URL a configured endpoint already probed is not probed again (a dead member would cost twice).
        const p = configured.find((c) => sameEndpoint(c.endpoint, url)) ?? (await probeEndpoint(connection, url))
        if (!p.problem) return p
        last ??= p
      }
      return last ?? {endpoint: '', problem: m.name ? 'advertises no client URL' : 'not started yet (added, never joined)', tookMs: 0}
    }),
  )
  const members = list.members.map((m, i) => memberState(probes[i]!, {id: hexId(m.ID), name: m.name || '', peerUrls: m.peerURLs ?? [], clientUrls: m.clientURLs ?? [], learner: Boolean(m.isLearner)}))
  return summarise(members, probes, null)
}

function memberState(p: Probe, identity: Pick<EtcdMemberState, 'id' | 'name' | 'peerUrls' | 'clientUrls' | 'learner'>): EtcdMemberState {
  const s = p.status
  return {
    ...identity,
    endpoint: s ? p.endpoint : null,
    isLeader: false,
    raftTerm: s ? Number(s.raftTerm) : null,
    raftIndex: s ? Number(s.raftIndex) : null,
    dbSize: s ? Number(s.dbSize) : null,
    version: s?.version ?? null,
    healthy: !p.problem,
    problem: p.problem ?? null,
    tookMs: p.tookMs,
  }
}

function summarise(members: EtcdMemberState[], probes: Probe[], memberListError: string | null): EtcdClusterState {
  // The leader as the members on the newest term see it (an older term's view is stale).
  let leaderId: string | undefined
  let term = -1
  for (const p of probes) {
    if (!p.status || String(p.status.leader) === '0') continue
    const t = Number(p.status.raftTerm)
    if (t > term) [term, leaderId] = [t, hexId(p.status.leader)]
  }
  for (const m of members) m.isLeader = m.id !== null && m.id === leaderId
  const voters = members.filter((m) => !m.learner)
  const healthyVoters = voters.filter((m) => m.healthy).length
  const quorum = voters.length > 0 && healthyVoters > voters.length / 2
  return {
    members,
    leader: members.find((m) => m.isLeader)?.name ?? null,
    voters: voters.length,
    healthyVoters,
    quorum,
    healthy: quorum && members.every((m) => m.healthy),
    memberListError,
  }
}

/** Bytes for people: 20 KiB, 3.1 MiB. */
export function humanBytes(n: number | null): string | null {
  if (n === null) return null
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`
}
