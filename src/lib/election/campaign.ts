import {execFile} from 'node:child_process'
import {promisify} from 'node:util'

import {leaseNowMs, settlesWithin} from '../clock.js'
import type {LeaseKeeper} from '../etcd/lease-keeper.js'
import type {EtcdStore, RawKv} from '../etcd/store.js'
import type {PrefixWatch} from '../etcd/watch.js'
import {settings} from '../settings.js'
import type {ServiceSpec} from '../spec/types.js'
import {guardedWrite, type GuardedOp} from './fence.js'
import type {GuardianReport} from './guardian.js'
import {bootId, killInstances, processAlive, recordLease, type InstanceScope} from './instance.js'
import {safetyMarginMs} from './lease.js'
import type {CandidateRecord, HandoverRequest, HistoryEntry, HistoryEvent, LeaderRecord, ViewRecord} from './records.js'
import {ServiceRunner, type InProcessService} from './service-runner.js'

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
 * Safety does not depend on etcd answering, nor on this process running at all:
 *  - a fast timer compares the lease clock with the lease's earliest possible expiry and stops
 *    the service a safety margin before it, even while an etcd call hangs; every action
 *    re-checks that bound first, so a process resumed after a pause steps down before it acts;
 *  - the same timer moves the instance guardian's deadline to just before that expiry, so an
 *    instance whose serve is frozen, cut off or dead is killed by its guardian in time.
 */
export class Campaign {
  readonly runner: ServiceRunner
  readonly marginMs: number
  private phase: CampaignPhase = 'follower'
  private lease?: LeaseKeeper
  /** The lease the running instance was started under: its guardian's deadline follows only it. */
  private instanceLease?: LeaseKeeper
  private token: string | null = null
  private since: string | null = null
  private leader: string | null = null
  private leaderToken: string | null = null
  /** Bumped whenever leadership ends: a step that awaited across it must not act. */
  private generation = 0
  /** Tokens whose seat this campaign gave up: never adopted again, whatever etcd still shows. */
  private readonly givenUp = new Set<string>()
  private holdBackUntil = 0
  /** When this daemon first saw the current handover request (by its mod revision), on the lease clock. */
  private handoverSeen?: {revision: string; at: number}
  private watch?: PrefixWatch
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
    private readonly scope: InstanceScope,
    private readonly log: CampaignLog = () => {},
    inProcess?: InProcessService,
  ) {
    this.runner = new ServiceRunner(service, node, scope, inProcess, log, (record) =>
      guardedWrite(store, service.name, record.token, [{kind: 'put', key: store.keys.electionFence(service.name), value: record}]),
    )
    this.runner.onLost((token, report) => void this.instanceLost(token, report))
    this.marginMs = safetyMarginMs(service.ttl)
  }

  status(): CampaignStatus {
    return {service: this.service.name, node: this.node, phase: this.phase, token: this.token, active: this.runner.running, leader: this.leader}
  }

  /** True while this node may act as leader: it leads and its lease cannot have expired. */
  isSafeLeader(now = leaseNowMs()): boolean {
    return this.phase === 'leader' && this.lease !== undefined && !this.lease.lost && this.lease.remainingMs(now) > this.marginMs
  }

  start(): void {
    this.safetyTimer = setInterval(() => this.tick(), settings.election.tickMs)
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
    this.wake?.()
    // The lease is still kept alive while the service stops, and the timer keeps the guardian's
    // deadline moving with it: a graceful stop gets its full time.
    await this.runner.stop(wasLeader)
    this.instanceLease = undefined
    // A step in flight may just have granted a lease or taken the seat: let it finish first, so
    // the cleanup below releases what it got (bounded: etcd may not answer).
    await settlesWithin(this.loop ?? Promise.resolve(), settings.election.shutdownCleanupMs)
    // The service is stopped: what follows only spares peers the TTL wait. It is bounded, so an
    // etcd that does not answer cannot keep a stopping daemon alive (the lease then just expires).
    const cleanup = async () => {
      if (wasLeader) await this.releaseLeadership(wasLeader, 'resigned', reason)
      if (wasLeader) this.log('resigned', {token: wasLeader, reason})
      await this.lease?.revoke()
    }
    const finished = await settlesWithin(cleanup(), settings.election.shutdownCleanupMs)
    if (!finished) this.log('shutdown-cleanup-timeout', {token: wasLeader, ms: settings.election.shutdownCleanupMs})
    if (this.safetyTimer) clearInterval(this.safetyTimer)
    this.lease?.close()
    if (finished) recordLease(this.scope, this.service.name, undefined)
    this.lease = undefined
    this.phase = 'stopped'
    await this.watch?.cancel()
  }

  /** The fast timer: the safety check, then the guardian's deadline. */
  private tick(): void {
    this.checkSafety()
    const lease = this.instanceLease
    if (lease && this.runner.running) this.runner.heartbeat(this.guardianDeadlineCs(lease))
  }

  /**
   * When the guardian must have killed an instance started under `lease`: a part of the safety
   * margin before the earliest expiry, in /proc/uptime centiseconds (rounded down, minus one
   * tick for /proc/uptime's truncation).
   */
  private guardianDeadlineCs(lease: LeaseKeeper): number {
    const killBudgetMs = this.marginMs * settings.election.guardianKillFraction
    return Math.floor((lease.expiryLowerBound - killBudgetMs) / 10) - 1
  }

  /**
   * The local safety check: stops the service before the lease could expire. Returns whether
   * this node is (still) a safe leader.
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
    // A closed lease's bound no longer moves: the guardian's deadline stays where it is.
    lease?.close()
    const leftMs = Math.round(lease?.remainingMs() ?? 0)
    const stopped = await this.runner.stop(token)
    this.instanceLease = undefined
    this.log('demoted', {token, reason, stopMs: stopped?.ms, leaseLeftMs: leftMs, late: stopped !== undefined && stopped.ms > leftMs, ...(stopped && !stopped.ok ? {stop: stopped.output} : {})})
    this.token = null
    this.since = null
    // Best effort: etcd may be unreachable (that is often why we are here).
    void this.releaseLeadership(token, 'demoted', reason).then(() => lease?.revoke())
    this.wake?.()
  }

  /** The guardian ended the instance on its own (or died): leadership without a service is given up. */
  private async instanceLost(token: string, report: GuardianReport): Promise<void> {
    this.instanceLease = undefined
    this.log('instance-lost', {token, report})
    if (this.phase === 'leader' && this.token === token) await this.resign(`the instance ended: ${report.kind} ${'reason' in report ? report.reason : ''}`.trim(), true)
  }

  private async run(): Promise<void> {
    await this.cleanUpPredecessor().catch((err: unknown) => this.log('predecessor-cleanup-failed', {error: String((err as Error)?.message ?? err)}))
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

  /**
   * Before campaigning, undo what a dead predecessor on this node left: kill its instances
   * (and their guardians), stop the unit, and revoke its lease, so leadership moves now rather
   * than when the lease runs out. Only a predecessor of this boot whose process is gone counts:
   * a live serve for this node is kept out by the node lock, and a lease from another boot or
   * host is left to expire.
   */
  private async cleanUpPredecessor(): Promise<void> {
    const {killed, lingering} = await killInstances(this.scope, this.service.name)
    if (this.service.unit) await stopUnitIfActive(this.service.unit)
    if (lingering.length > 0) {
      // Still alive after SIGKILL (stuck in the kernel): the lease is left to run out, never
      // revoked under a live instance; a peer takes over after the TTL, as if this node were gone.
      this.log('predecessor-lingering', {killed, lingering})
      return
    }
    const key = this.store.keys.electionCandidate(this.service.name, this.node)
    const {reads} = await this.store.transaction().get(key).commitAt()
    const kv = reads[0]?.[0]
    const record = kv?.value as CandidateRecord | undefined
    let revoked = false
    if (kv && kv.lease !== '0' && record && record.bootId === bootId() && record.pid !== process.pid && !processAlive(record.pid)) {
      revoked = await this.store.revokeLease(kv.lease)
    }
    if (killed > 0 || revoked) this.log('predecessor-cleaned', {killed, ...(kv ? {lease: kv.lease, pid: record?.pid} : {}), revoked})
  }

  /** Read through a method: shutdown() changes the phase while run() awaits. */
  private ended(): boolean {
    return this.phase === 'stopped' || this.phase === 'stopping'
  }

  private stepIntervalMs(): number {
    return Math.max(100, (this.service.ttl * 1000) / 4)
  }

  private async step(): Promise<void> {
    // Taken before any await: leadership that ends (or a shutdown) meanwhile voids this step.
    const generation = this.generation
    this.watch ??= this.store.watchPrefix(this.store.keys.electionPrefix(this.service.name), {
      onPut: () => this.wakeUp(),
      onDelete: () => this.wakeUp(),
      onReset: () => this.wakeUp(),
    })
    if (!this.lease || this.lease.lost || this.lease.remainingMs() <= 0) await this.register()
    const lease = this.lease as LeaseKeeper
    const keys = this.store.keys
    const name = this.service.name
    const {reads} = await this.store
      .transaction()
      .get(keys.electionLeader(name))
      .get(keys.electionHandover(name))
      .getPrefix(keys.electionCandidatesPrefix(name), {keysOnly: true})
      .commitAt({timeoutMs: settings.election.callTimeoutMs})
    if (generation !== this.generation) return
    const leaderKv = reads[0]?.[0]
    const handover = this.activeHandover(reads[1]?.[0])
    const candidates = (reads[2] ?? []).map((kv) => kv.key.slice(keys.electionCandidatesPrefix(name).length))
    this.leader = (leaderKv?.value as LeaderRecord | undefined)?.node ?? null
    this.leaderToken = leaderKv?.createRevision ?? null

    if (this.phase === 'leader') {
      if (!leaderKv || leaderKv.createRevision !== this.token) {
        await this.demote('the leader key is no longer ours')
        return
      }
      if (handover && handover.token === this.token) {
        const target = handover.to
        if (target === null || (target !== this.node && candidates.includes(target))) {
          await this.resign(
            target === null ? 'resign requested' : `transfer to ${target} requested`,
            candidates.some((c) => c !== this.node),
          )
          return
        }
      }
      if (!this.runner.running && this.checkSafety()) await this.startService()
      await this.publishView()
      return
    }

    // Our own key under our live lease: an acquire whose reply was lost. Adopt it, or the seat
    // stays blocked for as long as we keep the lease alive. Never a seat this campaign gave up
    // (resigned or demoted): its delete may still be on its way, or land late after a timeout,
    // and free the seat under a service started again. Delete it again instead.
    if (leaderKv && leaderKv.lease === lease.id && this.givenUp.has(leaderKv.createRevision)) {
      await this.releaseLeadership(leaderKv.createRevision, 'resigned', 'a seat given up earlier whose release had not landed')
    } else if (leaderKv && leaderKv.lease === lease.id) {
      this.phase = 'leader'
      this.token = leaderKv.createRevision
      this.since = (leaderKv.value as LeaderRecord).since
      this.log('elected', {token: this.token, adopted: true})
      if (this.checkSafety()) await this.startService()
    }

    // Follower: try to take an empty seat, unless a handover asks us to hold back.
    if (!leaderKv && this.mayCampaign(handover)) {
      const now = new Date().toISOString()
      const token = await this.acquire(lease, now, handover, reads[1]?.[0] !== undefined)
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

  private wakeUp(): void {
    if (!this.stepping) this.wake?.()
    else this.pendingWake = true
  }

  /** The handover request, while it has not lapsed by this daemon's own count. */
  private activeHandover(kv: RawKv | undefined): HandoverRequest | undefined {
    if (!kv) {
      this.handoverSeen = undefined
      return undefined
    }
    const now = leaseNowMs()
    if (this.handoverSeen?.revision !== kv.modRevision) this.handoverSeen = {revision: kv.modRevision, at: now}
    const request = kv.value as HandoverRequest
    return now - this.handoverSeen.at < request.timeoutMs ? request : undefined
  }

  private mayCampaign(handover: HandoverRequest | undefined): boolean {
    if (leaseNowMs() < this.holdBackUntil) return false
    if (!handover) return true
    if (handover.to !== null) return handover.to === this.node
    return handover.from !== this.node
  }

  /** Takes the leader key if it is free; the key's create revision is the fencing token. */
  private async acquire(lease: LeaseKeeper, now: string, handover: HandoverRequest | undefined, handoverKeyExists: boolean): Promise<string | undefined> {
    const keys = this.store.keys
    const name = this.service.name
    const leader: LeaderRecord = {node: this.node, since: now, ttl: lease.ttlSeconds}
    const txn = this.store.transaction().ifAbsent(keys.electionLeader(name)).put(keys.electionLeader(name), leader, {lease: lease.id})
    // A request that brought us here, or one that lapsed, is done with.
    if (handoverKeyExists) txn.delete(keys.electionHandover(name))
    const res = await txn.commitAt({timeoutMs: settings.election.callTimeoutMs})
    if (!res.applied) return undefined
    const token = res.revision
    // The history entry is written once the token is known, guarded by it.
    const entry: HistoryEntry = {service: name, event: 'elected', node: this.node, token, at: now, reason: handover?.to === this.node ? 'transfer' : 'seat was free'}
    void guardedWrite(this.store, name, token, [{kind: 'put', key: keys.electionHistory(name, token, 'elected'), value: entry}]).catch(() => undefined)
    return token
  }

  private async startService(): Promise<void> {
    const token = this.token as string
    const lease = this.lease as LeaseKeeper
    const generation = this.generation
    this.instanceLease = lease
    const outcome = await this.runner.start(token, {deadlineCs: () => this.guardianDeadlineCs(lease), leaseId: lease.id})
    this.log(outcome.ok ? 'started' : 'start-failed', {token, ms: outcome.ms, ...(outcome.ok ? {} : {code: outcome.code, output: outcome.output})})
    if (!outcome.ok) this.instanceLease = undefined
    if (generation !== this.generation) {
      // Leadership ended while the start command ran: the stop queued behind it handles it.
      await this.runner.stop(token)
      return
    }
    if (!outcome.ok) {
      this.holdBackUntil = leaseNowMs() + this.service.ttl * 1000
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
    this.instanceLease = undefined
    if (holdBack) this.holdBackUntil = Math.max(this.holdBackUntil, leaseNowMs() + settings.election.handoverTimeoutMs)
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
    this.givenUp.add(token)
    try {
      await this.store
        .transaction()
        .ifCreatedAt(keys.electionLeader(name), token)
        .delete(keys.electionLeader(name))
        .put(keys.electionHistory(name, token, event), entry)
        .commit({timeoutMs: settings.election.callTimeoutMs})
    } catch (err) {
      this.log('release-failed', {token, error: String((err as Error)?.message ?? err)})
    }
  }

  /** A fresh lease, with the candidate key under it. */
  private async register(): Promise<void> {
    this.lease?.close()
    this.lease = undefined
    const lease = await this.store.grantLease(this.service.ttl)
    const candidate: CandidateRecord = {node: this.node, pid: process.pid, bootId: bootId(), since: new Date().toISOString()}
    try {
      await this.store.transaction().put(this.store.keys.electionCandidate(this.service.name, this.node), candidate, {lease: lease.id}).commit({timeoutMs: settings.election.callTimeoutMs})
      if (this.ended()) throw new Error('the campaign is stopping')
    } catch (err) {
      // A lease nobody holds would be kept alive for nothing (and keep the process running).
      void lease.revoke()
      throw err
    }
    this.lease = lease
    recordLease(this.scope, this.service.name, lease.id)
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
    await this.store
      .transaction()
      .put(this.store.keys.electionView(this.service.name, this.node), record, {lease: this.lease.id})
      .commit({timeoutMs: settings.election.callTimeoutMs})
      .catch(() => {
        this.lastView = ''
      })
  }

  /** Keeps the newest `historyLimit` entries. */
  private async trimHistory(): Promise<void> {
    const keys = this.store.keys
    const prefix = keys.electionHistoryPrefix(this.service.name)
    const res = await this.store
      .transaction()
      .getPrefix(prefix, {keysOnly: true})
      .commitAt({timeoutMs: settings.election.callTimeoutMs})
      .catch(() => undefined)
    if (!res) return
    const all = (res.reads[0] ?? []).map((kv) => kv.key)
    const excess = all.slice(0, Math.max(0, all.length - settings.election.historyLimit))
    if (excess.length === 0) return
    const txn = this.store.transaction()
    for (const key of excess) txn.delete(key)
    await txn.commit({timeoutMs: settings.election.callTimeoutMs}).catch(() => undefined)
  }
}

/** A unit left running by a dead predecessor (or started by hand) is stopped before campaigning. */
async function stopUnitIfActive(unit: string): Promise<void> {
  const run = promisify(execFile)
  const active = await run('systemctl', ['is-active', '--quiet', unit], {timeout: settings.election.callTimeoutMs}).then(
    () => true,
    () => false,
  )
  if (active) await run('systemctl', ['stop', unit], {timeout: settings.election.stopTimeoutMs}).catch(() => undefined)
}
