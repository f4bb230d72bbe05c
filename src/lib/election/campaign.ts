import type {Watcher} from 'etcd3'

import type {EtcdStore} from '../etcd/store.js'
import {settings} from '../settings.js'
import type {ServiceSpec} from '../spec/types.js'
import {guardedWrite, type GuardedOp} from './fence.js'
import {LeaseKeeper, monotonicMs, safetyMarginMs} from './lease.js'
import type {CandidateRecord, HandoverRequest, HistoryEntry, HistoryEvent, LeaderRecord, ViewRecord} from './records.js'
import {ServiceRunner, type InProcessService} from './service-runner.js'
import {absent, createdAt, deleteOp, kvsOf, prefixRangeOp, putOp, rangeOp, txn, type RequestOp} from './txn.js'

export type CampaignPhase = 'follower' | 'leader' | 'stopping' | 'stopped'

export interface CampaignStatus {
  service: string
  node: string
  phase: CampaignPhase
  token: string | null
  active: boolean
  leader: string | null
}

export type CampaignLog = (event: string, details: Record<string, unknown>) => void

/**
 * One node's campaign for one service: a small state machine with one decision per step
 * (Patroni's shape), woken by a watch on the service's keys and by a timer.
 *
 * Safety does not depend on etcd answering: a separate fast timer compares the monotonic clock
 * with the lease's earliest possible expiry and stops the service a safety margin before it,
 * even while an etcd call hangs. Every action re-checks that bound first, so a process resumed
 * after a pause longer than the TTL steps down before it does anything.
 */
export class Campaign {
  readonly runner: ServiceRunner
  readonly marginMs: number
  private phase: CampaignPhase = 'follower'
  private lease?: LeaseKeeper
  private token: string | null = null
  private since: string | null = null
  private leader: string | null = null
  private leaderToken: string | null = null
  /** Bumped whenever leadership ends: a step that awaited across it must not act. */
  private generation = 0
  private holdBackUntil = 0
  private watcher?: Watcher
  private pendingWake = false
  private wake?: () => void
  private safetyTimer?: NodeJS.Timeout
  private loop?: Promise<void>
  private lastView = ''
  private stepping = false
  private shuttingDown?: Promise<void>

  constructor(
    private readonly store: EtcdStore,
    readonly service: ServiceSpec,
    readonly node: string,
    private readonly log: CampaignLog = () => {},
    inProcess?: InProcessService,
  ) {
    this.runner = new ServiceRunner(service, node, inProcess)
    this.marginMs = safetyMarginMs(service.ttl)
  }

  status(): CampaignStatus {
    return {service: this.service.name, node: this.node, phase: this.phase, token: this.token, active: this.runner.running, leader: this.leader}
  }

  /** True while this node may act as leader: it leads and its lease cannot have expired. */
  isSafeLeader(now = monotonicMs()): boolean {
    return this.phase === 'leader' && this.lease !== undefined && !this.lease.lost && this.lease.remainingMs(now) > this.marginMs
  }

  start(): void {
    this.safetyTimer = setInterval(() => this.checkSafety(), settings.election.tickMs)
    this.loop = this.run()
  }

  /**
   * A write to shared state as this leader: refused locally when this node is not a safe leader
   * (e.g. just woke from a pause), and by etcd when a newer leader exists.
   */
  async guardedWrite(ops: GuardedOp[]): Promise<boolean> {
    if (!this.checkSafety() || this.token === null) return false
    return guardedWrite(this.store, this.service.name, this.token, ops)
  }

  /** Graceful exit: stop the service, give up leadership at once, withdraw the candidacy. */
  async shutdown(reason = 'shutdown'): Promise<void> {
    if (this.shuttingDown) return this.shuttingDown
    this.shuttingDown = this.stop(reason)
    return this.shuttingDown
  }

  private async stop(reason: string): Promise<void> {
    const wasLeader = this.phase === 'leader' ? this.token : null
    this.phase = 'stopping'
    this.generation++
    if (this.safetyTimer) clearInterval(this.safetyTimer)
    this.wake?.()
    await this.runner.stop(wasLeader)
    // A step in flight may just have granted a lease or taken the seat: let it finish first, so
    // the cleanup below releases what it got (bounded: etcd may not answer).
    await withTimeout(this.loop ?? Promise.resolve(), settings.election.shutdownCleanupMs)
    // The service is stopped: what follows only spares peers the TTL wait. It is bounded, so an
    // etcd that does not answer cannot keep a stopping daemon alive (the lease then just expires).
    const cleanup = async () => {
      if (wasLeader) await this.releaseLeadership(wasLeader, 'resigned', reason)
      if (wasLeader) this.log('resigned', {token: wasLeader, reason})
      await this.lease?.revoke()
    }
    const finished = await withTimeout(cleanup(), settings.election.shutdownCleanupMs)
    if (!finished) this.log('shutdown-cleanup-timeout', {token: wasLeader, ms: settings.election.shutdownCleanupMs})
    this.lease?.close()
    this.lease = undefined
    this.phase = 'stopped'
    await withTimeout(this.watcher?.cancel().catch(() => undefined) ?? Promise.resolve(), settings.election.shutdownCleanupMs)
  }

  /**
   * The local safety check: stops the service before the lease could expire. Returns whether
   * this node is (still) a safe leader. Runs on a fast timer and before every action.
   */
  private checkSafety(): boolean {
    if (this.phase !== 'leader') return false
    if (this.isSafeLeader()) return true
    const remaining = this.lease?.remainingMs() ?? 0
    void this.demote(this.lease?.lost ? 'etcd reports the lease expired' : `lease not renewed in time (${Math.round(remaining)} ms left, margin ${this.marginMs} ms)`)
    return false
  }

  /** Stops the service first, then tries to clean up; the lease is abandoned either way. */
  private async demote(reason: string): Promise<void> {
    if (this.phase !== 'leader') return
    const token = this.token as string
    this.phase = 'follower'
    this.generation++
    const lease = this.lease
    this.lease = undefined
    lease?.close()
    // Never cut a stop command short: a half-stopped service is worse than a late stop. A stop
    // that outlasts the lease is logged so the margin can be raised for that service.
    const leftMs = Math.round(lease?.remainingMs() ?? 0)
    const stopped = await this.runner.stop(token)
    this.log('demoted', {token, reason, stopMs: stopped?.ms, leaseLeftMs: leftMs, late: stopped !== undefined && stopped.ms > leftMs})
    this.token = null
    this.since = null
    // Best effort: etcd may be unreachable (that is often why we are here).
    void this.releaseLeadership(token, 'demoted', reason).then(() => lease?.revoke())
    this.wake?.()
  }

  private async run(): Promise<void> {
    while (this.phase !== 'stopped' && this.phase !== 'stopping') {
      try {
        this.stepping = true
        await this.step()
      } catch (err) {
        this.log('step-failed', {error: String((err as Error)?.message ?? err)})
      } finally {
        this.stepping = false
      }
      if (this.ended()) break
      if (this.pendingWake) {
        this.pendingWake = false
        continue
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.stepIntervalMs())
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.wake = undefined
    }
  }

  /** Read through a method: shutdown() changes the phase while run() awaits. */
  private ended(): boolean {
    return this.phase === 'stopped' || this.phase === 'stopping'
  }

  private stepIntervalMs(): number {
    return Math.max(100, (this.service.ttl * 1000) / 4)
  }

  private async step(): Promise<void> {
    const client = this.store.client
    // Taken before any await: leadership that ends (or a shutdown) meanwhile voids this step.
    const generation = this.generation
    if (!this.watcher) this.watch()
    if (!this.lease || this.lease.lost || this.lease.remainingMs() <= 0) await this.register()
    const lease = this.lease as LeaseKeeper
    const keys = this.store.keys
    const name = this.service.name
    const res = await txn(client, {compare: [], success: [rangeOp(keys.electionLeader(name)), rangeOp(keys.electionHandover(name)), prefixRangeOp(keys.electionCandidatesPrefix(name), true)]})
    if (generation !== this.generation) return
    const leaderKv = kvsOf(res, 0)[0]
    const handover = kvsOf(res, 1)[0]?.value as HandoverRequest | undefined
    const candidates = kvsOf(res, 2).map((kv) => kv.key.slice(keys.electionCandidatesPrefix(name).length))
    this.leader = (leaderKv?.value as LeaderRecord | undefined)?.node ?? null
    this.leaderToken = leaderKv?.createRevision ?? null

    if (this.phase === 'leader') {
      if (!leaderKv || leaderKv.createRevision !== this.token) {
        await this.demote('the leader key is no longer ours')
        return
      }
      if (handover && handover.token === this.token && Date.now() < handover.until) {
        const target = handover.to
        if (target === null || (target !== this.node && candidates.includes(target))) {
          await this.resign(target === null ? 'resign requested' : `transfer to ${target} requested`, candidates.some((c) => c !== this.node))
          return
        }
      }
      if (!this.runner.running && this.checkSafety()) await this.startService()
      await this.publishView()
      return
    }

    // Our own key under our live lease: an acquire whose reply was lost. Adopt it, or the seat
    // stays blocked for as long as we keep the lease alive.
    if (leaderKv && leaderKv.lease === lease.id) {
      this.phase = 'leader'
      this.token = leaderKv.createRevision
      this.since = (leaderKv.value as LeaderRecord).since
      this.log('elected', {token: this.token, adopted: true})
      if (this.checkSafety()) await this.startService()
    }

    // Follower: try to take an empty seat, unless a handover asks us to hold back.
    if (!leaderKv && this.mayCampaign(handover)) {
      const now = new Date().toISOString()
      const token = await this.acquire(lease, now, handover)
      if (token && generation !== this.generation) {
        // Won a seat this campaign no longer wants (it is stopping, or was demoted meanwhile).
        await this.releaseLeadership(token, 'resigned', 'leadership ended while the seat was being taken')
        return
      }
      if (token) {
        this.phase = 'leader'
        this.token = token
        this.since = now
        this.leader = this.node
        this.leaderToken = token
        this.log('elected', {token})
        void this.trimHistory()
        if (this.checkSafety()) await this.startService()
      }
    }
    await this.publishView()
  }

  private mayCampaign(handover: HandoverRequest | undefined): boolean {
    if (Date.now() < this.holdBackUntil) return false
    if (!handover || Date.now() >= handover.until) return true
    if (handover.to !== null) return handover.to === this.node
    return handover.from !== this.node
  }

  /** Takes the leader key if it is free; the key's create revision is the fencing token. */
  private async acquire(lease: LeaseKeeper, now: string, handover: HandoverRequest | undefined): Promise<string | undefined> {
    const keys = this.store.keys
    const name = this.service.name
    const leader: LeaderRecord = {node: this.node, since: now, ttl: lease.ttlSeconds}
    const success: RequestOp[] = [putOp(keys.electionLeader(name), leader, lease.id)]
    if (handover) success.push(deleteOp(keys.electionHandover(name)))
    const res = await txn(this.store.client, {compare: [absent(keys.electionLeader(name))], success})
    if (!res.succeeded) return undefined
    const token = String(res.header.revision)
    // The history entry is written once the token is known, guarded by it.
    const entry: HistoryEntry = {service: name, event: 'elected', node: this.node, token, at: now, reason: handover?.to === this.node ? 'transfer' : 'seat was free'}
    void guardedWrite(this.store, name, token, [{kind: 'put', key: keys.electionHistory(name, token, 'elected'), value: entry}]).catch(() => undefined)
    return token
  }

  private async startService(): Promise<void> {
    const token = this.token as string
    const generation = this.generation
    const outcome = await this.runner.start(token)
    this.log(outcome.ok ? 'started' : 'start-failed', {token, ms: outcome.ms, ...(outcome.ok ? {} : {code: outcome.code, output: outcome.output})})
    if (generation !== this.generation) {
      // Leadership ended while the start command ran: the stop queued behind it handles it.
      await this.runner.stop(token)
      return
    }
    if (!outcome.ok) {
      await this.runner.stop(token)
      this.holdBackUntil = Date.now() + this.service.ttl * 1000
      await this.resign('start command failed', true, 'start-failed')
    }
  }

  /** Steps down on purpose: stop first, then free the seat so a peer wins at once. */
  private async resign(reason: string, holdBack: boolean, event: HistoryEvent = 'resigned'): Promise<void> {
    if (this.phase !== 'leader') return
    const token = this.token as string
    this.phase = 'follower'
    this.generation++
    await this.runner.stop(token)
    if (holdBack) this.holdBackUntil = Math.max(this.holdBackUntil, Date.now() + settings.election.handoverTimeoutMs)
    await this.releaseLeadership(token, event, reason)
    this.log(event, {token, reason})
    this.token = null
    this.since = null
    await this.publishView()
  }

  /** Deletes the leader key if it is still ours, recording why, in one guarded transaction. */
  private async releaseLeadership(token: string, event: HistoryEvent, reason: string): Promise<void> {
    const keys = this.store.keys
    const name = this.service.name
    const entry: HistoryEntry = {service: name, event, node: this.node, token, at: new Date().toISOString(), reason}
    try {
      await txn(this.store.client, {
        compare: [createdAt(keys.electionLeader(name), token)],
        success: [deleteOp(keys.electionLeader(name)), putOp(keys.electionHistory(name, token, event), entry)],
      })
    } catch (err) {
      this.log('release-failed', {token, error: String((err as Error)?.message ?? err)})
    }
  }

  /** A fresh lease, with the candidate and view keys under it. */
  private async register(): Promise<void> {
    this.lease?.close()
    this.lease = undefined
    const lease = await LeaseKeeper.grant(this.store.client, this.service.ttl)
    const keys = this.store.keys
    const candidate: CandidateRecord = {node: this.node, pid: process.pid, since: new Date().toISOString()}
    try {
      await txn(this.store.client, {compare: [], success: [putOp(keys.electionCandidate(this.service.name, this.node), candidate, lease.id)]})
      if (this.ended()) throw new Error('the campaign is stopping')
    } catch (err) {
      // A lease nobody holds would be kept alive for nothing (and keep the process running).
      void lease.revoke()
      throw err
    }
    this.lease = lease
    this.lastView = ''
    this.log('registered', {lease: lease.id, ttl: lease.ttlSeconds})
  }

  private async publishView(): Promise<void> {
    if (!this.lease) return
    const view: Omit<ViewRecord, 'updatedAt'> = {
      node: this.node,
      believesLeader: this.phase === 'leader',
      active: this.runner.running,
      leader: this.leader,
      token: this.leaderToken,
      since: this.phase === 'leader' ? this.since : null,
    }
    const text = JSON.stringify(view)
    if (text === this.lastView) return
    this.lastView = text
    const record: ViewRecord = {...view, updatedAt: new Date().toISOString()}
    await txn(this.store.client, {compare: [], success: [putOp(this.store.keys.electionView(this.service.name, this.node), record, this.lease.id)]}).catch(() => {
      this.lastView = ''
    })
  }

  /**
   * Wakes the loop on any change under the service's keys. Not awaited: a watch stream that is
   * slow to (re)connect must not hold up a step; the step timer covers what the watch misses.
   */
  private watch(): void {
    this.watcher = this.store.client.watch().prefix(this.store.keys.electionPrefix(this.service.name)).watcher()
    this.watcher.on('data', () => {
      if (!this.stepping) this.wake?.()
      else this.pendingWake = true
    })
    this.watcher.on('error', () => undefined)
  }

  /** Keeps the newest `historyLimit` entries. */
  private async trimHistory(): Promise<void> {
    const keys = this.store.keys
    const res = await txn(this.store.client, {compare: [], success: [prefixRangeOp(keys.electionHistoryPrefix(this.service.name), true)]}).catch(() => undefined)
    if (!res) return
    const all = kvsOf(res, 0).map((kv) => kv.key)
    const excess = all.slice(0, Math.max(0, all.length - settings.election.historyLimit))
    if (excess.length > 0) await txn(this.store.client, {compare: [], success: excess.map(deleteOp)}).catch(() => undefined)
  }
}

/** Resolves true when `work` settles within `ms`, false otherwise (the work is left to finish). */
async function withTimeout(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  try {
    return await Promise.race([work.then(() => true, () => true), timeout])
  } finally {
    clearTimeout(timer)
  }
}
