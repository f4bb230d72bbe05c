import {closeSync, existsSync, mkdirSync, openSync, readSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {CephCallTimeout, fenceRbdImage, managedLockHolder, RbdCli} from '../ceph/rbd.js'
import {mapDeviceType, type MapDeviceType, type RbdMapping} from '../ceph/rbd-map.js'
import {settings} from '../settings.js'
import type {ServiceSpec} from '../spec/types.js'
import {Guardian, type GuardianReport} from './guardian.js'
import {instanceId, type InstanceScope} from './instance.js'
import type {RbdFenceRecord} from './records.js'

export interface CommandOutcome {
  ok: boolean
  code: number | null
  ms: number
  output: string
}

/**
 * A guarded service that runs inside the `serve` process (e.g. the DHCP server): started when
 * this node wins, stopped before it could lose. A throw from start counts as a failed start.
 * It lives and dies with the process, so it needs no guardian.
 */
export interface InProcessService {
  start(token: string): Promise<void>
  stop(token: string | null): Promise<void>
}

/** Writes the fence record under its token; false when that token no longer leads (nothing written). */
export type RecordFence = (record: RbdFenceRecord) => Promise<boolean>

/** How a start is bounded: the guardian's first deadline and the lease it frees if serve dies. */
export interface StartGuard {
  /**
   * Boot time (centiseconds) by which the instance must be dead unless serve moves it: asked for
   * at launch, since fencing an RBD image first can take seconds of the lease.
   */
  deadlineCs: () => number
  /** serve's lease id (decimal, as etcd3 gives it). */
  leaseId: string
}

/**
 * Starts and stops one guarded service on this node. Each instance runs under a guardian
 * (libexec/xcluster-guardian) that kills it when serve dies or stops proving its lease, so an
 * instance can never outlive the leadership it was started under. Calls are serialized: a
 * stop requested while a start runs waits for it, so the service is never left running behind
 * a stop.
 */
export class ServiceRunner {
  running = false
  private queue: Promise<unknown> = Promise.resolve()
  private readonly rbd = new RbdCli()
  private guardian?: Guardian
  /** The guardian of an instance being stopped: its deadline keeps moving while the lease lives. */
  private stopping?: Guardian
  private lostListener?: (token: string, report: GuardianReport) => void
  /** The leader's mapping of rbdImage, from the start until a clean stop unmaps it. */
  private mapping?: RbdMapping
  /**
   * Stale mappings whose forced unmap got no answer: stuck in the kernel behind I/O its
   * blocklisted client can never finish. A second unmap would only wait as long again.
   */
  private readonly stuckDevices = new Set<string>()

  constructor(
    readonly service: ServiceSpec,
    readonly node: string,
    private readonly scope: InstanceScope,
    private readonly inProcess?: InProcessService,
    /** Where the instance's lifecycle is told (the guardian's pid, how each instance ended). */
    private readonly log: (event: string, details: Record<string, unknown>) => void = () => {},
    private readonly recordFence: RecordFence = async () => false,
  ) {}

  /** Told when an instance ends without being asked to (the guardian killed it, or died itself). */
  onLost(listener: (token: string, report: GuardianReport) => void): void {
    this.lostListener = listener
  }

  /** Moves the running instance's deadline: called while the lease is proven alive. */
  heartbeat(deadlineCs: number): void {
    const guardian = this.guardian ?? this.stopping
    guardian?.deadline(deadlineCs)
  }

  start(token: string, guard: StartGuard): Promise<CommandOutcome> {
    return this.serial(async () => {
      const started = Date.now()
      // The image is fenced first: the service never runs while another client can still write it.
      const image = this.service.rbdImage
      // A mapping of an earlier leadership that ended without a clean stop is not this one's.
      this.mapping = undefined
      let fence: RbdFenceRecord | undefined
      if (image) {
        const notLeading = () => new Error(`token ${token} no longer leads ${this.service.name}: the fence was not recorded`)
        const fenced = await timed(async () => {
          // Claimed in etcd first: a leadership already replaced is refused before it blocklists
          // anyone (a newer leader's client holds an "auto" lock that carries no token to compare).
          const claim: RbdFenceRecord = {image, node: this.node, token, blocklisted: [], brokenLocks: [], at: new Date().toISOString(), holder: null}
          if (!(await this.recordFence(claim))) throw notLeading()
          // The claim is written again before each blocklist: refused once this token no longer leads.
          fence = {...(await fenceRbdImage(this.rbd, image, this.node, token, () => this.recordFence(claim))), holder: null}
          if (!(await this.recordFence(fence))) throw notLeading()
        })
        this.log('rbd-fenced', {
          token,
          image,
          ok: fenced.ok,
          ...(fence ? {blocklisted: fence.blocklisted, brokenLocks: fence.brokenLocks.map((l) => l.id)} : {}),
          ...(fenced.ok ? {} : {output: fenced.output}),
        })
        if (!fenced.ok) return {...fenced, output: `could not fence ${image}: ${fenced.output}`}
        const type = await mapDeviceType(this.service.rbdMap)
        if (type) {
          let mapping: RbdMapping | undefined
          const mapped = await timed(async () => {
            mapping = await this.mapImage(image, type, token)
          })
          this.log('rbd-mapped', {token, image, type, ok: mapped.ok, ...(mapping ? {device: mapping.device} : {output: mapped.output})})
          if (!mapping) return {...mapped, output: `could not map ${image}: ${mapped.output}`}
          this.mapping = mapping
        }
      }
      if (this.inProcess) {
        const outcome = await timed(() => (this.inProcess as InProcessService).start(token))
        this.running = outcome.ok
        return outcome
      }
      const guardian = this.launch(token, guard)
      this.guardian = guardian
      this.running = true
      this.log('instance-launched', {token, guardian: guardian.pid})
      const first = await withTimeout(guardian.next(), settings.election.startTimeoutMs)
      if (first?.kind === 'started' && first.code === 0) {
        guardian.onEnd((report) => {
          if (this.guardian !== guardian) return
          this.guardian = undefined
          this.running = false
          this.lostListener?.(token, report)
        })
        if (fence) void this.recordHolder(fence, guardian)
        return {ok: true, code: 0, ms: Date.now() - started, output: ''}
      }
      // Failed, timed out, or killed while starting: the whole instance goes. Whatever lock its
      // client took is never freed here: the next leader's fence breaks it, after a blocklist.
      await guardian.abort()
      this.guardian = undefined
      this.running = false
      const why = first === undefined ? `timed out after ${settings.election.startTimeoutMs} ms` : describe(first)
      return {ok: false, code: first?.kind === 'started' ? first.code : null, ms: Date.now() - started, output: `start ${why}${this.outputTail()}`}
    })
  }

  /** Stops the service when it runs (or a start is in flight); a no-op otherwise. */
  stop(token: string | null): Promise<CommandOutcome | undefined> {
    return this.serial(async () => {
      if (!this.running) return undefined
      const started = Date.now()
      if (this.inProcess) {
        const outcome = await timed(() => (this.inProcess as InProcessService).stop(token))
        this.running = false
        return outcome
      }
      const guardian = this.guardian as Guardian
      this.guardian = undefined
      // A graceful stop (serve asked to stop, the lease alive) gets its full time: heartbeats keep
      // moving the deadline. A demoted leader's lease bound no longer moves, so neither does it.
      this.stopping = guardian
      // A stop command that hangs is cut short by a deadline of now: the guardian kills the instance.
      const timer = setTimeout(() => {
        this.stopping = undefined
        guardian.deadline(0)
      }, settings.election.stopTimeoutMs)
      const ended = await guardian.stop()
      clearTimeout(timer)
      this.stopping = undefined
      this.log('instance-ended', {token, guardian: guardian.pid, report: ended, ms: Date.now() - started})
      this.running = false
      // The image's lock is the leader's mapping's (or, with rbdMap: none, the service's own
      // client's): only a clean stop lets serve unmap it. After a failed stop, a kill or a lost
      // guardian the device may still be in use, and only the next leader's blocklist makes that safe.
      const ok = ended.kind === 'stopped' && ended.code === 0
      const unmapped = await this.unmapImage(token, ok)
      return {
        ok: ok && !unmapped,
        code: ended.kind === 'stopped' ? ended.code : null,
        ms: Date.now() - started,
        output: ok ? unmapped : `stop ${describe(ended)}${this.outputTail()}`,
      }
    })
  }

  /**
   * Maps the freshly fenced image for this leadership. A mapping of it left on this host (a stop
   * that failed, a serve that died) belongs to a client the fence just blocklisted: it is
   * unmapped first, forced, so the service never finds a dead device in its place.
   */
  private async mapImage(image: string, type: MapDeviceType, token: string): Promise<RbdMapping> {
    for (const stale of (await this.rbd.mappings(type)).filter((m) => m.image === image)) await this.unmapStale(stale, token)
    return {image, type, device: await this.rbd.map(image, type)}
  }

  /**
   * A stale mapping whose unmap gets no answer is left where it is (and not tried again): its
   * client is blocklisted, so it writes nothing, and the new mapping is a device of its own.
   */
  private async unmapStale(stale: RbdMapping, token: string): Promise<void> {
    const event = {token, image: stale.image, device: stale.device}
    if (this.stuckDevices.has(stale.device)) {
      this.log('rbd-stale-unmapped', {...event, ok: false, output: 'left as it is: an earlier unmap of it is stuck in the kernel'})
      return
    }
    try {
      await this.rbd.unmap(stale, true)
      this.log('rbd-stale-unmapped', {...event, ok: true})
    } catch (error) {
      if (error instanceof CephCallTimeout) this.stuckDevices.add(stale.device)
      this.log('rbd-stale-unmapped', {...event, ok: false, output: (error as Error).message})
    }
  }

  /**
   * After a clean stop: the mapping goes, and its exclusive lock with it. After any other end the
   * mapping stays (the service may still hold the device): the next leader's blocklist fences it.
   * Returns what went wrong, or '' when all is well.
   */
  private async unmapImage(token: string | null, cleanStop: boolean): Promise<string> {
    const mapping = this.mapping
    this.mapping = undefined
    if (!mapping) return ''
    if (!cleanStop) {
      this.log('rbd-left-mapped', {token, image: mapping.image, device: mapping.device})
      return ''
    }
    const unmapped = await timed(() => this.rbd.unmap(mapping))
    this.log('rbd-unmapped', {token, image: mapping.image, device: mapping.device, ok: unmapped.ok, ...(unmapped.ok ? {} : {output: unmapped.output})})
    return unmapped.ok ? '' : `stopped, but ${mapping.image} stays mapped at ${mapping.device} (its lock is left to the next leader's fence): ${unmapped.output}`
  }

  private launch(token: string, guard: StartGuard): Guardian {
    const unit = this.service.unit
    const quoted = unit ? quote(unit) : ''
    mkdirSync(this.scope.runDir, {recursive: true})
    writeFileSync(this.logFile(), '')
    return Guardian.launch({
      instance: instanceId(this.scope, this.service.name, token),
      start: unit ? `systemctl start ${quoted}` : (this.service.start as string),
      stop: unit ? `systemctl stop ${quoted}` : (this.service.stop as string),
      ...(unit
        ? {
            kill: `systemctl kill --signal=SIGKILL ${quoted}; systemctl stop --no-block ${quoted}`,
            gone: `case "$(systemctl show -p ActiveState --value ${quoted})" in inactive|failed) exit 0 ;; *) exit 1 ;; esac`,
          }
        : {}),
      deadlineCs: guard.deadlineCs(),
      logFile: this.logFile(),
      leaseHex: BigInt(guard.leaseId).toString(16),
      env: {
        XCLUSTER_SERVICE: this.service.name,
        XCLUSTER_NODE: this.node,
        XCLUSTER_TOKEN: token,
        ...(this.mapping ? {XCLUSTER_RBD_DEVICE: this.mapping.device} : {}),
        ...this.scope.etcdctlEnv,
      },
    })
  }

  private logFile(): string {
    return join(this.scope.runDir, `${this.service.name}.log`)
  }

  /** The end of the instance's command output, for a failure report. */
  private outputTail(bytes = 1000): string {
    const file = this.logFile()
    if (!existsSync(file)) return ''
    const size = statSync(file).size
    const buffer = Buffer.alloc(Math.min(size, bytes))
    const fd = openSync(file, 'r')
    try {
      readSync(fd, buffer, 0, buffer.length, size - buffer.length)
    } finally {
      closeSync(fd)
    }
    const text = buffer.toString('utf8').trim()
    return text ? `: ${text}` : ''
  }

  /**
   * Records which client holds the image once the started service took its exclusive lock, so
   * `election check` can tell the leader's lock from anyone else's. Best effort, in the
   * background: a service that never locks is reported by the check as not holding the image.
   */
  private async recordHolder(fence: RbdFenceRecord, guardian: Guardian): Promise<void> {
    const broken = new Set(fence.brokenLocks.map((l) => `${l.id}|${l.address}`))
    const deadline = Date.now() + settings.ceph.holderWaitMs
    while (Date.now() < deadline && this.guardian === guardian) {
      const lock = await managedLockHolder(this.rbd, fence.image).catch(() => undefined)
      if (lock && !broken.has(`${lock.id}|${lock.address}`)) {
        const recorded = await this.recordFence({...fence, holder: {locker: lock.locker, address: lock.address}}).catch(() => false)
        this.log('rbd-holder', {token: fence.token, image: fence.image, locker: lock.locker, address: lock.address, recorded})
        return
      }
      await new Promise((r) => setTimeout(r, settings.ceph.holderPollMs))
    }
  }

  private serial<R>(fn: () => Promise<R>): Promise<R> {
    const next = this.queue.then(fn, fn)
    this.queue = next.catch(() => undefined)
    return next
  }
}

function describe(report: GuardianReport): string {
  switch (report.kind) {
    case 'started':
      return `command exited ${report.code}`
    case 'stopped':
      return `command exited ${report.code}`
    case 'killed':
      return report.reason === 'deadline' ? 'overran its deadline: the instance was killed' : 'was cut short: serve died'
    case 'exited':
      return `guardian ended unexpectedly (${report.signal ?? report.code})`
  }
}

async function timed(fn: () => Promise<void>): Promise<CommandOutcome> {
  const started = Date.now()
  try {
    await fn()
    return {ok: true, code: 0, ms: Date.now() - started, output: ''}
  } catch (err) {
    return {ok: false, code: null, ms: Date.now() - started, output: String((err as Error)?.message ?? err)}
  }
}

/** Resolves with the value, or undefined after `ms` (the work is left running). */
async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}

const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`
