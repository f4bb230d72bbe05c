import type {Etcd3} from 'etcd3'

import {leaseNowMs} from '../clock.js'
import {settings} from '../settings.js'

type KeepAliveStream = Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>>

/** One member's keepalive stream and the send times of its unanswered requests (answered in order). */
interface MemberStream {
  client: Etcd3
  stream?: KeepAliveStream
  opening: boolean
  pending: number[]
}

/**
 * One etcd lease kept alive on every member at once, with a local, conservative view of when
 * it can expire.
 *
 * etcd extends a lease to TTL from when it *processes* a keepalive, which is after we sent it;
 * so `send time of the last acknowledged keepalive + TTL` is a lower bound on the server's
 * expiry, on the lease clock (monotonic, plus time suspended: see LeaseClock). No successor can
 * be elected before that instant, and we never count on anything later. A process paused past
 * it (SIGSTOP, a frozen VM, a suspended host) sees the bound in the past when it wakes.
 *
 * Why every member: a keepalive is answered by the raft leader (followers forward it). When the
 * member we talk to dies, a single stream must first notice and reconnect; when the raft leader
 * dies, every member holds requests until a new leader exists (~0.5-1 s with xcluster's raft
 * timings) and then answers them. One stream per member, written on every tick and never dropped
 * merely for being slow, gets the first answer any member can give, so an etcd member loss or an
 * etcd leader election costs no more than the election itself: well inside the safety margin.
 */
export class LeaseKeeper {
  readonly id: string
  readonly ttlSeconds: number
  /** Lower bound on the server-side expiry, on the lease clock (ms). */
  private expiresNoEarlierThan: number
  private readonly members: MemberStream[]
  private timer?: NodeJS.Timeout
  private closed = false
  /** Set when etcd says the lease is gone (TTL 0): nothing can revive it. */
  lost = false

  private constructor(
    private readonly grantClient: Etcd3,
    memberClients: Etcd3[],
    id: string,
    ttlSeconds: number,
    sentAt: number,
  ) {
    this.id = id
    this.ttlSeconds = ttlSeconds
    this.expiresNoEarlierThan = sentAt + ttlSeconds * 1000
    this.members = memberClients.map((client) => ({client, opening: false, pending: []}))
  }

  /**
   * Grants a lease through `grantClient` and keeps it alive on each of `memberClients` (one per
   * etcd member). etcd may raise the TTL to its floor: the granted TTL is the one counted.
   */
  static async grant(grantClient: Etcd3, memberClients: Etcd3[], ttlSeconds: number): Promise<LeaseKeeper> {
    const sentAt = leaseNowMs()
    const res = await grantClient.leaseClient.leaseGrant({TTL: ttlSeconds, ID: 0}, {deadline: Date.now() + settings.election.callTimeoutMs})
    const keeper = new LeaseKeeper(grantClient, memberClients, String(res.ID), Number(res.TTL), sentAt)
    keeper.start()
    return keeper
  }

  /** Milliseconds until the lease could expire at the earliest (negative once it may have). */
  remainingMs(now = leaseNowMs()): number {
    return this.expiresNoEarlierThan - now
  }

  /** The lease-clock instant before which etcd cannot expire the lease. */
  get expiryLowerBound(): number {
    return this.expiresNoEarlierThan
  }

  private intervalMs(): number {
    return Math.max(settings.election.keepaliveMinIntervalMs, (this.ttlSeconds * 1000) / settings.election.keepalivesPerTtl)
  }

  private start(): void {
    this.timer = setInterval(() => this.tick(), this.intervalMs())
    this.timer.unref()
    this.tick()
  }

  private tick(): void {
    if (this.closed || this.lost) return
    const now = leaseNowMs()
    for (const m of this.members) {
      if (!m.stream) {
        void this.open(m)
        continue
      }
      // A request unanswered for a whole TTL can no longer extend the bound: the member is gone
      // or cut off. Only then replace its stream; a merely slow one (an etcd election) is kept.
      const oldest = m.pending[0]
      if (oldest !== undefined && now - oldest > this.ttlSeconds * 1000) {
        this.drop(m)
        void this.open(m)
        continue
      }
      m.pending.push(now)
      try {
        m.stream.write({ID: this.id})
      } catch {
        this.drop(m)
      }
    }
  }

  private async open(m: MemberStream): Promise<void> {
    if (m.opening || this.closed) return
    m.opening = true
    try {
      const attempt = m.client.leaseClient.leaseKeepAlive()
      let timer: ReturnType<typeof setTimeout> | undefined
      const stream = await Promise.race([attempt, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), settings.election.callTimeoutMs)))])
      // Cleared: a pending timer would keep a stopping process alive for its length.
      clearTimeout(timer)
      if (!stream || this.closed) {
        void attempt.then(
          (late) => late.end(),
          () => undefined,
        )
        return
      }
      m.stream = stream
      m.pending.length = 0
      stream.on('data', (res: {ID: string; TTL: string}) => {
        if (stream !== m.stream) return
        const sentAt = m.pending.shift()
        if (Number(res.TTL) <= 0) {
          this.lost = true
          return
        }
        if (sentAt !== undefined) this.expiresNoEarlierThan = Math.max(this.expiresNoEarlierThan, sentAt + this.ttlSeconds * 1000)
      })
      stream.on('error', () => {
        if (stream === m.stream) this.drop(m)
      })
      stream.on('end', () => {
        if (stream === m.stream) this.drop(m)
      })
    } catch {
      // The member is unreachable: the next tick tries again; the bound does not move meanwhile.
    } finally {
      m.opening = false
    }
  }

  private drop(m: MemberStream): void {
    const s = m.stream
    m.stream = undefined
    m.pending.length = 0
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
    for (const m of this.members) this.drop(m)
  }

  /** Deletes the lease and every key under it at once (a graceful exit); best effort. */
  async revoke(): Promise<boolean> {
    this.close()
    return revokeLease(this.grantClient, this.id)
  }
}

/** Revokes a lease by id (its keys go with it); false when etcd did not confirm. */
export async function revokeLease(client: Etcd3, id: string): Promise<boolean> {
  try {
    await client.leaseClient.leaseRevoke({ID: id}, {deadline: Date.now() + settings.election.callTimeoutMs})
    return true
  } catch (err) {
    // Already gone (expired or revoked by a peer): the goal is reached.
    return /requested lease not found/i.test(String((err as Error)?.message ?? err))
  }
}
