import {createSocket, type Socket} from 'node:dgram'
import {networkInterfaces} from 'node:os'

import {preconditionError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {settings} from '../settings.js'
import {fromInt, inSubnet, parseCidr, type Subnet} from '../spec/ipv4.js'
import {LeaseAllocator, type ClientInfo, type Fence} from './allocator.js'
import {
  BOOTREPLY,
  BROADCAST_FLAG,
  CLIENT_PORT,
  SERVER_PORT,
  decodePacket,
  encodePacket,
  macOf,
  type DhcpOptions,
  type DhcpPacket,
  type MessageTypeName,
} from './packet.js'
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
  /** Malformed packets by reason: dropped before anything else looked at them. */
  dropped: Record<string, number>
  /** Well-formed packets ignored on purpose (not ours, not leader, unknown MAC ignored...). */
  ignored: Record<string, number>
  replies: Record<string, number>
  /** Handler failures (etcd unreachable...): the packet got no answer, the client retries. */
  errors: number
}

const ZERO = '0.0.0.0'
const BROADCAST = '255.255.255.255'

/** The first IPv4 address on `iface`, preferring one inside `subnet`. */
export function interfaceAddress(iface: string, subnet?: Subnet): string {
  const addrs = (networkInterfaces()[iface] ?? []).filter((a) => a.family === 'IPv4')
  const chosen = addrs.find((a) => subnet && inSubnet(a.address, subnet)) ?? addrs[0]
  if (!chosen) {
    throw preconditionError('INTERFACE_NO_ADDRESS', `Interface "${iface}" has no IPv4 address (or does not exist).`, 'Give the interface an address in the cluster subnet, or pass the right --interface.')
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
  private stopping = false
  private statsTimer?: NodeJS.Timeout
  private readonly log: (line: string) => void
  private readonly canServe: CanServe

  constructor(private readonly options: DhcpServerOptions) {
    this.log = options.log ?? (() => {})
    this.canServe = options.canServe ?? (async () => ({ok: true}))
  }

  async start(): Promise<void> {
    const spec = await this.options.store.getJson<{network: {subnet: string}}>(this.options.store.keys.spec())
    if (!spec) {
      throw preconditionError('SPEC_NOT_FOUND', `No cluster spec is stored for cluster "${this.options.store.keys.cluster}".`, 'Store one with: xcluster config apply -f xcluster.yaml')
    }
    this.subnet = parseCidr(spec.value.network.subnet) as Subnet
    this.address = this.options.address ?? interfaceAddress(this.options.interface, this.subnet)
    this.allocator = new LeaseAllocator(this.options.store, {serverId: this.address, unknown: this.options.unknown, log: this.log, fence: this.options.fence})
    await this.allocator.start()
    const port = this.options.serverPort ?? SERVER_PORT
    const any = await this.bind(ZERO, port)
    this.replySocket = await this.bind(this.address, port)
    this.sockets = [any, this.replySocket]
    this.statsTimer = setInterval(() => this.log(`stats ${JSON.stringify(this.stats)}`), settings.dhcp.statsLogIntervalMs)
    this.statsTimer.unref()
    this.log(`serving DHCP on ${this.options.interface} as ${this.address} (unknown MACs: ${this.options.unknown})`)
  }

  /** Stops taking packets, finishes the ones being answered, then closes the sockets. */
  async stop(): Promise<void> {
    this.stopping = true
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

  private count(map: Record<string, number>, key: string): void {
    map[key] = (map[key] ?? 0) + 1
  }

  private receive(msg: Buffer, from: string): void {
    if (this.stopping) return
    this.stats.received++
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
    const mac = macOf(packet)
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
