import {connect, type Socket} from 'node:net'

import {noop, type IDefaultPolicyContext, type IPolicy} from 'cockatiel'
import {GRPCDeadlineExceededError, isRecoverableError} from 'etcd3'

/** A call that hit its deadline quicker than this never had a chance at the member it was sent to. */
const SPENT_ELSEWHERE_MS = 50

/** Thrown instead of calling a member the gate skips; the connection pool then tries the next one. */
export class MemberSkippedError extends Error {
  constructor(readonly host: string) {
    super(`etcd member ${host} skipped: its connection is down (another member is up)`)
  }
}

/**
 * Tells whether a member accepts a connection: true once it does, false when it refuses or times
 * out, or when `cancel` aborts it.
 */
export type MemberProbe = (host: string, timeoutMs: number, cancel?: AbortSignal) => Promise<boolean>

export interface MemberGateOptions {
  /** How long a probe waits for a connection before calling the member down. */
  probeTimeoutMs: number
  /** How long a member that failed is skipped at first; doubled per failure up to `maxBackoffMs`. */
  backoffMs: number
  maxBackoffMs: number
  probe?: MemberProbe
}

interface MemberState {
  status: 'unknown' | 'probing' | 'up' | 'down'
  /** While down: when it is worth probing again. */
  retryAt: number
  backoffMs: number
  probe?: Promise<void>
}

/**
 * Which etcd members the client sends calls to. etcd3's pool picks members in random order, and a
 * member whose machine is dead costs a connect timeout (the kernel gives up on ARP after ~3 s) on
 * every call routed to it: a CLI command of a few calls paid seconds for each. Like etcd's own Go
 * client, which balances only over connections that are up, the gate probes every member with a
 * connect at the first call, in parallel, and sends a call to a member known up; it waits for a
 * member whose probe is pending only while no other member is up, and skips a member that failed
 * recently (for a backoff, doubling) unless every member did, so a member that comes back is used
 * again and a cluster that is wholly down still reports etcd's own error.
 */
export class MemberGate {
  private readonly members = new Map<string, MemberState>()
  private readonly probe: MemberProbe
  private readonly closing = new AbortController()
  /** Resolved (and replaced) whenever a member's status changes: what waiting calls wait on. */
  private changed!: Promise<void>
  private signal!: () => void

  constructor(
    hosts: string[],
    private readonly options: MemberGateOptions,
  ) {
    for (const host of hosts) this.members.set(host, {status: 'unknown', retryAt: 0, backoffMs: options.backoffMs})
    this.probe = options.probe ?? tcpProbe
    this.arm()
  }

  /** The per-host policy for etcd3's `faultHandling.host`. */
  policy(host: string): IPolicy<IDefaultPolicyContext> {
    const member = this.members.get(host)
    if (!member) return noop
    return {
      _altReturn: undefined as never,
      onSuccess: noop.onSuccess,
      onFailure: noop.onFailure,
      execute: <T>(fn: (context: IDefaultPolicyContext) => PromiseLike<T> | T) => this.execute(host, member, fn),
    }
  }

  /**
   * Cancels the probes in flight: a connect still pending to a dead machine would keep the
   * process alive until the kernel gives up on it.
   */
  close(): void {
    this.closing.abort()
  }

  /** Each member's status, for tests and diagnostics. */
  statuses(): Record<string, MemberState['status']> {
    return Object.fromEntries([...this.members].map(([host, m]) => [host, m.status]))
  }

  private async execute<T>(host: string, member: MemberState, fn: (context: IDefaultPolicyContext) => PromiseLike<T> | T): Promise<T> {
    // One member: nothing to choose between.
    if (this.members.size === 1) return this.run(member, fn)
    for (;;) {
      if (member.status === 'up') return this.run(member, fn)
      this.probeStale()
      if (member.status === 'down') {
        if (this.anyNot('down')) throw new MemberSkippedError(host)
        // Every member failed: call anyway, so the caller sees etcd's own error and retries.
        return this.run(member, fn)
      }
      if (this.any('up')) throw new MemberSkippedError(host)
      // Probes do not keep the process alive (a CLI must not wait on a dead member to exit); a
      // call waiting on them must.
      const hold = setInterval(() => {}, 60_000)
      try {
        await this.changed
      } finally {
        clearInterval(hold)
      }
    }
  }

  private async run<T>(member: MemberState, fn: (context: IDefaultPolicyContext) => PromiseLike<T> | T): Promise<T> {
    const started = Date.now()
    try {
      const result = await fn({signal: new AbortController().signal})
      this.mark(member, 'up')
      return result
    } catch (err) {
      // A recoverable error is the connection or the member failing (unavailable, deadline), not
      // an answer such as a failed compare or a denied permission. A deadline that ran out at
      // once was the caller's budget, spent on another member before the client retried here.
      const spentElsewhere = err instanceof GRPCDeadlineExceededError && Date.now() - started < SPENT_ELSEWHERE_MS
      if (err instanceof Error && isRecoverableError(err) && !spentElsewhere) this.mark(member, 'down')
      throw err
    }
  }

  /** Starts a probe of every member not known up whose probe is due. */
  private probeStale(): void {
    const now = Date.now()
    for (const [host, member] of this.members) {
      if (member.status === 'unknown' || (member.status === 'down' && now >= member.retryAt && !member.probe)) {
        if (member.status === 'unknown') member.status = 'probing'
        member.probe = this.probe(host, this.options.probeTimeoutMs, this.closing.signal).then((up) => {
          member.probe = undefined
          this.mark(member, up ? 'up' : 'down')
        })
      }
    }
  }

  private mark(member: MemberState, status: 'up' | 'down'): void {
    if (status === 'up') member.backoffMs = this.options.backoffMs
    else {
      member.retryAt = Date.now() + member.backoffMs
      member.backoffMs = Math.min(member.backoffMs * 2, this.options.maxBackoffMs)
    }
    if (member.status === status) return
    member.status = status
    const signal = this.signal
    this.arm()
    signal()
  }

  private arm(): void {
    this.changed = new Promise((resolve) => (this.signal = resolve))
  }

  private any(status: MemberState['status']): boolean {
    return [...this.members.values()].some((m) => m.status === status)
  }

  private anyNot(status: MemberState['status']): boolean {
    return [...this.members.values()].some((m) => m.status !== status)
  }
}

/** What a connect to a member's endpoint found: up, or why not, in the words `etcd health` uses. */
export interface ConnectResult {
  up: boolean
  problem?: string
}

/**
 * A TCP (or unix socket) connect to the member's endpoint. Its timer does not keep the process
 * alive; the connect itself does (libuv counts a pending connect), hence `cancel`.
 */
export function connectProbe(host: string, timeoutMs: number, cancel?: AbortSignal): Promise<ConnectResult> {
  return new Promise((resolve) => {
    if (cancel?.aborted) return resolve({up: false, problem: 'cancelled'})
    let socket: Socket
    if (host.startsWith('unix://')) socket = connect({path: host.slice('unix://'.length)})
    else {
      const url = new URL(/^[a-z]+:\/\//.test(host) ? host : `http://${host}`)
      socket = connect({host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 2379)})
    }
    const done = (result: ConnectResult) => {
      clearTimeout(timer)
      cancel?.removeEventListener('abort', abort)
      socket.destroy()
      resolve(result)
    }
    const abort = () => done({up: false, problem: 'cancelled'})
    const timer = setTimeout(() => done({up: false, problem: `no answer within ${timeoutMs} ms`}), timeoutMs)
    timer.unref()
    cancel?.addEventListener('abort', abort)
    socket.once('connect', () => done({up: true}))
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done({up: false, problem: err.code === 'ECONNREFUSED' ? 'connection refused' : err.code === 'EHOSTUNREACH' ? 'unreachable (no route to host)' : `unreachable (${err.code ?? err.message})`}),
    )
  })
}

export const tcpProbe: MemberProbe = async (host, timeoutMs, cancel) => (await connectProbe(host, timeoutMs, cancel)).up
