import {spawn, type ChildProcess} from 'node:child_process'
import {dirname, join} from 'node:path'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'

/** libexec/xcluster-guardian at the package root (dist/lib/election -> ../../..; same from src/). */
export const GUARDIAN_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'libexec', 'xcluster-guardian')

/** What one guarded instance runs, and how the guardian reaches etcd to free the lease. */
export interface GuardianOptions {
  /** Exported to the instance's processes as XCLUSTER_INSTANCE: how stragglers are found. */
  instance: string
  start: string
  stop: string
  /** An extra kill action, e.g. `systemctl kill -s SIGKILL UNIT` for a unit. */
  kill?: string
  /** Succeeds once what `kill` kills is gone (a unit's processes carry no marker to look for). */
  gone?: string
  /** The first deadline, in /proc/uptime centiseconds. */
  deadlineCs: number
  /** The commands' output goes here. */
  logFile: string
  /** serve's lease (hex, as etcdctl writes it): revoked once the instance is dead after serve died. */
  leaseHex?: string
  /** The commands' environment on top of this process's (XCLUSTER_SERVICE, ETCDCTL_*...). */
  env: Record<string, string>
}

export type GuardianReport =
  | {kind: 'started' | 'stopped'; code: number}
  /** The guardian killed the instance on its own: serve died, or a deadline passed. */
  | {kind: 'killed'; reason: string}
  /** The guardian itself ended without a report (it was killed): the instance is unguarded. */
  | {kind: 'exited'; code: number | null; signal: NodeJS.Signals | null}

/**
 * serve's end of one guardian process (libexec/xcluster-guardian): the guardian runs the
 * instance and kills it when the deadline serve keeps moving passes, or when serve dies.
 */
export class Guardian {
  private readonly proc: ChildProcess
  private readonly reports: GuardianReport[] = []
  private readonly waiters: ((r: GuardianReport) => void)[] = []
  private ended?: GuardianReport
  private endListeners: ((r: GuardianReport) => void)[] = []

  private constructor(options: GuardianOptions) {
    this.proc = spawn(GUARDIAN_BIN, [], {
      stdio: ['pipe', 'pipe', 'ignore'],
      env: {
        ...process.env,
        ...options.env,
        XCLUSTER_GUARD_INSTANCE: options.instance,
        XCLUSTER_GUARD_START: options.start,
        XCLUSTER_GUARD_STOP: options.stop,
        XCLUSTER_GUARD_KILL: options.kill ?? '',
        XCLUSTER_GUARD_GONE: options.gone ?? '',
        XCLUSTER_GUARD_DEADLINE: String(options.deadlineCs),
        XCLUSTER_GUARD_LOG: options.logFile,
        XCLUSTER_GUARD_LEASE: options.leaseHex ?? '',
      },
    })
    // A guardian that cannot read our heartbeats must not take this process down with EPIPE.
    this.proc.stdin?.on('error', () => undefined)
    createInterface({input: this.proc.stdout!}).on('line', (line) => {
      const [kind, value = ''] = line.trim().split(' ')
      if (kind === 'started' || kind === 'stopped') this.report({kind, code: Number(value)})
      else if (kind === 'killed') this.report({kind, reason: value})
    })
    this.proc.once('exit', (code, signal) => this.report({kind: 'exited', code, signal}))
    this.proc.once('error', () => this.report({kind: 'exited', code: null, signal: null}))
  }

  static launch(options: GuardianOptions): Guardian {
    return new Guardian(options)
  }

  get pid(): number | undefined {
    return this.proc.pid
  }

  /** Whether the guardian still watches the instance. */
  get watching(): boolean {
    return this.ended === undefined
  }

  /** Called once, when the guardian reports the instance stopped or killed, or dies itself. */
  onEnd(listener: (report: GuardianReport) => void): void {
    if (this.ended) listener(this.ended)
    else this.endListeners.push(listener)
  }

  /** The instance must be dead by this boot time (centiseconds): sent while the lease is proven alive. */
  deadline(cs: number): void {
    if (this.watching) this.proc.stdin?.write(`deadline ${cs}\n`)
  }

  /** The start command's outcome (or the report that ended the instance before it finished). */
  next(): Promise<GuardianReport> {
    const queued = this.reports.shift()
    if (queued) return Promise.resolve(queued)
    if (this.ended) return Promise.resolve(this.ended)
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  /** Runs the stop command, then kills what is left; resolves once the instance is gone. */
  stop(): Promise<GuardianReport> {
    return this.finish('stop')
  }

  /** Kills the instance first (a start that failed or overran), then runs the stop command. */
  abort(): Promise<GuardianReport> {
    return this.finish('abort')
  }

  private async finish(command: 'stop' | 'abort'): Promise<GuardianReport> {
    if (this.ended) return this.ended
    const done = new Promise<GuardianReport>((resolve) => this.onEnd(resolve))
    this.proc.stdin?.write(`${command}\n`)
    return done
  }

  /** Kills the guardian without a word: for tests of what a lost guardian does. */
  killForTest(): void {
    this.proc.kill('SIGKILL')
  }

  private report(r: GuardianReport): void {
    if (this.ended) return
    if (r.kind !== 'started') {
      this.ended = r
      this.proc.stdin?.end()
      for (const l of this.endListeners) l(r)
      this.endListeners = []
    }
    const waiter = this.waiters.shift()
    if (waiter) waiter(r)
    else if (r.kind === 'started') this.reports.push(r)
  }
}
