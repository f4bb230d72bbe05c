/**
 * Simulated DHCP clients, run as a separate process inside a client namespace (the test process
 * stays where etcd is): `ip netns exec NS node --import tsx test/helpers/dhcp-sim.ts MODE 'JSON'`.
 * Prints one JSON result on stdout. Modes:
 *   dora  {count, macPrefix, window, prefer?: string[]}  full DISCOVER/OFFER/REQUEST/ACK per MAC
 *   renew {mac, ip, server}                               RENEWING: unicast REQUEST with ciaddr
 *   rebind {leases: [{mac, ip}], window}                  REBINDING: broadcast REQUEST with ciaddr per lease,
 *                                                         retried; the replies go to ciaddr (make it local)
 *   offer {mac, clientArch?, vendorClass?, userClass?}    one DISCOVER as a PXE ROM / iPXE sends it
 *   fuzz  {count, target}                                 malformed packets, no answer expected
 *   burst {target, oversized, maxSize, perMs}              worst-case datagrams: 65,507-byte ones and
 *                                                         MAX_MESSAGE_SIZE DISCOVERs of repeated options
 *                                                         from random MACs, `perMs` datagrams a millisecond
 *   macs  {target, count, perMs}                           DISCOVERs from `count` random MACs with
 *                                                         oversized hostnames, vendor classes, archs
 *   send  {type, mac, host, options?, fields?, wait?}      one request; the reply if one comes
 *         (with fields.giaddr set it acts as a relay agent: it listens on port 67)
 */
import {randomBytes} from 'node:crypto'
import {createSocket} from 'node:dgram'

import {BOOTREPLY, BROADCAST_FLAG, clientRequest, decodePacket, encodePacket, MAX_MESSAGE_SIZE, type DhcpPacket} from '../../src/lib/dhcp/packet.js'
import {repeatedOptionDiscover} from './dhcp.js'

const [mode, argText] = process.argv.slice(2)
const args = JSON.parse(argText ?? '{}')

const socket = createSocket({type: 'udp4', reuseAddr: true})
// A relay agent receives the server's replies on port 67 (RFC 1542).
const relaying = mode === 'send' && args.fields?.giaddr
await new Promise<void>((r) => socket.bind(relaying ? 67 : 68, '0.0.0.0', () => r()))
socket.setBroadcast(true)
socket.setRecvBufferSize(4 * 1024 * 1024)

const waiting = new Map<number, (p: DhcpPacket) => void>()
socket.on('message', (msg) => {
  const r = decodePacket(msg, BOOTREPLY)
  if (r.ok) waiting.get(r.packet.xid)?.(r.packet)
})

const send = (p: DhcpPacket, host = '255.255.255.255'): Promise<void> => new Promise((resolve, reject) => socket.send(encodePacket(p), 67, host, (err) => (err ? reject(err) : resolve())))

/** Sends and collects replies for `xid` until `enough` says so or the timeout ends. */
async function exchange(p: DhcpPacket, host: string, enough: (got: DhcpPacket[]) => boolean, timeoutMs: number): Promise<DhcpPacket[]> {
  const got: DhcpPacket[] = []
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      waiting.delete(p.xid)
      resolve(got)
    }
    const timer = setTimeout(done, timeoutMs)
    waiting.set(p.xid, (reply) => {
      got.push(reply)
      if (enough(got)) done()
    })
    send(p, host).catch(reject)
  })
}

let xidSeq = (process.pid * 7919) >>> 0
const nextXid = (): number => (xidSeq = (xidSeq + 1) >>> 0)

/** One simulated client's DORA outcome (printed as JSON; the load tests read it back). */
export interface DoraResult {
  mac: string
  ip?: string
  server?: string
  attempts: number
  naks: number
  lastNak?: string
}

async function dora(mac: string, prefer?: string): Promise<DoraResult> {
  const result: DoraResult = {mac, attempts: 0, naks: 0}
  // Real clients retry forever; two servers answering every DISCOVER (no election) race for
  // the same first free address, so a client may lose several rounds in a row.
  while (result.attempts < 20) {
    result.attempts++
    const xid = nextXid()
    const offers = await exchange(clientRequest('discover', mac, xid, {}, {flags: BROADCAST_FLAG}), '255.255.255.255', (g) => g.length >= 2 || (!prefer && g.length >= 1), 400)
    if (offers.length === 0) continue
    const offer = offers.find((o) => o.options.serverId === prefer) ?? offers[0]
    const req = clientRequest('request', mac, xid, {serverId: offer.options.serverId, requestedIp: offer.yiaddr}, {flags: BROADCAST_FLAG})
    const [answer] = await exchange(req, '255.255.255.255', (g) => g.length >= 1, 1000)
    if (!answer) continue
    if (answer.options.messageType === 'ack') {
      result.ip = answer.yiaddr
      result.server = answer.options.serverId
      return result
    }
    result.naks++
    result.lastNak = `${answer.options.serverId}: ${answer.options.message}`
  }
  return result
}

async function runDora(): Promise<void> {
  const count: number = args.count
  const window: number = args.window ?? 32
  const prefer: string[] = args.prefer ?? []
  const results: DoraResult[] = new Array(count)
  let next = 0
  const start = Date.now()
  await Promise.all(
    Array.from({length: window}, async () => {
      while (next < count) {
        const i = next++
        const mac = `${args.macPrefix}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`
        results[i] = await dora(mac, prefer.length ? prefer[i % prefer.length] : undefined)
      }
    }),
  )
  console.log(JSON.stringify({ms: Date.now() - start, results}))
}

async function runRenew(): Promise<void> {
  const req = clientRequest('request', args.mac, nextXid(), {}, {ciaddr: args.ip})
  const [answer] = await exchange(req, args.server, (g) => g.length >= 1, 2000)
  console.log(JSON.stringify(answer ? {type: answer.options.messageType, yiaddr: answer.yiaddr, ciaddr: answer.ciaddr, leaseTime: answer.options.leaseTime} : {type: 'timeout'}))
}

/** REBINDING (RFC 2131 4.4.5): the granting server is gone, so the client broadcasts; retried as a client does. */
async function runRebind(): Promise<void> {
  const leases: {mac: string; ip: string}[] = args.leases
  const results: {mac: string; ip: string; type: string; yiaddr?: string; attempts: number}[] = new Array(leases.length)
  let next = 0
  const start = Date.now()
  await Promise.all(
    Array.from({length: args.window ?? 32}, async () => {
      while (next < leases.length) {
        const i = next++
        const {mac, ip} = leases[i]
        let attempts = 0
        let answer: DhcpPacket | undefined
        while (!answer && attempts < 10) {
          attempts++
          ;[answer] = await exchange(clientRequest('request', mac, nextXid(), {}, {ciaddr: ip}), '255.255.255.255', (g) => g.length >= 1, 1000)
        }
        results[i] = {mac, ip, type: answer?.options.messageType ?? 'timeout', ...(answer ? {yiaddr: answer.yiaddr} : {}), attempts}
      }
    }),
  )
  console.log(JSON.stringify({ms: Date.now() - start, results}))
}

async function runOffer(): Promise<void> {
  const req = clientRequest(
    'discover',
    args.mac,
    nextXid(),
    {
      ...(args.clientArch === undefined ? {} : {clientArch: [args.clientArch]}),
      ...(args.vendorClass ? {vendorClass: args.vendorClass} : {}),
      ...(args.userClass ? {userClass: Buffer.from(args.userClass)} : {}),
    },
    {flags: BROADCAST_FLAG},
  )
  const [offer] = await exchange(req, '255.255.255.255', (g) => g.length >= 1, 2000)
  console.log(
    JSON.stringify(offer ? {yiaddr: offer.yiaddr, siaddr: offer.siaddr, file: offer.file, tftpServer: offer.options.tftpServer ?? null, bootfile: offer.options.bootfile ?? null} : {type: 'timeout'}),
  )
}

async function runSend(): Promise<void> {
  const options = {...args.options}
  if (options.relayAgent) options.relayAgent = Buffer.from(options.relayAgent, 'hex')
  const req = clientRequest(args.type, args.mac, nextXid(), options, args.fields ?? {})
  const [reply] = await exchange(req, args.host, (g) => g.length >= 1, args.wait ?? 1500)
  console.log(
    JSON.stringify(
      reply
        ? {
            type: reply.options.messageType,
            yiaddr: reply.yiaddr,
            giaddr: reply.giaddr,
            leaseTime: reply.options.leaseTime ?? null,
            relayAgent: reply.options.relayAgent?.toString('hex') ?? null,
            message: reply.options.message ?? null,
          }
        : {type: 'none'},
    ),
  )
}

/** Valid packets of every kind, then one random mutation each: the shapes a broken client or an attacker sends. */
async function runFuzz(): Promise<void> {
  const count: number = args.count
  const kinds = ['discover', 'request', 'decline', 'release', 'inform'] as const
  const mutations: ((b: Buffer) => Buffer)[] = [
    (b) => b.subarray(0, Math.floor(Math.random() * 240)), // truncated header
    (b) => b.subarray(0, 240 + Math.floor(Math.random() * 8)), // truncated options
    (b) => (b.writeUInt32BE((Math.random() * 2 ** 32) >>> 0, 236), b), // bad cookie
    (b) => ((b[0] = [0, 2, 3, 255][Math.floor(Math.random() * 4)]), b), // wrong op
    (b) => ((b[2] = 7 + Math.floor(Math.random() * 249)), b), // absurd hlen
    (b) => ((b[241] = 2 + Math.floor(Math.random() * 254)), b), // bad length of option 53
    (b) => ((b[242] = [0, 9, 200][Math.floor(Math.random() * 3)]), b), // bad message type
    (b) => b.subarray(0, b.indexOf(255, 240)), // no end option
    (b) => ((b[244] = 251), b), // the second option's length points past the end
  ]
  const started = Date.now()
  let sent = 0
  while (sent < count) {
    const batch: Promise<void>[] = []
    for (let i = 0; i < 250 && sent < count; i++, sent++) {
      const kind = kinds[sent % kinds.length]
      const mac = `02:fa:${[sent >> 16, sent >> 8, sent].map((n) => (n & 255).toString(16).padStart(2, '0')).join(':')}`
      const pkt = encodePacket(clientRequest(kind, mac, sent, {requestedIp: '10.66.0.52', serverId: args.target, hostname: 'fuzz'}, {ciaddr: '0.0.0.0'}))
      const bad = mutations[sent % mutations.length](pkt)
      batch.push(new Promise((r) => socket.send(bad, 67, args.target, () => r())))
    }
    await Promise.all(batch)
    // Let the receiver keep up rather than overflow its socket buffer (at most ~25,000/s).
    await new Promise((r) => setTimeout(r, 10))
  }
  console.log(JSON.stringify({sent, ms: Date.now() - started}))
}

/** A random locally administered unicast MAC. */
const randomMac = (): string => ['02', ...[...randomBytes(5)].map((b) => b.toString(16).padStart(2, '0'))].join(':')

/** Sends `packets()` at about `perMs` datagrams a millisecond (in 10 ms rounds), every send awaited. */
async function pace(total: number, perMs: number, packet: (i: number) => Buffer, target: string): Promise<{sent: number; ms: number}> {
  const started = Date.now()
  let sent = 0
  while (sent < total) {
    const due = Math.min(total, Math.ceil((Date.now() - started + 10) * perMs))
    const batch: Promise<void>[] = []
    for (; sent < due; sent++) {
      const bytes = packet(sent)
      batch.push(new Promise((r) => socket.send(bytes, 67, target, () => r())))
    }
    await Promise.all(batch)
    await new Promise((r) => setTimeout(r, 10))
  }
  return {sent, ms: Date.now() - started}
}

async function runBurst(): Promise<void> {
  // The old decoder's worst case: ~21,000 one-byte instances of one option in a maximal UDP datagram.
  const oversized = repeatedOptionDiscover('02:bb:00:00:00:01', 1, 65_507)
  const every = Math.max(1, Math.floor((args.oversized + args.maxSize) / Math.max(1, args.oversized)))
  let big = 0
  const out = await pace(
    args.oversized + args.maxSize,
    args.perMs,
    (i) => {
      if (big < args.oversized && i % every === 0) {
        big++
        return oversized
      }
      return repeatedOptionDiscover(randomMac(), i, MAX_MESSAGE_SIZE)
    },
    args.target,
  )
  console.log(JSON.stringify({...out, oversized: big}))
}

async function runMacs(): Promise<void> {
  const out = await pace(
    args.count,
    args.perMs,
    (i) =>
      encodePacket(
        clientRequest('discover', randomMac(), i, {
          hostname: `${'x'.repeat(200)}-${i}<>.evil.example`,
          vendorClass: `PXEClient:\u0000${'v'.repeat(240)}`,
          clientArch: [0, 7, 9, 11, 16, 17, 18, 19],
        }),
      ),
    args.target,
  )
  console.log(JSON.stringify(out))
}

try {
  if (mode === 'dora') await runDora()
  else if (mode === 'burst') await runBurst()
  else if (mode === 'macs') await runMacs()
  else if (mode === 'renew') await runRenew()
  else if (mode === 'rebind') await runRebind()
  else if (mode === 'fuzz') await runFuzz()
  else if (mode === 'offer') await runOffer()
  else if (mode === 'send') await runSend()
  else throw new Error(`unknown mode ${mode}`)
} finally {
  socket.close()
}
