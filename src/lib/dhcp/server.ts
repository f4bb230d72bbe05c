import {createSocket, type Socket} from 'node:dgram'
import {networkInterfaces} from 'node:os'
import {performance} from 'node:perf_hooks'

import {preconditionError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {settings} from '../settings.js'
import {fromInt, inSubnet, parseCidr, type Subnet} from '../spec/ipv4.js'
import {readStoredSpec} from '../spec/store.js'
import {LeaseAllocator, type AllocatorLoad, type ClientInfo, type Fence} from './allocator.js'
import {BOOTREPLY, BROADCAST_FLAG, CLIENT_PORT, MAX_MESSAGE_SIZE, SERVER_PORT, decodePacket, encodePacket, macOf, type DhcpOptions, type DhcpPacket, type MessageTypeName} from './packet.js'
import {bootAnswer, pxeSettings} from './pxe.js'

/** The election gate (issue 4): only a server that may serve answers; `token` fences its writes. */
export type CanServe = () => Promise<{ok: boolean; token?: string}>

export interface DhcpServerOptions {
  store: EtcdStore
  /** The served interface: the server's address on it is its identifier. */
  interface: string
  /** The server's own address when the interface has several (default: the first in the subnet). */
  address?: string
  unknown: 'discover' | 'ignore'
  /** Defaults to always serving (a single server, or until the election gates it). */
  canServe?: CanServe
  /** Adds the election's fencing compare to every lease write (see Fence). */
  fence?: Fence
  log?: (line: string) => void
  /** For tests: ports other than 67/68. */
  serverPort?: number
  clientPort?: number
}

/** Counters the daemon exposes (and logs periodically). */
export interface DhcpStats {
  received: number
  /**
   * Datagrams dropped before anything else looked at them, by reason: the decoder's refusals
   * (malformed, oversized) and a full receive queue.
   */
  dropped: Record<string, number>
  /** Well-formed packets ignored on purpose (not ours, not leader, shed under overload...). */
  ignored: Record<string, number>
  replies: Record<string, number>
  /** Handler failures (etcd unreachable...): the packet got no answer, the client retries. */
  errors: number
  /** The allocator's pipeline and discovered-MAC bookkeeping (filled in when read). */
  allocator?: AllocatorLoad
}

interface QueuedDiscover {
  packet: DhcpPacket
  mac: string
  atMs: number
}

/** A datagram waiting in the receive queue. */
interface Received {
  msg: Buffer
  from: string
  /** performance.now() when it arrived. */
  atMs: number
}

const ZERO = '0.0.0.0'
const BROADCAST = '255.255.255.255'

/** The first IPv4 address on `iface`, preferring one inside `subnet`. */
export function interfaceAddress(iface: string, subnet?: Subnet): string {
  const addrs = (networkInterfaces()[iface] ?? []).filter((a) => a.family === 'IPv4')
  const chosen = addrs.find((a) => subnet && inSubnet(a.address, subnet)) ?? addrs[0]
  if (!chosen) {
    throw preconditionError(
      'INTERFACE_NO_ADDRESS',
      `Interface "${iface}" has no IPv4 address (or does not exist).`,
      'Give the interface an address in the cluster subnet, or pass the right --interface.',
    )
  }
  return chosen.address
}

/**
 * An RFC 2131 DHCPv4 server whose leases live in etcd (see LeaseAllocator). It listens on
 * 0.0.0.0:67 for broadcasts and on its own address:67 for unicast (renewals, relays), and sends
 * every reply from its own address, so a limited broadcast leaves through the served interface
 * even without a default route. Bad packets are counted and dropped; nothing a client sends
 * can crash it.
 */
export class DhcpServer {
  readonly stats: DhcpStats = {received: 0, dropped: {}, ignored: {}, replies: {}, errors: 0}
  address = ''
  private allocator!: LeaseAllocator
  private subnet!: Subnet
  private sockets: Socket[] = []
  private replySocket!: Socket
  /** One request at a time per MAC: retransmissions must not race each other. */
  private perMac = new Map<string, {done: Promise<void>; queued: number}>()
  /** Packets accepted for handling and not finished: bounded, so overload sheds instead of queueing. */
  private inFlight = 0
  /** Datagrams received and not looked at yet, from `inboxHead` on (see drain()). */
  private inbox: (Received | undefined)[] = []
  private inboxHead = 0
  private draining = false
  /** Decoded DISCOVERs waiting for room in the pipeline, oldest first (bounded). */
  private discovers: QueuedDiscover[] = []
  private discoverTimer?: NodeJS.Timeout
  private stopping = false
  private statsTimer?: NodeJS.Timeout
  private readonly log: (line: string) => void
  private readonly canServe: CanServe

  constructor(private readonly options: DhcpServerOptions) {
    this.log = options.log ?? (() => {})
    this.canServe = options.canServe ?? (async () => ({ok: true}))
  }

  async start(): Promise<void> {
    const spec = await readStoredSpec(this.options.store)
    this.subnet = parseCidr(spec.network.subnet) as Subnet
    this.address = this.options.address ?? interfaceAddress(this.options.interface, this.subnet)
    this.allocator = new LeaseAllocator(this.options.store, {serverId: this.address, unknown: this.options.unknown, log: this.log, fence: this.options.fence})
    await this.allocator.start()
    const port = this.options.serverPort ?? SERVER_PORT
    const any = await this.bind(ZERO, port)
    this.replySocket = await this.bind(this.address, port)
    this.sockets = [any, this.replySocket]
    this.statsTimer = setInterval(() => this.log(`stats ${JSON.stringify(this.snapshotStats())}`), settings.dhcp.statsLogIntervalMs)
    this.statsTimer.unref()
    this.log(`serving DHCP on ${this.options.interface} as ${this.address} (unknown MACs: ${this.options.unknown})`)
  }

  /** Stops taking packets, finishes the ones being answered, then closes the sockets. */
  async stop(): Promise<void> {
    this.stopping = true
    this.inbox = []
    this.inboxHead = 0
    this.discovers = []
    clearTimeout(this.discoverTimer)
    clearInterval(this.statsTimer)
    await Promise.allSettled([...this.perMac.values()].map((q) => q.done))
    await Promise.all(this.sockets.map((s) => new Promise<void>((r) => s.close(() => r()))))
    this.sockets = []
    await this.allocator?.stop()
  }

  private bind(address: string, port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({type: 'udp4', reuseAddr: true})
      socket.once('error', reject)
      socket.on('message', (msg, rinfo) => this.receive(msg, rinfo.address))
      socket.bind({address, port}, () => {
        socket.off('error', reject)
        socket.on('error', (err) => this.log(`socket error: ${err.message}`))
        socket.setBroadcast(true)
        try {
          socket.setRecvBufferSize(settings.dhcp.receiveBufferBytes)
        } catch {
          // capped by net.core.rmem_max: the default still works, bursts may drop
        }
        resolve(socket)
      })
    })
  }

  /** The counters with the allocator's current load. */
  snapshotStats(): DhcpStats {
    return {...this.stats, ...(this.allocator ? {allocator: this.allocator.load} : {})}
  }

  private count(map: Record<string, number>, key: string): void {
    map[key] = (map[key] ?? 0) + 1
  }

  /**
   * A datagram off a socket: only queued here. The socket callback must stay cheap, and the
   * work a burst brings must not run in one go on the event loop that also renews the
   * election's lease (see drain()).
   */
  private receive(msg: Buffer, from: string): void {
    if (this.stopping) return
    this.stats.received++
    if (msg.length > MAX_MESSAGE_SIZE) return this.count(this.stats.dropped, 'oversized')
    if (this.inbox.length - this.inboxHead >= settings.dhcp.receiveQueueLength) return this.count(this.stats.dropped, 'receive-queue-full')
    this.inbox.push({msg, from, atMs: performance.now()})
    this.scheduleDrain()
  }

  private scheduleDrain(): void {
    if (this.draining) return
    this.draining = true
    setImmediate(() => this.drain())
  }

  /**
   * Works through the queues in batches bounded in count and in time, and yields to the event
   * loop between batches (setImmediate: timers and socket reads run before the next batch), so
   * the election's keepalives and safety checks in this process are never starved by a flood.
   * Datagrams are decoded in arrival order; everything but a DISCOVER is handled at once, while
   * DISCOVERs wait in their own queue until the pipeline has room (see admitDiscover()).
   */
  private drain(): void {
    this.draining = false
    if (this.stopping) return
    const started = performance.now()
    let n = 0
    const spent = (): boolean => ++n >= settings.dhcp.receiveBatch || performance.now() - started >= settings.dhcp.receiveBatchMs
    let out = false
    while (!out && this.inboxHead < this.inbox.length) {
      const item = this.inbox[this.inboxHead] as Received
      this.inbox[this.inboxHead++] = undefined
      this.dispatch(item)
      out = spent()
    }
    if (this.inboxHead >= this.inbox.length) {
      this.inbox = []
      this.inboxHead = 0
    } else if (this.inboxHead >= settings.dhcp.receiveQueueLength) {
      this.inbox = this.inbox.slice(this.inboxHead)
      this.inboxHead = 0
    }
    while (!out && this.discovers.length > 0 && this.admitDiscover()) {
      const {packet, mac, atMs} = this.discovers.shift() as QueuedDiscover
      if (started - atMs > settings.dhcp.maxDiscoverWaitMs) {
        this.count(this.stats.ignored, 'shed-discover')
        continue
      }
      this.handleInOrder(packet, mac)
      out = spent()
    }
    if (this.inboxHead < this.inbox.length || (this.discovers.length > 0 && this.admitDiscover())) this.scheduleDrain()
    else if (this.discovers.length > 0) {
      // Waiting for room in the pipeline: look again shortly (a finished write also wakes it).
      this.discoverTimer ??= setTimeout(() => {
        this.discoverTimer = undefined
        this.scheduleDrain()
      }, settings.dhcp.discoverRetryMs)
    }
  }

  /**
   * Past capacity, a new exchange is refused before it costs anything: a DISCOVER starts only
   * while lease writes are quick, the leases on their way (writes in flight, OFFERs awaiting
   * their REQUEST) are not too many and packets being answered leave room; otherwise it waits
   * (briefly: then it is shed, and the client retries). REQUESTs for offers already made always
   * go first, so what was admitted completes: goodput stays at capacity instead of every
   * exchange timing out (congestion collapse).
   */
  private admitDiscover(): boolean {
    const load = this.allocator.load
    if (this.inFlight >= settings.dhcp.maxInFlight / 2) return false
    const pending = load.leaseWrites + load.offersAwaitingRequest
    // Nothing pending: nothing to wait for (and the average is refreshed by the next write).
    if (pending === 0) return true
    return pending < settings.dhcp.admitMaxPendingLeases && load.leaseWriteMs < settings.dhcp.admitDiscoverBelowWriteMs
  }

  private dispatch({msg, from, atMs}: Received): void {
    const decoded = decodePacket(msg)
    if (!decoded.ok) {
      this.count(this.stats.dropped, decoded.reason)
      return
    }
    const packet = decoded.packet
    if (packet.giaddr !== ZERO && !inSubnet(packet.giaddr, this.subnet)) {
      this.count(this.stats.dropped, 'foreign-relay')
      return
    }
    // An answer the client no longer waits for is wasted work that delays everyone else.
    if (performance.now() - atMs > settings.dhcp.maxQueueWaitMs) return this.count(this.stats.ignored, 'stale')
    const mac = macOf(packet)
    if (packet.options.messageType !== 'discover') return this.handleInOrder(packet, mac, from)
    // A retransmitted DISCOVER replaces the one already waiting.
    const waiting = this.discovers.findIndex((d) => d.mac === mac)
    if (waiting >= 0) this.discovers.splice(waiting, 1)
    else if (this.discovers.length >= settings.dhcp.discoverQueueLength) {
      this.discovers.shift()
      this.count(this.stats.ignored, 'shed-discover')
    }
    this.discovers.push({packet, mac, atMs})
  }

  /** Handles one packet after the ones already queued for its MAC. */
  private handleInOrder(packet: DhcpPacket, mac: string, from = ''): void {
    const queue = this.perMac.get(mac)
    // Shed load rather than answer late: a client retransmits anyway, and an answer that comes
    // after its timeout is wasted work that delays everyone else (congestion collapse).
    if (this.inFlight >= settings.dhcp.maxInFlight) return this.count(this.stats.ignored, 'overload')
    if (queue && queue.queued >= settings.dhcp.maxQueuedPerClient) return this.count(this.stats.ignored, 'client-busy')
    this.inFlight++
    const entry = queue ?? {done: Promise.resolve(), queued: 0}
    entry.queued++
    entry.done = entry.done
      .then(() => this.handle(packet, mac))
      .catch((err: unknown) => {
        this.stats.errors++
        this.log(`error answering ${packet.options.messageType} from ${mac} (${from}): ${(err as Error).message}`)
      })
      .finally(() => {
        this.inFlight--
        if (--entry.queued === 0 && this.perMac.get(mac) === entry) this.perMac.delete(mac)
        if (this.discovers.length > 0) this.scheduleDrain()
      })
    this.perMac.set(mac, entry)
  }

  private async handle(packet: DhcpPacket, mac: string): Promise<void> {
    const o = packet.options
    if (!(await this.canServe()).ok) {
      this.count(this.stats.ignored, 'not-leader')
      return
    }
    const client: ClientInfo = {
      mac,
      ...(o.requestedIp ? {requestedIp: o.requestedIp} : {}),
      ...(o.hostname ? {hostname: o.hostname} : {}),
      ...(o.vendorClass ? {vendorClass: o.vendorClass} : {}),
      ...(o.clientArch ? {clientArch: o.clientArch} : {}),
    }
    const forOther = o.serverId !== undefined && o.serverId !== this.address
    switch (o.messageType) {
      case 'discover': {
        const offer = await this.allocator.offer(client)
        if (!offer) return this.count(this.stats.ignored, 'no-offer')
        return this.reply(packet, 'offer', offer.ip, this.leaseOptions(packet, offer.leaseSeconds, offer.identity.node))
      }
      case 'request': {
        if (forOther) {
          // The client took another server's offer (RFC 2131 3.1.4).
          this.allocator.forgetOffer(mac)
          return this.count(this.stats.ignored, 'other-server')
        }
        // SELECTING and INIT-REBOOT name the address in option 50; RENEWING/REBINDING in ciaddr.
        const ip = o.requestedIp ?? (packet.ciaddr !== ZERO ? packet.ciaddr : undefined)
        if (!ip) return this.count(this.stats.ignored, 'request-without-address')
        const result = await this.allocator.commit(client, ip)
        if (!result) return this.count(this.stats.ignored, 'unknown-mac')
        if (!result.ok) return this.nak(packet, result.reason)
        return this.reply(packet, 'ack', ip, this.leaseOptions(packet, result.leaseSeconds, result.identity.node))
      }
      case 'decline':
        if (forOther || !o.requestedIp) return this.count(this.stats.ignored, 'decline-not-ours')
        await this.allocator.decline(mac, o.requestedIp)
        return
      case 'release':
        if (forOther || packet.ciaddr === ZERO) return this.count(this.stats.ignored, 'release-not-ours')
        await this.allocator.release(mac, packet.ciaddr)
        return
      case 'inform':
        // Configuration only: no lease, no yiaddr (RFC 2131 3.4).
        return this.reply(packet, 'ack', ZERO, this.configOptions(packet))
      default:
        return this.count(this.stats.ignored, `unexpected-${o.messageType}`)
    }
  }

  private configOptions(packet: DhcpPacket, node?: string): DhcpOptions {
    const net = this.allocator.clusterSpec.network
    const mask = fromInt(this.subnet.prefix === 0 ? 0 : (0xffffffff << (32 - this.subnet.prefix)) >>> 0)
    return {
      serverId: this.address,
      subnetMask: mask,
      routers: [net.gateway],
      dns: net.dns,
      domain: net.domain,
      ...(node ? {hostname: node} : {}),
      ...(packet.options.relayAgent ? {relayAgent: packet.options.relayAgent} : {}),
    }
  }

  private leaseOptions(packet: DhcpPacket, leaseSeconds: number, node?: string): DhcpOptions {
    return {
      ...this.configOptions(packet, node),
      leaseTime: leaseSeconds,
      renewalTime: Math.floor(leaseSeconds / 2),
      rebindingTime: Math.floor((leaseSeconds * 7) / 8),
    }
  }

  private async nak(packet: DhcpPacket, reason: string): Promise<void> {
    await this.reply(packet, 'nak', ZERO, {
      serverId: this.address,
      message: reason,
      ...(packet.options.relayAgent ? {relayAgent: packet.options.relayAgent} : {}),
    })
  }

  private async reply(request: DhcpPacket, type: MessageTypeName, yiaddr: string, options: DhcpOptions): Promise<void> {
    // Asked again at the last moment: an OFFER or a NAK comes from the cache, and leadership
    // may have ended while the answer was worked out (ACKs are also fenced in etcd).
    if (!(await this.canServe()).ok) return this.count(this.stats.ignored, 'not-leader')
    const boot = type === 'nak' ? undefined : bootAnswer(pxeSettings(this.allocator.clusterSpec), request.options)
    const relayed = request.giaddr !== ZERO
    const reply: DhcpPacket = {
      op: BOOTREPLY,
      htype: request.htype,
      hlen: request.hlen,
      hops: 0,
      xid: request.xid,
      secs: 0,
      // A NAK through a relay must be broadcast by the relay (RFC 2131 4.3.2).
      flags: type === 'nak' && relayed ? request.flags | BROADCAST_FLAG : request.flags,
      ciaddr: type === 'ack' ? request.ciaddr : ZERO,
      yiaddr,
      siaddr: boot?.nextServer ?? ZERO,
      giaddr: request.giaddr,
      chaddr: request.chaddr,
      sname: '',
      file: boot?.bootfile ?? '',
      options: {
        messageType: type,
        ...options,
        ...(boot ? {tftpServer: boot.nextServer, bootfile: boot.bootfile} : {}),
      },
    }
    // RFC 2131 4.1: to the relay; else unicast to a configured client; else broadcast (the
    // client has no address yet, and unicast to it would need an ARP entry it cannot answer).
    const [host, port] = relayed
      ? [request.giaddr, this.options.serverPort ?? SERVER_PORT]
      : type !== 'nak' && request.ciaddr !== ZERO
        ? [request.ciaddr, this.options.clientPort ?? CLIENT_PORT]
        : [BROADCAST, this.options.clientPort ?? CLIENT_PORT]
    const bytes = encodePacket(reply)
    await new Promise<void>((resolve) =>
      this.replySocket.send(bytes, port, host, (err) => {
        if (err) this.log(`send ${type} to ${host}:${port} failed: ${err.message}`)
        resolve()
      }),
    )
    this.count(this.stats.replies, type)
  }
}
