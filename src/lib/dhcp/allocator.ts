import {performance} from 'node:perf_hooks'

import {PrefixFollower, type KvChange} from '../etcd/follow.js'
import type {KeySchema} from '../etcd/keys.js'
import type {EtcdStore, StoredKv, Transaction} from '../etcd/store.js'
import type {MacBinding, NodeRecord} from '../nodes/record.js'
import {settings} from '../settings.js'
import {fromInt, inRange, parseIpv4, parseRange, type IntRange} from '../spec/ipv4.js'
import {readSpecFamily, type SpecFamily} from '../spec/generation.js'
import {diffWithSpec, overlay, type Registry} from '../spec/resolve.js'
import type {ClusterSpec} from '../spec/types.js'
import {storedHostname, storedVendorClass, type DiscoveredMac, type Lease, type LeaseByMac, type LeaseType} from './lease.js'

/** What the allocator needs to know about a client, from its DHCP packet. */
export interface ClientInfo {
  mac: string
  requestedIp?: string
  hostname?: string
  vendorClass?: string
  clientArch?: number[]
}

/** Who a MAC is: a registered node (type, maybe a fixed IP) or an unknown machine. */
export interface ClientIdentity {
  type: LeaseType
  node?: string
  fixedIp?: string
}

export interface Offer {
  ip: string
  identity: ClientIdentity
  leaseSeconds: number
}

export type CommitResult = {ok: true; lease: Lease; identity: ClientIdentity; leaseSeconds: number} | {ok: false; reason: string}

export interface AllocatorOptions {
  /** Written into every lease as `grantedBy`: the server's address on the served interface. */
  serverId: string
  /** What an unknown MAC gets: a short lease from the discovery range, or nothing. */
  unknown: 'discover' | 'ignore'
  now?: () => number
  log?: (line: string) => void
  /**
   * Fencing (issue 4): adds the election's compare to every write (leases, their index,
   * discovered MACs), e.g. "the dhcp leader key still has the create revision of my token", so a
   * deposed leader's writes are refused.
   */
  fence?: Fence
}

/** Adds a compare to a transaction that holds only while this server may write. */
export type Fence = (txn: Transaction) => void

/** What the allocator holds and does now: for the server's load shedding and its stats line. */
export interface AllocatorLoad {
  /** Lease writes queued or sent to etcd and not answered yet. */
  leaseWrites: number
  /** OFFERs made lately whose REQUEST has not come yet: lease writes to come. */
  offersAwaitingRequest: number
  /** How long lease writes took lately, queueing included (a moving average, ms). */
  leaseWriteMs: number
  discovered: number
  /** Discovered MACs waiting to be written or removed. */
  discoveredPending: number
  /** Snapshots re-read after the first (a compacted or cancelled watch). */
  reloads: number
}

interface Cached<T> {
  value: T
  /** Mod revision of the value: the compare of the next write that replaces it. */
  rev: number
}

interface CachedLease extends Cached<Lease> {
  expiresMs: number
}

/** An address offered to a MAC and held for it in memory. */
interface Hold {
  mac: string
  untilMs: number
  /** performance.now() when offered. */
  madeMs: number
  /** Counted as awaiting its REQUEST (see offersAwaitingRequest). */
  awaiting: boolean
}

interface DiscoveredEntry extends Cached<DiscoveredMac> {
  /** When this server last recorded the MAC as seen (0: never; rev 0: not in etcd yet). */
  touchedMs: number
}

/** One lease write's part of a transaction (see LeaseAllocator.plan). */
interface WritePlan {
  /** Every key it compares and changes: two writes in one transaction must not share one. */
  keys: string[]
  /** Operations (and compares) it adds. */
  size: number
  addTo(txn: Transaction): void
  /** Updates the cache once etcd applied it at `rev`. */
  applied(rev: number): void
}

interface QueuedWrite {
  lease: Lease
  identity: ClientIdentity
  resolve(applied: boolean): void
  reject(err: unknown): void
}

interface PlannedWrite extends QueuedWrite {
  plan: WritePlan
}

/** What the spec makes of the registry, derived from the cache when first needed after a change. */
interface DerivedRegistry {
  spec?: ClusterSpec
  registry: Registry
  /** Addresses no client may get from a range: every node's fixed IP, the gateway, the VIP. */
  reserved: Set<number>
  ranges: Map<LeaseType, IntRange>
}

/** Everything the allocator knows from etcd; rebuilt whole when the follower reloads. */
class DhcpCache {
  /** The spec family's keys (pointer, parts, fold marker, claim) as stored. */
  specKeys = new Map<string, StoredKv>()
  /** Stored node records and MAC bindings: the registry before the overlay (src/lib/spec/view.ts). */
  stored: Registry = {nodes: new Map(), macs: new Map()}
  /** The last spec that could be read: kept when etcd holds none for a while (a restore). */
  lastSpec?: ClusterSpec
  private derived?: DerivedRegistry
  /** The spec family interpreted (the spec assembled from its parts): redone only when a spec key changes. */
  private family?: SpecFamily
  leases = new Map<number, CachedLease>()
  byMac = new Map<string, Cached<LeaseByMac>>()
  /** The MACs whose index entry names each address: a new lease there drops theirs. */
  indexedAt = new Map<number, Set<string>>()
  /** Discovered MACs, least recently seen first (bounded by settings.dhcp.maxDiscovered). */
  discovered = new Map<string, DiscoveredEntry>()

  constructor(
    private readonly keys: KeySchema,
    private readonly log: (line: string) => void,
  ) {}

  /** The spec, the nodes or the MACs changed: derive again when next asked (not once per key of a batch). */
  changed(what: 'spec' | 'registry'): void {
    this.derived = undefined
    if (what === 'spec') this.family = undefined
  }

  get spec(): ClusterSpec | undefined {
    return this.derive().spec
  }

  /** Node records and MAC bindings as readers see them: overlaid with the spec while its fold is unfinished. */
  get registry(): Registry {
    return this.derive().registry
  }

  get reserved(): Set<number> {
    return this.derive().reserved
  }

  get ranges(): Map<LeaseType, IntRange> {
    return this.derive().ranges
  }

  setLease(ip: number, value: Lease | undefined, rev: number): void {
    const cur = this.leases.get(ip)
    if (cur && cur.rev > rev) return
    if (value) this.leases.set(ip, {value, rev, expiresMs: Date.parse(value.expiresAt)})
    else this.leases.delete(ip)
  }

  setIndex(mac: string, value: LeaseByMac | undefined, rev: number): void {
    const cur = this.byMac.get(mac)
    if (cur && cur.rev > rev) return
    const oldIp = cur ? parseIpv4(cur.value.ip) : undefined
    if (oldIp !== undefined) {
      const macs = this.indexedAt.get(oldIp)
      macs?.delete(mac)
      if (macs?.size === 0) this.indexedAt.delete(oldIp)
    }
    if (!value) {
      this.byMac.delete(mac)
      return
    }
    this.byMac.set(mac, {value, rev})
    const ip = parseIpv4(value.ip)
    if (ip === undefined) return
    const macs = this.indexedAt.get(ip) ?? new Set<string>()
    macs.add(mac)
    this.indexedAt.set(ip, macs)
  }

  private derive(): DerivedRegistry {
    if (this.derived) return this.derived
    if (!this.family) {
      try {
        this.family = readSpecFamily(this.keys, [...this.specKeys.values()], true)
      } catch (err) {
        // Parts arrive before the pointer that names them: a gap is etcd's state being wrong, not ours to crash on.
        this.log(`the stored spec cannot be read (${(err as Error).message}): keeping the one loaded before`)
        this.family = {}
      }
    }
    const family = this.family
    if (family.spec) this.lastSpec = family.spec
    const spec = this.lastSpec
    const registry = family.fold && family.spec && family.pointer?.value ? overlay(this.stored, diffWithSpec(family.spec, this.stored), family.pointer.value.appliedAt) : this.stored
    const ranges = new Map(Object.entries(spec?.network.ranges ?? {}).map(([type, r]) => [(type === 'discovery' ? 'discovered' : type) as LeaseType, parseRange(`${r.start}-${r.end}`) as IntRange]))
    const reserved = spec
      ? reservedAddresses(
          spec,
          [...registry.nodes.values()].map((r) => r.value),
        )
      : new Set<number>()
    this.derived = {spec, registry, reserved, ranges}
    return this.derived
  }
}

/**
 * Addresses no client may get from a range: the gateway, the admin VIP, every node's fixed IP
 * (the spec's and the registered records') and every service VIP (a VIP follows a leader).
 */
export function reservedAddresses(spec: ClusterSpec, nodes: Iterable<NodeRecord>): Set<number> {
  const reserved = new Set<number>()
  const reserve = (ip: string | undefined) => {
    const n = ip === undefined ? undefined : parseIpv4(ip)
    if (n !== undefined) reserved.add(n)
  }
  reserve(spec.network.gateway)
  reserve(spec.network.adminVip)
  for (const n of spec.nodes) reserve(n.ip)
  for (const n of nodes) reserve(n.ip)
  for (const s of spec.services ?? []) reserve(s.vip)
  return reserved
}

const parseJson = (kv: StoredKv): unknown => {
  try {
    return JSON.parse(kv.value.toString())
  } catch {
    return undefined // not ours to interpret
  }
}

/**
 * MAC-typed address allocation with the leases in etcd. A local cache (a paged snapshot, kept
 * current by a watch that resumes or reloads: PrefixFollower) makes choosing an address a
 * memory operation; correctness never depends on the cache: every grant is one etcd
 * transaction that is create-only on the IP (or compares the revision of the expired/own lease
 * it replaces) and on the MAC's index entry, so two servers can never give one address to two
 * MACs, and an ACK without a write first checks in etcd that the cached lease is still there.
 * A transaction that loses a race re-reads the keys it compared and tries again.
 *
 * What a flood of spoofed MACs can grow is bounded: leases by the ranges, the MAC index by the
 * leases (a new lease on an address drops other MACs' stale index entries), discovered MACs by
 * settings.dhcp.maxDiscovered (least recently seen evicted first), stored hostnames and vendor
 * classes by length and charset.
 */
export class LeaseAllocator {
  private cache: DhcpCache
  private follower?: PrefixFollower
  /** In-memory OFFER holds, so two DISCOVERs in flight do not get the same address. */
  private offers = new Map<number, Hold>()
  /** Holds made within settings.dhcp.offerAnswerWindowMs, oldest first, and how many of them await their REQUEST. */
  private recentHolds: Hold[] = []
  private awaitingRequest = 0
  private offerOf = new Map<string, number>()
  /** Where each range's next scan for a free address starts (next fit). */
  private cursor = new Map<LeaseType, number>()
  /** A range found full stays full until this time, or until an address in it is freed. */
  private fullUntil = new Map<LeaseType, number>()
  /** Discovered MACs to write, and evicted ones to remove (both only while this server may write). */
  private pendingPut = new Set<string>()
  private pendingDelete = new Set<string>()
  private flushTimer?: NodeJS.Timeout
  private flushing: Promise<unknown> = Promise.resolve()
  private flushBackoffMs = 0
  private leaseWrites = 0
  private leaseWriteMs = 0
  private writeQueue: QueuedWrite[] = []
  private batchesInFlight = 0
  private readonly now: () => number
  private readonly log: (line: string) => void

  constructor(
    private readonly store: EtcdStore,
    private readonly options: AllocatorOptions,
  ) {
    this.now = options.now ?? Date.now
    this.log = options.log ?? (() => {})
    this.cache = new DhcpCache(store.keys, this.log)
  }

  get keys() {
    return this.store.keys
  }

  /** Loads the spec, nodes, MAC bindings and DHCP state page by page, then follows changes. */
  async start(): Promise<void> {
    this.follower = new PrefixFollower(
      this.store,
      {load: this.keys.dhcpStatePrefixes(), watch: this.keys.prefix},
      {snapshot: (kvs, revision) => this.snapshot(kvs, revision), change: (c) => this.change(c), log: this.log},
    )
    await this.follower.start()
    if (!this.cache.spec) throw new Error('no cluster spec in etcd')
  }

  async stop(): Promise<void> {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    await this.flushing
    await this.flushDiscovered(Infinity)
    await this.follower?.stop()
  }

  /** The network settings replies carry. */
  get clusterSpec(): ClusterSpec {
    if (!this.cache.spec) throw new Error('allocator not started')
    return this.cache.spec
  }

  get load(): AllocatorLoad {
    return {
      leaseWrites: this.leaseWrites,
      offersAwaitingRequest: this.offersAwaitingRequest(),
      leaseWriteMs: Math.round(this.leaseWriteMs),
      discovered: this.cache.discovered.size,
      discoveredPending: this.pendingPut.size + this.pendingDelete.size,
      reloads: this.follower?.reloads ?? 0,
    }
  }

  identify(mac: string): ClientIdentity | undefined {
    const registry = this.cache.registry
    const name = registry.macs.get(mac)?.value.node
    const node = name ? registry.nodes.get(name)?.value : undefined
    if (!node || node.state === 'removed') return undefined
    return {type: node.type, node: node.name, ...(node.ip ? {fixedIp: node.ip} : {})}
  }

  /**
   * Chooses an address for a DISCOVER and holds it briefly in memory; undefined when the MAC
   * is unknown and unknown MACs are ignored, or when its range is full.
   */
  async offer(client: ClientInfo): Promise<Offer | undefined> {
    const identity = this.identifyOrDiscover(client)
    if (!identity) return undefined
    const ip = this.choose(client, identity)
    if (ip === undefined) return undefined
    this.hold(ip, client.mac)
    return {ip: fromInt(ip), identity, leaseSeconds: leaseSecondsFor(identity)}
  }

  /** The client chose another server's offer: free ours. */
  forgetOffer(mac: string): void {
    const ip = this.offerOf.get(mac)
    if (ip !== undefined) this.unhold(ip)
  }

  /**
   * Grants (or renews) `ip` to the client in one etcd transaction. Refuses an address that is
   * not the client's to have: wrong range for its type, someone else's, reserved, declined.
   */
  async commit(client: ClientInfo, ipText: string): Promise<CommitResult | undefined> {
    const identity = this.identifyOrDiscover(client)
    if (!identity) return undefined
    const ip = parseIpv4(ipText)
    if (ip === undefined) return {ok: false, reason: `${ipText} is not an address`}
    const wrong = this.wrongAddress(client.mac, identity, ip)
    if (wrong) return {ok: false, reason: wrong}
    for (let attempt = 0; attempt < 3; attempt++) {
      const taken = this.takenBy(ip, client.mac)
      if (taken) return {ok: false, reason: taken}
      const held = this.heldElsewhere(client.mac, identity, ip)
      if (held) return {ok: false, reason: `${client.mac} holds ${held}: ask for that address`}
      const cached = await this.fresh(ip, client, identity)
      if (cached) return cached
      const hostname = storedHostname(client.hostname)
      const lease: Lease = {
        ip: fromInt(ip),
        mac: client.mac,
        ...(identity.node ? {node: identity.node} : {}),
        type: identity.type,
        state: 'bound',
        expiresAt: new Date(this.now() + leaseSecondsFor(identity) * 1000).toISOString(),
        grantedBy: this.options.serverId,
        ...(hostname ? {hostname} : {}),
      }
      if (await this.write(lease, identity)) {
        this.unhold(ip)
        return {ok: true, lease, identity, leaseSeconds: leaseSecondsFor(identity)}
      }
      // Lost a race (another server, or a stale cache): read what is there now and decide again.
      await this.refresh(ip, client.mac)
    }
    return {ok: false, reason: `${fromInt(ip)} is being allocated concurrently`}
  }

  /**
   * Lease caching (as Kea's cache-threshold): a client renewing a lease granted moments ago is
   * ACKed with the time it has left, without a write. Durability is unchanged: what etcd holds
   * covers everything the client was told; the lease is extended once it has aged past the
   * threshold (long before T1 for any real client). Saves a write (an fsync) per retransmitted
   * or repeated REQUEST during boot storms. The cache is checked against etcd first, in a
   * compare-only transaction (a read, no write) that carries the fence: another server may
   * have moved the lease since (this cache's watch lags), and a deposed leader must not answer.
   */
  private async fresh(ip: number, client: ClientInfo, identity: ClientIdentity): Promise<CommitResult | undefined> {
    const entry = this.cache.leases.get(ip)
    const lease = entry?.value
    if (!entry || !lease || lease.state !== 'bound' || lease.mac !== client.mac || lease.type !== identity.type || lease.node !== identity.node) return undefined
    const index = this.cache.byMac.get(client.mac)
    if (index?.value.ip !== lease.ip) return undefined
    const full = leaseSecondsFor(identity)
    const left = Math.floor((entry.expiresMs - this.now()) / 1000)
    if (left < full * (1 - settings.dhcp.leaseCacheThreshold) || left > full) return undefined
    const check = this.store.transaction().ifUnchanged(this.keys.lease(lease.ip), String(entry.rev)).ifUnchanged(this.keys.leaseByMac(client.mac), String(index.rev))
    this.options.fence?.(check)
    if (!(await check.commit())) return undefined
    this.unhold(ip)
    return {ok: true, lease, identity, leaseSeconds: left}
  }

  /** DHCPRELEASE: the client gives its address back. The MAC index stays, so it gets it again. */
  async release(mac: string, ipText: string): Promise<boolean> {
    const ip = parseIpv4(ipText)
    const entry = ip === undefined ? undefined : this.cache.leases.get(ip)
    if (ip === undefined || !entry?.value || entry.value.mac !== mac || entry.value.state !== 'bound') return false
    const key = this.keys.lease(fromInt(ip))
    const txn = this.store.transaction().ifUnchanged(key, String(entry.rev)).delete(key)
    this.options.fence?.(txn)
    const {applied, revision} = await txn.commitAt()
    if (applied) this.leaseGone(ip, Number(revision))
    return applied
  }

  /** DHCPDECLINE: the address is in use by someone else; keep it out of the pool for a while. */
  async decline(mac: string, ipText: string): Promise<boolean> {
    const ip = parseIpv4(ipText)
    const entry = ip === undefined ? undefined : this.cache.leases.get(ip)
    if (ip === undefined || !entry?.value || entry.value.mac !== mac) return false
    const key = this.keys.lease(fromInt(ip))
    const declined: Lease = {
      ...entry.value,
      state: 'declined',
      expiresAt: new Date(this.now() + settings.dhcp.declineHoldSeconds * 1000).toISOString(),
      grantedBy: this.options.serverId,
    }
    const txn = this.store.transaction().ifUnchanged(key, String(entry.rev)).put(key, declined)
    this.options.fence?.(txn)
    const {applied, revision} = await txn.commitAt()
    if (applied) this.cache.setLease(ip, declined, Number(revision))
    this.log(`${mac} declined ${fromInt(ip)}: held out of the pool for ${settings.dhcp.declineHoldSeconds} s`)
    return applied
  }

  private identifyOrDiscover(client: ClientInfo): ClientIdentity | undefined {
    const known = this.identify(client.mac)
    if (known) return known
    if (this.options.unknown === 'ignore') return undefined
    this.recordDiscovered(client)
    return {type: 'discovered'}
  }

  /**
   * Records an unknown MAC (first/last seen, vendor class, architecture, hostname), throttled
   * per MAC and written in batches: the answer does not depend on it, and a PXE storm of new
   * machines should not cost one etcd write each before their first OFFER. At most
   * settings.dhcp.maxDiscovered are kept: the least recently seen go first, so a flood of
   * spoofed MACs cannot grow etcd (or this cache) without bound.
   */
  private recordDiscovered(client: ClientInfo): void {
    const discovered = this.cache.discovered
    const cached = discovered.get(client.mac)
    const nowMs = this.now()
    if (cached && nowMs - cached.touchedMs < settings.dhcp.discoveredTouchIntervalMs) return
    const now = new Date(nowMs).toISOString()
    const vendorClass = storedVendorClass(client.vendorClass, settings.dhcp.maxStoredVendorClass)
    const hostname = storedHostname(client.hostname)
    const clientArch = client.clientArch?.slice(0, settings.dhcp.maxStoredClientArchs)
    const value: DiscoveredMac = {
      mac: client.mac,
      state: 'discovered',
      firstSeen: cached?.value.firstSeen ?? now,
      lastSeen: now,
      ...(vendorClass ? {vendorClass} : {}),
      ...(clientArch?.length ? {clientArch} : {}),
      ...(hostname ? {hostname} : {}),
    }
    // Most recently seen last: eviction takes from the front.
    discovered.delete(client.mac)
    discovered.set(client.mac, {value, rev: cached?.rev ?? 0, touchedMs: nowMs})
    this.pendingPut.add(client.mac)
    this.pendingDelete.delete(client.mac)
    this.evictDiscovered()
    this.scheduleFlush(settings.dhcp.discoveredBatchMs)
  }

  /** Drops the least recently seen MACs beyond the cap; those already in etcd are removed there too. */
  private evictDiscovered(): void {
    const discovered = this.cache.discovered
    for (const [mac, entry] of discovered) {
      if (discovered.size <= settings.dhcp.maxDiscovered) return
      discovered.delete(mac)
      this.pendingPut.delete(mac)
      if (entry.rev > 0) this.pendingDelete.add(mac)
    }
  }

  private scheduleFlush(delayMs: number): void {
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined
      this.flushing = this.flushing.then(() => this.flushDiscovered(settings.dhcp.discoveredWritesPerFlush))
    }, delayMs)
  }

  /**
   * Writes pending discovered MACs (the most recent first) and removes evicted ones: at most
   * `budget` operations, so a flood of new MACs costs etcd a bounded write rate, in fenced
   * transactions of at most settings.etcdMaxTxnOps operations.
   */
  private async flushDiscovered(budget: number): Promise<void> {
    const deletes = [...this.pendingDelete].slice(0, budget)
    const room = budget - deletes.length
    const waiting = [...this.pendingPut]
    const puts = room >= waiting.length ? waiting : room > 0 ? waiting.slice(waiting.length - room) : []
    const ops: ({kind: 'delete'; mac: string} | {kind: 'put'; mac: string; value: DiscoveredMac})[] = [
      ...deletes.map((mac) => ({kind: 'delete' as const, mac})),
      ...puts.flatMap((mac) => {
        const entry = this.cache.discovered.get(mac)
        if (!entry) this.pendingPut.delete(mac)
        return entry ? [{kind: 'put' as const, mac, value: entry.value}] : []
      }),
    ]
    let outcome: 'done' | 'refused' | 'failed' = 'done'
    for (let i = 0; i < ops.length && outcome === 'done'; i += settings.etcdMaxTxnOps) {
      const chunk = ops.slice(i, i + settings.etcdMaxTxnOps)
      const txn = this.store.transaction()
      for (const op of chunk) {
        if (op.kind === 'put') txn.put(this.keys.discovered(op.mac), op.value)
        else txn.delete(this.keys.discovered(op.mac))
      }
      this.options.fence?.(txn)
      try {
        const {applied, revision} = await txn.commitAt()
        if (!applied) {
          // Not (or no longer) the leader: what is pending waits for leadership.
          outcome = 'refused'
          break
        }
        for (const op of chunk) {
          if (op.kind === 'delete') {
            this.pendingDelete.delete(op.mac)
            continue
          }
          const entry = this.cache.discovered.get(op.mac)
          if (entry?.value === op.value) {
            entry.rev = Number(revision)
            this.pendingPut.delete(op.mac)
          } else if (!entry) this.pendingDelete.add(op.mac) // evicted while being written
        }
      } catch (err) {
        outcome = 'failed'
        this.log(`recording discovered MACs failed (${chunk.length} writes, ${this.pendingPut.size + this.pendingDelete.size} pending): ${(err as Error).message}`)
      }
    }
    this.flushBackoffMs = outcome === 'failed' ? Math.min(Math.max(this.flushBackoffMs * 2, settings.dhcp.discoveredBatchMs), 5000) : 0
    if (outcome !== 'refused' && budget !== Infinity && (this.pendingPut.size > 0 || this.pendingDelete.size > 0)) {
      this.scheduleFlush(outcome === 'failed' ? this.flushBackoffMs : settings.dhcp.discoveredBatchMs)
    }
  }

  /**
   * The address this MAC holds now, other than `ip`: a bound, unexpired lease still right for
   * its type. The client may be using it (another server may have ACKed it a moment ago, while
   * this REQUEST was a stale retransmission), so a grant elsewhere must not take it away: the
   * client is NAKed and, restarting, is offered the address it holds.
   */
  private heldElsewhere(mac: string, identity: ClientIdentity, ip: number): string | undefined {
    const index = this.cache.byMac.get(mac)
    const current = index ? parseIpv4(index.value.ip) : undefined
    if (current === undefined || current === ip) return undefined
    const lease = this.cache.leases.get(current)
    if (!lease || lease.value.mac !== mac || lease.value.state !== 'bound' || lease.expiresMs <= this.now()) return undefined
    return this.wrongAddress(mac, identity, current) ? undefined : lease.value.ip
  }

  /** Why `ip` can never be this client's (wrong type range, reserved), or undefined if it can. */
  private wrongAddress(mac: string, identity: ClientIdentity, ip: number): string | undefined {
    if (identity.fixedIp) return identity.fixedIp === fromInt(ip) ? undefined : `${mac} has the fixed address ${identity.fixedIp}`
    const range = this.cache.ranges.get(identity.type)
    if (!range || !inRange(ip, range)) return `${fromInt(ip)} is outside the ${identity.type} range`
    if (this.cache.reserved.has(ip)) return `${fromInt(ip)} is reserved (a node's fixed IP, the gateway or the VIP)`
    return undefined
  }

  /** Why `ip` is not free for `mac` right now (leased to another MAC, declined, offered), or undefined. */
  private takenBy(ip: number, mac: string): string | undefined {
    const nowMs = this.now()
    const lease = this.cache.leases.get(ip)
    if (lease?.value && lease.expiresMs > nowMs) {
      if (lease.value.state === 'declined') return `${fromInt(ip)} was declined and is held out of the pool`
      if (lease.value.mac !== mac) return `${fromInt(ip)} is leased to another client`
    }
    const hold = this.offers.get(ip)
    if (hold && hold.mac !== mac && hold.untilMs > nowMs) return `${fromInt(ip)} is offered to another client`
    return undefined
  }

  /** The fast form of wrongAddress + takenBy for scanning a range: no message strings built. */
  private isFree(ip: number, mac: string, identity: ClientIdentity, range: IntRange | undefined, nowMs: number): boolean {
    if (identity.fixedIp) {
      if (identity.fixedIp !== fromInt(ip)) return false
    } else if (!range || ip < range.start || ip > range.end || this.cache.reserved.has(ip)) return false
    const lease = this.cache.leases.get(ip)
    if (lease && lease.expiresMs > nowMs && (lease.value.state === 'declined' || lease.value.mac !== mac)) return false
    const hold = this.offers.get(ip)
    return !(hold && hold.mac !== mac && hold.untilMs > nowMs)
  }

  private choose(client: ClientInfo, identity: ClientIdentity): number | undefined {
    const nowMs = this.now()
    const range = this.cache.ranges.get(identity.type)
    const free = (ip: number): boolean => this.isFree(ip, client.mac, identity, range, nowMs)
    if (identity.fixedIp) {
      const ip = parseIpv4(identity.fixedIp) as number
      return free(ip) ? ip : undefined
    }
    // The same address as before, the one offered a moment ago, the one the client asks for;
    // then the next never-used address (next fit: a scan resumes where the last one ended, so
    // a filling range costs no rescans), else the first expired one.
    const current = this.cache.byMac.get(client.mac)?.value.ip
    for (const candidate of [current === undefined ? undefined : parseIpv4(current), this.offerOf.get(client.mac), client.requestedIp === undefined ? undefined : parseIpv4(client.requestedIp)]) {
      if (candidate !== undefined && free(candidate)) return candidate
    }
    if (!range) return undefined
    if ((this.fullUntil.get(identity.type) ?? 0) > nowMs) return undefined
    const size = range.end - range.start + 1
    const from = this.cursor.get(identity.type) ?? range.start
    let expired: number | undefined
    for (let i = 0; i < size; i++) {
      const ip = range.start + ((from - range.start + i) % size)
      if (!free(ip)) continue
      if (!this.cache.leases.has(ip)) {
        this.cursor.set(identity.type, ip + 1 > range.end ? range.start : ip + 1)
        return ip
      }
      expired ??= ip
    }
    if (expired === undefined) {
      // Full: do not scan it again for every DISCOVER of a flood; holds and leases expire by
      // time (hence the short mark), a freed address clears it at once.
      this.fullUntil.set(identity.type, nowMs + settings.dhcp.fullRangeRecheckMs)
      this.log(`no free address in the ${identity.type} range`)
    }
    return expired
  }

  private hold(ip: number, mac: string): void {
    this.expireHolds()
    this.offersAwaitingRequest() // trims the window
    this.forgetOffer(mac)
    this.unhold(ip)
    const hold: Hold = {mac, untilMs: this.now() + settings.dhcp.offerHoldMs, madeMs: performance.now(), awaiting: true}
    // Deleted and set again, so the map stays in hold order.
    this.offers.set(ip, hold)
    this.offerOf.set(mac, ip)
    this.recentHolds.push(hold)
    this.awaitingRequest++
  }

  /**
   * OFFERs made lately whose REQUEST has not come: lease writes on their way. Counted by the
   * server's admission, so a burst of admitted DISCOVERs cannot come back as more REQUESTs
   * than the pipeline takes. An OFFER the client never takes up stops counting after the window.
   */
  private offersAwaitingRequest(): number {
    const cutoff = performance.now() - settings.dhcp.offerAnswerWindowMs
    let gone = 0
    while (gone < this.recentHolds.length && this.recentHolds[gone].madeMs < cutoff) {
      const hold = this.recentHolds[gone++]
      if (hold.awaiting) {
        hold.awaiting = false
        this.awaitingRequest--
      }
    }
    if (gone > 0) this.recentHolds = this.recentHolds.slice(gone)
    return this.awaitingRequest
  }

  private unhold(ip: number): void {
    const hold = this.offers.get(ip)
    if (!hold) return
    if (hold.awaiting) {
      hold.awaiting = false
      this.awaitingRequest--
    }
    this.offers.delete(ip)
    if (this.offerOf.get(hold.mac) === ip) this.offerOf.delete(hold.mac)
    this.fullUntil.clear()
  }

  /** Drops lapsed holds (the map is in hold order, so the oldest come first). */
  private expireHolds(): void {
    const nowMs = this.now()
    for (const [ip, hold] of this.offers) {
      if (hold.untilMs > nowMs) break
      this.unhold(ip)
    }
  }

  private leaseGone(ip: number, rev: number): void {
    this.cache.setLease(ip, undefined, rev)
    this.fullUntil.clear()
  }

  /**
   * One lease write, as part of a transaction: the lease (create-only, or replacing exactly the
   * revision we saw), the MAC's index entry (same), the MAC's previous lease elsewhere removed,
   * and other MACs' index entries that still name this address removed (so the index never
   * outgrows the leases). Planned from the cache when its transaction is built.
   */
  private plan(lease: Lease, identity: ClientIdentity): WritePlan | 'held' {
    // Checked again here, against the cache the compares come from: it may have changed
    // while the REQUEST was being worked out.
    if (this.heldElsewhere(lease.mac, identity, parseIpv4(lease.ip) as number)) return 'held'
    const cache = this.cache
    const ip = parseIpv4(lease.ip) as number
    const keys = this.keys
    const existing = cache.leases.get(ip)
    const index = cache.byMac.get(lease.mac)
    const previousIp = index && index.value.ip !== lease.ip ? parseIpv4(index.value.ip) : undefined
    const previous = previousIp === undefined ? undefined : cache.leases.get(previousIp)
    const dropPrevious = previous && previous.value.mac === lease.mac && previous.value.state === 'bound' ? previous : undefined
    const stale = [...(cache.indexedAt.get(ip) ?? [])].filter((mac) => mac !== lease.mac)
    const touched = [keys.lease(lease.ip), keys.leaseByMac(lease.mac), ...(dropPrevious ? [keys.lease(dropPrevious.value.ip)] : []), ...stale.map((m) => keys.leaseByMac(m))]
    return {
      keys: touched,
      size: touched.length,
      addTo: (txn) => {
        if (existing) txn.ifUnchanged(keys.lease(lease.ip), String(existing.rev))
        else txn.ifAbsent(keys.lease(lease.ip))
        if (index) txn.ifUnchanged(keys.leaseByMac(lease.mac), String(index.rev))
        else txn.ifAbsent(keys.leaseByMac(lease.mac))
        txn.put(keys.lease(lease.ip), lease).put(keys.leaseByMac(lease.mac), {ip: lease.ip} satisfies LeaseByMac)
        if (dropPrevious) txn.ifUnchanged(keys.lease(dropPrevious.value.ip), String(dropPrevious.rev)).delete(keys.lease(dropPrevious.value.ip))
        for (const mac of stale) txn.ifUnchanged(keys.leaseByMac(mac), String(cache.byMac.get(mac)?.rev)).delete(keys.leaseByMac(mac))
      },
      applied: (rev) => {
        this.cache.setLease(ip, lease, rev)
        this.cache.setIndex(lease.mac, {ip: lease.ip}, rev)
        if (dropPrevious) this.leaseGone(previousIp as number, rev)
        for (const mac of stale) this.cache.setIndex(mac, undefined, rev)
      },
    }
  }

  /** Queues a lease write; resolves whether it was applied (false: a compare failed, nothing written). */
  private write(lease: Lease, identity: ClientIdentity): Promise<boolean> {
    this.leaseWrites++
    const queuedAt = performance.now()
    const done = (): void => {
      this.leaseWrites--
      this.leaseWriteMs += (performance.now() - queuedAt - this.leaseWriteMs) * 0.2
    }
    return new Promise<boolean>((resolve, reject) => {
      this.writeQueue.push({lease, identity, resolve, reject})
      this.pumpWrites()
    }).finally(done)
  }

  /**
   * Group commit: while settings.dhcp.leaseWriteBatchesInFlight transactions are with etcd,
   * the writes that come in meanwhile wait, and the next transaction carries all of them (up to
   * etcd's per-transaction limit): one gRPC call and one raft entry for many leases, and no
   * added delay when the pipeline is empty.
   */
  private pumpWrites(): void {
    while (this.batchesInFlight < settings.dhcp.leaseWriteBatchesInFlight && this.writeQueue.length > 0) {
      const batch = this.takeBatch()
      this.batchesInFlight++
      void this.commitBatch(batch).finally(() => {
        this.batchesInFlight--
        this.pumpWrites()
      })
    }
  }

  /** The queued writes that fit one transaction and touch no key another one in it touches. */
  private takeBatch(): PlannedWrite[] {
    const batch: PlannedWrite[] = []
    const rest: QueuedWrite[] = []
    const keys = new Set<string>()
    // Each key is compared and written or deleted once at most; one more compare for the fence.
    let room = settings.etcdMaxTxnOps - 1
    for (const write of this.writeQueue) {
      const plan = batch.length < settings.dhcp.leaseWriteBatch ? this.plan(write.lease, write.identity) : undefined
      if (plan === 'held') {
        write.resolve(false)
        continue
      }
      if (!plan || plan.size > room || plan.keys.some((k) => keys.has(k))) {
        rest.push(write)
        continue
      }
      for (const k of plan.keys) keys.add(k)
      room -= plan.size
      batch.push({...write, plan})
    }
    this.writeQueue = rest
    return batch
  }

  private async commitBatch(batch: PlannedWrite[]): Promise<void> {
    try {
      const txn = this.store.transaction()
      for (const w of batch) w.plan.addTo(txn)
      this.options.fence?.(txn)
      const {applied, revision} = await txn.commitAt()
      if (applied || batch.length === 1) {
        for (const w of batch) {
          if (applied) w.plan.applied(Number(revision))
          w.resolve(applied)
        }
        return
      }
    } catch (err) {
      for (const w of batch) w.reject(err)
      return
    }
    // etcd transactions are all-or-nothing: one failed compare (a race, a stale cache entry)
    // refused the others too. Each again on its own, planned from the cache as it is now.
    await Promise.all(
      batch.map(async (w) => {
        try {
          const plan = this.plan(w.lease, w.identity)
          if (plan === 'held') return w.resolve(false)
          const txn = this.store.transaction()
          plan.addTo(txn)
          this.options.fence?.(txn)
          const {applied, revision} = await txn.commitAt()
          if (applied) plan.applied(Number(revision))
          w.resolve(applied)
        } catch (err) {
          w.reject(err)
        }
      }),
    )
  }

  /** Re-reads what a failed write compared: the lease on `ip`, the MAC's index entry and its lease, other index entries naming `ip`. */
  private async refresh(ip: number, mac: string): Promise<void> {
    const indexKeys = [mac, ...(this.cache.indexedAt.get(ip) ?? [])]
    const [lease, ...indexes] = await Promise.all([this.store.getJson<Lease>(this.keys.lease(fromInt(ip))), ...indexKeys.map((m) => this.store.getJson<LeaseByMac>(this.keys.leaseByMac(m)))])
    // A read is the truth now: overwrite whatever the cache had.
    this.cache.leases.delete(ip)
    this.cache.setLease(ip, lease?.value, lease ? Number(lease.modRevision) : 0)
    indexKeys.forEach((m, i) => {
      this.cache.setIndex(m, undefined, Infinity)
      const row = indexes[i]
      if (row) this.cache.setIndex(m, row.value, Number(row.modRevision))
    })
    const index = indexes[0]
    const other = index ? parseIpv4(index.value.ip) : undefined
    if (other !== undefined && other !== ip) {
      const row = await this.store.getJson<Lease>(this.keys.lease(index!.value.ip))
      this.cache.leases.delete(other)
      this.cache.setLease(other, row?.value, row ? Number(row.modRevision) : 0)
    }
  }

  /** A new snapshot from the follower (the first, or after a compaction): replaces the cache whole. */
  private snapshot(kvs: StoredKv[], revision: string): void {
    const next = new DhcpCache(this.keys, this.log)
    const discovered: DiscoveredEntry[] = []
    for (const kv of kvs) {
      const value = parseJson(kv)
      const what = this.keys.dhcpStateKey(kv.key)
      if (what?.kind === 'discovered') {
        const d = value as DiscoveredMac | undefined
        if (d?.lastSeen) discovered.push({value: d, rev: Number(kv.modRevision), touchedMs: Date.parse(d.lastSeen) || 0})
      } else this.apply(next, kv, value)
    }
    // Least recently seen first; MACs recorded here and not written yet keep their place.
    discovered.sort((a, b) => a.touchedMs - b.touchedMs)
    for (const d of discovered) next.discovered.set(d.value.mac, d)
    for (const mac of this.pendingPut) {
      const mine = this.cache.discovered.get(mac)
      if (mine) next.discovered.set(mac, {...mine, rev: next.discovered.get(mac)?.rev ?? mine.rev})
    }
    // What was evicted and is still in etcd is back in the map: the cap evicts it again below.
    this.pendingDelete.clear()
    if (!next.spec && this.cache.lastSpec) {
      this.log(`no cluster spec in etcd at revision ${revision}: keeping the one loaded before`)
      next.lastSpec = this.cache.lastSpec
    }
    this.cache = next
    this.fullUntil.clear()
    this.evictDiscovered()
  }

  /** One change from the watch. */
  private change({kind, kv}: KvChange): void {
    const value = kind === 'put' ? parseJson(kv) : undefined
    if (kind === 'put' && value === undefined) return
    const what = this.keys.dhcpStateKey(kv.key)
    if (what?.kind !== 'discovered') {
      this.apply(this.cache, kv, value)
      return
    }
    const discovered = this.cache.discovered
    const entry = discovered.get(what.mac)
    const rev = Number(kv.modRevision)
    if (!value) {
      // Removed (by another leader's cap): forgotten here too, unless seen since and not yet written.
      if (entry && !this.pendingPut.has(what.mac) && entry.rev <= rev) discovered.delete(what.mac)
      this.pendingDelete.delete(what.mac)
      return
    }
    if (entry) {
      entry.rev = Math.max(entry.rev, rev)
      return
    }
    // Written by another server (or by this one and evicted since): the newest, and the cap holds.
    const d = value as DiscoveredMac
    discovered.set(what.mac, {value: d, rev, touchedMs: Date.parse(d.lastSeen) || 0})
    this.evictDiscovered()
  }

  /** Applies one key (not a discovered MAC) from a snapshot or the watch to a cache. */
  private apply(cache: DhcpCache, kv: StoredKv, value: unknown): void {
    const what = this.keys.dhcpStateKey(kv.key)
    if (!what) return
    const rev = Number(kv.modRevision)
    switch (what.kind) {
      case 'spec':
        if (value) cache.specKeys.set(kv.key, kv)
        else cache.specKeys.delete(kv.key)
        cache.changed('spec')
        break
      case 'node':
        if (value) cache.stored.nodes.set(what.name, {value: value as NodeRecord, modRevision: kv.modRevision})
        else cache.stored.nodes.delete(what.name)
        cache.changed('registry')
        break
      case 'mac':
        if (value) cache.stored.macs.set(what.mac, {value: value as MacBinding, modRevision: kv.modRevision})
        else cache.stored.macs.delete(what.mac)
        cache.changed('registry')
        break
      case 'lease': {
        const ip = parseIpv4(what.ip)
        if (ip === undefined) break
        if (value) cache.setLease(ip, value as Lease, rev)
        else if (cache === this.cache) this.leaseGone(ip, rev)
        else cache.setLease(ip, undefined, rev)
        break
      }
      case 'leaseByMac':
        cache.setIndex(what.mac, value as LeaseByMac | undefined, rev)
        break
      default:
        break
    }
  }
}

export const leaseSecondsFor = (identity: ClientIdentity): number => (identity.type === 'discovered' ? settings.dhcp.discoveryLeaseSeconds : settings.dhcp.leaseSeconds)
