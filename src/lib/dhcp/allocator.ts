import type {IKeyValue, Watcher} from 'etcd3'

import type {EtcdStore, Transaction} from '../etcd/store.js'
import type {MacBinding, NodeRecord} from '../nodes/record.js'
import {settings} from '../settings.js'
import {fromInt, inRange, parseIpv4, parseRange, type IntRange} from '../spec/ipv4.js'
import type {ClusterSpec} from '../spec/types.js'
import type {DiscoveredMac, Lease, LeaseByMac, LeaseType} from './lease.js'

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
   * Fencing (issue 4): adds the election's compare to every lease write, e.g. "the dhcp leader
   * key still has the create revision of my token", so a deposed leader's writes are refused.
   */
  fence?: Fence
}

/** Adds a compare to a transaction that holds only while this server may write. */
export type Fence = (txn: Transaction) => void

interface Cached<T> {
  value: T | undefined
  /** Mod revision of the value (or of its deletion): older watch events are ignored. */
  rev: number
}

interface CachedLease extends Cached<Lease> {
  expiresMs: number
}

/**
 * MAC-typed address allocation with the leases in etcd. A local cache (loaded at start, kept
 * current by a watch) makes choosing an address a memory operation; correctness never depends
 * on the cache: every grant is one etcd transaction that is create-only on the IP (or compares
 * the revision of the expired/own lease it replaces) and on the MAC's index entry, so two
 * servers can never give one address to two MACs. A transaction that loses a race re-reads the
 * keys it compared and tries again.
 */
export class LeaseAllocator {
  private spec?: ClusterSpec
  private nodes = new Map<string, NodeRecord>()
  private macs = new Map<string, string>()
  private leases = new Map<number, CachedLease>()
  private byMac = new Map<string, Cached<LeaseByMac>>()
  private discovered = new Map<string, Cached<DiscoveredMac> & {touchedMs: number}>()
  /** Addresses no client may get from a range: every node's fixed IP, the gateway, the VIP. */
  private reserved = new Set<number>()
  private ranges = new Map<LeaseType, IntRange>()
  /** In-memory OFFER holds, so two DISCOVERs in flight do not get the same address. */
  private offers = new Map<number, {mac: string; untilMs: number}>()
  private watcher?: Watcher
  /** Discovered MACs not yet written, and the batch being written: stop() flushes both. */
  private discoveredQueue = new Map<string, DiscoveredMac>()
  private flushTimer?: NodeJS.Timeout
  private flushing: Promise<unknown> = Promise.resolve()
  private readonly now: () => number
  private readonly log: (line: string) => void

  constructor(
    private readonly store: EtcdStore,
    private readonly options: AllocatorOptions,
  ) {
    this.now = options.now ?? Date.now
    this.log = options.log ?? (() => {})
  }

  get keys() {
    return this.store.keys
  }

  /** Loads the spec, nodes, MAC bindings and leases, then follows changes with a watch. */
  async start(): Promise<void> {
    const res = await this.store.call('load dhcp state', (c) => c.getAll().prefix(this.keys.prefix).exec())
    for (const kv of res.kvs) this.apply(kv, 'put')
    if (!this.spec) throw new Error('no cluster spec in etcd')
    this.watcher = await this.store.call('watch', (c) =>
      c
        .watch()
        .prefix(this.keys.prefix)
        .startRevision(String(Number(res.header.revision) + 1))
        .create(),
    )
    this.watcher.on('put', (kv) => this.apply(kv, 'put'))
    this.watcher.on('delete', (kv) => this.apply(kv, 'delete'))
  }

  async stop(): Promise<void> {
    clearTimeout(this.flushTimer)
    await this.flushing
    await this.flushDiscovered()
    // Idempotent: cancelling an etcd3 watcher twice never resolves.
    const watcher = this.watcher
    this.watcher = undefined
    await watcher?.cancel()
  }

  /** The network settings replies carry. */
  get clusterSpec(): ClusterSpec {
    if (!this.spec) throw new Error('allocator not started')
    return this.spec
  }

  identify(mac: string): ClientIdentity | undefined {
    const name = this.macs.get(mac)
    const node = name ? this.nodes.get(name) : undefined
    if (!node || node.state === 'removed') return undefined
    return {type: node.type, node: node.name, ...(node.ip ? {fixedIp: node.ip} : {})}
  }

  /**
   * Chooses an address for a DISCOVER and holds it briefly in memory; undefined when the MAC
   * is unknown and unknown MACs are ignored, or when its range is full.
   */
  async offer(client: ClientInfo): Promise<Offer | undefined> {
    const identity = await this.identifyOrDiscover(client)
    if (!identity) return undefined
    const ip = this.choose(client, identity)
    if (ip === undefined) {
      this.log(`no free address for ${client.mac} (${identity.type})`)
      return undefined
    }
    this.offers.set(ip, {mac: client.mac, untilMs: this.now() + settings.dhcp.offerHoldMs})
    return {ip: fromInt(ip), identity, leaseSeconds: leaseSecondsFor(identity)}
  }

  /** The client chose another server's offer: free ours. */
  forgetOffer(mac: string): void {
    for (const [ip, hold] of this.offers) if (hold.mac === mac) this.offers.delete(ip)
  }

  /**
   * Grants (or renews) `ip` to the client in one etcd transaction. Refuses an address that is
   * not the client's to have: wrong range for its type, someone else's, reserved, declined.
   */
  async commit(client: ClientInfo, ipText: string): Promise<CommitResult | undefined> {
    const identity = await this.identifyOrDiscover(client)
    if (!identity) return undefined
    const ip = parseIpv4(ipText)
    if (ip === undefined) return {ok: false, reason: `${ipText} is not an address`}
    const wrong = this.wrongAddress(client.mac, identity, ip)
    if (wrong) return {ok: false, reason: wrong}
    for (let attempt = 0; attempt < 3; attempt++) {
      const taken = this.takenBy(ip, client.mac)
      if (taken) return {ok: false, reason: taken}
      const cached = this.fresh(ip, client, identity)
      if (cached) return cached
      const lease: Lease = {
        ip: fromInt(ip),
        mac: client.mac,
        ...(identity.node ? {node: identity.node} : {}),
        type: identity.type,
        state: 'bound',
        expiresAt: new Date(this.now() + leaseSecondsFor(identity) * 1000).toISOString(),
        grantedBy: this.options.serverId,
        ...(client.hostname ? {hostname: client.hostname} : {}),
      }
      if (await this.write(lease)) {
        this.offers.delete(ip)
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
   * threshold (long before T1 for any real client). Saves a transaction per retransmitted or
   * repeated REQUEST during boot storms.
   */
  private fresh(ip: number, client: ClientInfo, identity: ClientIdentity): CommitResult | undefined {
    const entry = this.leases.get(ip)
    const lease = entry?.value
    if (!lease || lease.state !== 'bound' || lease.mac !== client.mac || lease.type !== identity.type || lease.node !== identity.node) return undefined
    if (this.byMac.get(client.mac)?.value?.ip !== lease.ip) return undefined
    const full = leaseSecondsFor(identity)
    const left = Math.floor((entry.expiresMs - this.now()) / 1000)
    if (left < full * (1 - settings.dhcp.leaseCacheThreshold) || left > full) return undefined
    this.offers.delete(ip)
    return {ok: true, lease, identity, leaseSeconds: left}
  }

  /** DHCPRELEASE: the client gives its address back. The MAC index stays, so it gets it again. */
  async release(mac: string, ipText: string): Promise<boolean> {
    const ip = parseIpv4(ipText)
    const entry = ip === undefined ? undefined : this.leases.get(ip)
    if (ip === undefined || !entry?.value || entry.value.mac !== mac || entry.value.state !== 'bound') return false
    const key = this.keys.lease(fromInt(ip))
    const txn = this.store.transaction().ifUnchanged(key, String(entry.rev)).delete(key)
    this.options.fence?.(txn)
    const {applied, revision} = await txn.commitAt()
    if (applied) this.setLease(ip, undefined, Number(revision))
    return applied
  }

  /** DHCPDECLINE: the address is in use by someone else; keep it out of the pool for a while. */
  async decline(mac: string, ipText: string): Promise<boolean> {
    const ip = parseIpv4(ipText)
    const entry = ip === undefined ? undefined : this.leases.get(ip)
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
    if (applied) this.setLease(ip, declined, Number(revision))
    this.log(`${mac} declined ${fromInt(ip)}: held out of the pool for ${settings.dhcp.declineHoldSeconds} s`)
    return applied
  }

  private async identifyOrDiscover(client: ClientInfo): Promise<ClientIdentity | undefined> {
    const known = this.identify(client.mac)
    if (known) return known
    if (this.options.unknown === 'ignore') return undefined
    this.recordDiscovered(client)
    return {type: 'discovered'}
  }

  /**
   * Records an unknown MAC (first/last seen, vendor class, architecture), throttled per MAC and
   * written in batches: the answer does not depend on it, and a PXE storm of new machines
   * should not cost one etcd write each before their first OFFER.
   */
  private recordDiscovered(client: ClientInfo): void {
    const cached = this.discovered.get(client.mac)
    const nowMs = this.now()
    if (cached?.value && nowMs - cached.touchedMs < settings.dhcp.discoveredTouchIntervalMs) return
    const now = new Date(nowMs).toISOString()
    const value: DiscoveredMac = {
      mac: client.mac,
      state: 'discovered',
      firstSeen: cached?.value?.firstSeen ?? now,
      lastSeen: now,
      ...(client.vendorClass ? {vendorClass: client.vendorClass} : {}),
      ...(client.clientArch ? {clientArch: client.clientArch} : {}),
      ...(client.hostname ? {hostname: client.hostname} : {}),
    }
    this.discovered.set(client.mac, {value, rev: cached?.rev ?? 0, touchedMs: nowMs})
    this.discoveredQueue.set(client.mac, value)
    this.flushTimer ??= setTimeout(() => void this.flushDiscovered(), settings.dhcp.discoveredBatchMs)
  }

  /** Writes queued discovered records, up to etcd's per-transaction limit per transaction. */
  private async flushDiscovered(): Promise<void> {
    this.flushTimer = undefined
    const batch = [...this.discoveredQueue.values()]
    this.discoveredQueue.clear()
    const writes: Promise<unknown>[] = []
    for (let i = 0; i < batch.length; i += settings.etcdMaxTxnOps) {
      const txn = this.store.transaction()
      for (const d of batch.slice(i, i + settings.etcdMaxTxnOps)) txn.put(this.keys.discovered(d.mac), d)
      writes.push(txn.commit().catch((err: unknown) => this.log(`recording ${batch.length} discovered MACs failed: ${(err as Error).message}`)))
    }
    this.flushing = Promise.all(writes)
    await this.flushing
  }

  private rangeFor(identity: ClientIdentity): IntRange | undefined {
    return this.ranges.get(identity.type)
  }

  /** Why `ip` can never be this client's (wrong type range, reserved), or undefined if it can. */
  private wrongAddress(mac: string, identity: ClientIdentity, ip: number): string | undefined {
    if (identity.fixedIp) return identity.fixedIp === fromInt(ip) ? undefined : `${mac} has the fixed address ${identity.fixedIp}`
    const range = this.rangeFor(identity)
    if (!range || !inRange(ip, range)) return `${fromInt(ip)} is outside the ${identity.type} range`
    if (this.reserved.has(ip)) return `${fromInt(ip)} is reserved (a node's fixed IP, the gateway or the VIP)`
    return undefined
  }

  /** Why `ip` is not free for `mac` right now (leased to another MAC, declined, offered), or undefined. */
  private takenBy(ip: number, mac: string): string | undefined {
    const nowMs = this.now()
    const lease = this.leases.get(ip)
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
    } else if (!range || ip < range.start || ip > range.end || this.reserved.has(ip)) return false
    const lease = this.leases.get(ip)
    if (lease?.value && lease.expiresMs > nowMs && (lease.value.state === 'declined' || lease.value.mac !== mac)) return false
    const hold = this.offers.get(ip)
    return !(hold && hold.mac !== mac && hold.untilMs > nowMs)
  }

  private choose(client: ClientInfo, identity: ClientIdentity): number | undefined {
    const nowMs = this.now()
    const range = this.rangeFor(identity)
    const free = (ip: number): boolean => this.isFree(ip, client.mac, identity, range, nowMs)
    if (identity.fixedIp) {
      const ip = parseIpv4(identity.fixedIp) as number
      return free(ip) ? ip : undefined
    }
    // The same address as before, then the one the client asks for, then the first free one
    // (never-used addresses before expired ones, so history stays readable).
    const current = this.byMac.get(client.mac)?.value
    for (const text of [current?.ip, client.requestedIp]) {
      const ip = text === undefined ? undefined : parseIpv4(text)
      if (ip !== undefined && free(ip)) return ip
    }
    if (!range) return undefined
    let expired: number | undefined
    for (let ip = range.start; ip <= range.end; ip++) {
      if (!free(ip)) continue
      if (!this.leases.get(ip)?.value) return ip
      expired ??= ip
    }
    return expired
  }

  /**
   * One transaction: the lease (create-only, or replacing exactly the revision we saw), the
   * MAC's index entry (same), and the MAC's previous lease elsewhere removed.
   */
  private async write(lease: Lease): Promise<boolean> {
    const ip = parseIpv4(lease.ip) as number
    const keys = this.keys
    const txn = this.store.transaction()
    const existing = this.leases.get(ip)
    if (existing?.value) txn.ifUnchanged(keys.lease(lease.ip), String(existing.rev))
    else txn.ifAbsent(keys.lease(lease.ip))
    const index = this.byMac.get(lease.mac)
    if (index?.value) txn.ifUnchanged(keys.leaseByMac(lease.mac), String(index.rev))
    else txn.ifAbsent(keys.leaseByMac(lease.mac))
    txn.put(keys.lease(lease.ip), lease).put(keys.leaseByMac(lease.mac), {ip: lease.ip} satisfies LeaseByMac)
    const previousIp = index?.value && index.value.ip !== lease.ip ? parseIpv4(index.value.ip) : undefined
    const previous = previousIp === undefined ? undefined : this.leases.get(previousIp)
    const dropPrevious = previous?.value && previous.value.mac === lease.mac && previous.value.state === 'bound'
    if (dropPrevious) txn.ifUnchanged(keys.lease(index!.value!.ip), String(previous.rev)).delete(keys.lease(index!.value!.ip))
    this.options.fence?.(txn)
    const {applied, revision} = await txn.commitAt()
    if (!applied) return false
    const rev = Number(revision)
    this.setLease(ip, lease, rev)
    this.byMac.set(lease.mac, {value: {ip: lease.ip}, rev})
    if (dropPrevious) this.setLease(previousIp as number, undefined, rev)
    return true
  }

  private async refresh(ip: number, mac: string): Promise<void> {
    const [lease, index] = await Promise.all([
      this.store.getJson<Lease>(this.keys.lease(fromInt(ip))),
      this.store.getJson<LeaseByMac>(this.keys.leaseByMac(mac)),
    ])
    // A read is the truth now: overwrite whatever the cache had.
    this.leases.delete(ip)
    this.setLease(ip, lease?.value, lease ? Number(lease.modRevision) : 0)
    this.byMac.set(mac, {value: index?.value, rev: index ? Number(index.modRevision) : 0})
    if (index?.value && index.value.ip !== fromInt(ip)) {
      const other = parseIpv4(index.value.ip)
      const row = await this.store.getJson<Lease>(this.keys.lease(index.value.ip))
      if (other !== undefined) {
        this.leases.delete(other)
        this.setLease(other, row?.value, row ? Number(row.modRevision) : 0)
      }
    }
  }

  private setLease(ip: number, value: Lease | undefined, rev: number): void {
    const cur = this.leases.get(ip)
    if (cur && cur.rev > rev) return
    if (!value) {
      this.leases.set(ip, {value: undefined, rev, expiresMs: 0})
      return
    }
    this.leases.set(ip, {value, rev, expiresMs: Date.parse(value.expiresAt)})
  }

  /** Applies one key from the initial load or the watch to the cache. */
  private apply(kv: IKeyValue, kind: 'put' | 'delete'): void {
    const key = kv.key.toString()
    const rev = Number(kv.mod_revision)
    const keys = this.keys
    let value: unknown
    if (kind === 'put') {
      try {
        value = JSON.parse(kv.value.toString())
      } catch {
        return // not ours to interpret
      }
    }
    if (key === keys.spec()) {
      if (value) this.spec = value as ClusterSpec
      this.derive()
    } else if (key.startsWith(keys.nodesPrefix())) {
      const name = keys.nodeFromKey(key)
      if (value) this.nodes.set(name, value as NodeRecord)
      else this.nodes.delete(name)
      this.derive()
    } else if (key.startsWith(keys.macsPrefix())) {
      const mac = keys.macFromKey(key)
      if (value) this.macs.set(mac, (value as MacBinding).node)
      else this.macs.delete(mac)
    } else if (key.startsWith(keys.leasesPrefix())) {
      const ip = parseIpv4(key.slice(keys.leasesPrefix().length))
      if (ip !== undefined) this.setLease(ip, value as Lease | undefined, rev)
    } else if (key.startsWith(keys.leasesByMacPrefix())) {
      const mac = key.slice(keys.leasesByMacPrefix().length).replaceAll('-', ':')
      const cur = this.byMac.get(mac)
      if (!cur || cur.rev <= rev) this.byMac.set(mac, {value: value as LeaseByMac | undefined, rev})
    } else if (key.startsWith(keys.discoveredPrefix())) {
      const mac = key.slice(keys.discoveredPrefix().length).replaceAll('-', ':')
      const cur = this.discovered.get(mac)
      this.discovered.set(mac, {value: value as DiscoveredMac | undefined, rev, touchedMs: cur?.touchedMs ?? 0})
    }
  }

  /** Recomputes ranges and reserved addresses after the spec or a node changed. */
  private derive(): void {
    if (!this.spec) return
    const net = this.spec.network
    this.ranges = new Map(Object.entries(net.ranges).map(([type, r]) => [(type === 'discovery' ? 'discovered' : type) as LeaseType, parseRange(`${r.start}-${r.end}`) as IntRange]))
    const reserved = new Set<number>([parseIpv4(net.gateway) as number, parseIpv4(net.adminVip) as number])
    for (const n of this.spec.nodes) if (n.ip) reserved.add(parseIpv4(n.ip) as number)
    for (const n of this.nodes.values()) if (n.ip) reserved.add(parseIpv4(n.ip) as number)
    for (const s of this.spec.services ?? []) if (s.vip) reserved.add(parseIpv4(s.vip) as number) // a VIP follows a leader; never lease it
    this.reserved = reserved
  }
}

export const leaseSecondsFor = (identity: ClientIdentity): number =>
  identity.type === 'discovered' ? settings.dhcp.discoveryLeaseSeconds : settings.dhcp.leaseSeconds
