import {performance} from 'node:perf_hooks'

import type {Etcd3} from 'etcd3'

import {settings} from '../settings.js'

type KeepAliveStream = Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>>

/** Monotonic milliseconds: wall-clock jumps (NTP, a resumed VM) must not extend a lease. */
export const monotonicMs = (): number => performance.now()

/** How long before the lease could expire a leader must already have stopped its service. */
export function safetyMarginMs(ttlSeconds: number): number {
  const e = settings.election
  return Math.min(e.safetyMarginMaxMs, Math.max(e.safetyMarginMinMs, ttlSeconds * 1000 * e.safetyMarginFraction))
}

/**
 * One etcd lease kept alive on a single stream, with a local, conservative view of when it can
 * expire. etcd extends a lease to TTL from when it *receives* a keepalive, which is after we
 * sent it; so `send time of the last acknowledged keepalive + TTL` is a lower bound on the
 * server's expiry. No successor can be elected before that instant, and we never count on
 * anything later. A process paused past it (SIGSTOP, a frozen VM) sees the bound in the past
 * when it wakes, before it acts.
 */
export class LeaseKeeper {
  readonly id: string
  readonly ttlSeconds: number
  /** Lower bound on the server-side expiry, in monotonic ms. */
  private expiresNoEarlierThan: number
  private stream?: KeepAliveStream
  private opening = false
  private readonly pending: number[] = []
  private timer?: NodeJS.Timeout
  private closed = false
  /** Set when etcd says the lease is gone (TTL 0): nothing can revive it. */
  lost = false

  private constructor(
    private readonly client: Etcd3,
    id: string,
    ttlSeconds: number,
    sentAt: number,
  ) {
    this.id = id
    this.ttlSeconds = ttlSeconds
    this.expiresNoEarlierThan = sentAt + ttlSeconds * 1000
  }

  /** Grants a lease (etcd may raise the TTL to its floor: the granted TTL is used). */
  static async grant(client: Etcd3, ttlSeconds: number): Promise<LeaseKeeper> {
    const sentAt = monotonicMs()
    const res = await client.leaseClient.leaseGrant({TTL: ttlSeconds, ID: 0}, {deadline: Date.now() + settings.election.callTimeoutMs})
    const keeper = new LeaseKeeper(client, String(res.ID), Number(res.TTL), sentAt)
    keeper.start()
    return keeper
  }

  /** Milliseconds until the lease could expire at the earliest (negative once it may have). */
  remainingMs(now = monotonicMs()): number {
    return this.expiresNoEarlierThan - now
  }

  private intervalMs(): number {
    return Math.max(50, (this.ttlSeconds * 1000) / settings.election.keepalivesPerTtl)
  }

  private start(): void {
    this.timer = setInterval(() => this.fire(), this.intervalMs())
    this.timer.unref()
  }

  private fire(): void {
    if (this.closed || this.lost) return
    if (!this.stream) {
      void this.open()
      return
    }
    // A stream that stopped answering (its member crashed or is cut off, or lost quorum) is
    // replaced soon, so a reopen that lands on a live member still renews in time: requests on
    // it would never be acknowledged.
    const oldest = this.pending[0]
    if (oldest !== undefined && monotonicMs() - oldest > 2 * this.intervalMs()) {
      this.dropStream()
      void this.open()
      return
    }
    this.pending.push(monotonicMs())
    try {
      this.stream.write({ID: this.id})
    } catch {
      this.dropStream()
    }
  }

  private async open(): Promise<void> {
    if (this.opening || this.closed) return
    this.opening = true
    try {
      const attempt = this.client.leaseClient.leaseKeepAlive()
      const stream = await Promise.race([attempt, new Promise<undefined>((r) => setTimeout(r, 2 * this.intervalMs()))])
      if (!stream || this.closed) {
        // Too slow (an unreachable member) or no longer wanted: the next tick tries again.
        void attempt.then((late) => late.end(), () => undefined)
        return
      }
      this.stream = stream
      this.pending.length = 0
      stream.on('data', (res: {ID: string; TTL: string}) => {
        if (stream !== this.stream) return
        const sentAt = this.pending.shift()
        if (Number(res.TTL) <= 0) {
          this.lost = true
          return
        }
        if (sentAt !== undefined) this.expiresNoEarlierThan = Math.max(this.expiresNoEarlierThan, sentAt + this.ttlSeconds * 1000)
      })
      stream.on('error', () => {
        if (stream === this.stream) this.dropStream()
      })
      stream.on('end', () => {
        if (stream === this.stream) this.dropStream()
      })
      this.fire()
    } catch {
      // etcd unreachable: the next tick tries again; the expiry bound does not move meanwhile.
    } finally {
      this.opening = false
    }
  }

  private dropStream(): void {
    const s = this.stream
    this.stream = undefined
    this.pending.length = 0
    try {
      s?.end()
    } catch {
      // already broken
    }
  }

  /** Stops keeping the lease alive; it expires on its own within the TTL. */
  close(): void {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    this.dropStream()
  }

  /** Deletes the lease and every key under it at once (a graceful exit); best effort. */
  async revoke(): Promise<boolean> {
    this.close()
    try {
      await this.client.leaseClient.leaseRevoke({ID: this.id}, {deadline: Date.now() + settings.election.callTimeoutMs})
      return true
    } catch {
      return false
    }
  }
}
