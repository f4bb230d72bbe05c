/**
 * A strict DHCPv4 codec (RFC 2131 message format, RFC 2132 options). Pure: bytes in, a typed
 * packet or a typed refusal out. The server drops (and counts) everything `decodePacket` refuses,
 * so the rules here are the daemon's first line of defence against malformed traffic.
 */

export const BOOTREQUEST = 1
export const BOOTREPLY = 2
export const MAGIC_COOKIE = 0x63825363
/** Fixed BOOTP header (236 bytes) plus the magic cookie. */
export const HEADER_SIZE = 240
/** BOOTP's minimum message size: some clients drop shorter replies. */
export const MIN_REPLY_SIZE = 300
/**
 * The largest datagram a server accepts: an Ethernet frame's 1,500-byte MTU less the IP (20)
 * and UDP (8) headers. RFC 2131 only sets a floor (every agent takes 576-byte messages; larger
 * ones need option 57, which describes what the *sender* accepts), no DHCP client sends more
 * than one unfragmented frame, and a relay must not add option 82 past the MTU (RFC 3046 2.1).
 * ISC dhcpd's receive buffer has the same bound (DHCP_MTU_MAX 1500). Anything larger is refused
 * before a byte of it is parsed: it is not a DHCP client speaking.
 */
export const MAX_MESSAGE_SIZE = 1472
export const SERVER_PORT = 67
export const CLIENT_PORT = 68
/** The broadcast bit of `flags` (RFC 2131 figure 2). */
export const BROADCAST_FLAG = 0x8000

export const MessageType = {
  discover: 1,
  offer: 2,
  request: 3,
  decline: 4,
  ack: 5,
  nak: 6,
  release: 7,
  inform: 8,
} as const
export type MessageTypeName = keyof typeof MessageType
const MESSAGE_NAMES = new Map<number, MessageTypeName>(Object.entries(MessageType).map(([k, v]) => [v, k as MessageTypeName]))

/** Option codes this codec knows (RFC 2132 unless noted). */
export const Opt = {
  pad: 0,
  subnetMask: 1,
  router: 3,
  dns: 6,
  hostname: 12,
  domain: 15,
  requestedIp: 50,
  leaseTime: 51,
  overload: 52,
  messageType: 53,
  serverId: 54,
  parameterList: 55,
  message: 56,
  maxMessageSize: 57,
  renewalTime: 58,
  rebindingTime: 59,
  vendorClass: 60,
  clientId: 61,
  tftpServer: 66,
  bootfile: 67,
  userClass: 77, // RFC 3004
  relayAgent: 82, // RFC 3046
  clientArch: 93, // RFC 4578
  clientUuid: 97, // RFC 4578
  end: 255,
} as const

export interface DhcpOptions {
  messageType?: MessageTypeName
  subnetMask?: string
  routers?: string[]
  dns?: string[]
  hostname?: string
  domain?: string
  requestedIp?: string
  leaseTime?: number
  serverId?: string
  parameterList?: number[]
  message?: string
  maxMessageSize?: number
  renewalTime?: number
  rebindingTime?: number
  vendorClass?: string
  clientId?: Buffer
  tftpServer?: string
  bootfile?: string
  /** Raw option 77: RFC 3004 length-prefixed instances, or a bare string as iPXE sends it. */
  userClass?: Buffer
  /** Option 93: client system architectures (0 BIOS, 7/9 UEFI x86-64, ...). */
  clientArch?: number[]
  clientUuid?: Buffer
  /** Option 82, kept as bytes: a reply echoes it unchanged (RFC 3046 section 2.2). */
  relayAgent?: Buffer
  /** Options this codec does not interpret, kept so nothing is silently lost. */
  other?: Map<number, Buffer>
}

export interface DhcpPacket {
  op: typeof BOOTREQUEST | typeof BOOTREPLY
  htype: number
  hlen: number
  hops: number
  xid: number
  secs: number
  flags: number
  ciaddr: string
  yiaddr: string
  siaddr: string
  giaddr: string
  /** The 16-byte client hardware address field as sent. */
  chaddr: Buffer
  sname: string
  file: string
  options: DhcpOptions
}

export type DecodeFailure =
  | 'oversized'
  | 'truncated'
  | 'bad-cookie'
  | 'wrong-op'
  | 'bad-htype'
  | 'bad-hlen'
  | 'bad-option-length'
  | 'bad-option-value'
  | 'duplicate-option'
  | 'missing-end'
  | 'missing-message-type'
  | 'bad-message-type'

export type DecodeResult = {ok: true; packet: DhcpPacket} | {ok: false; reason: DecodeFailure; detail: string}

/** Options that must appear at most once, with the length rule each must meet. */
const LENGTH_RULES: Partial<Record<number, (n: number) => boolean>> = {
  [Opt.subnetMask]: (n) => n === 4,
  [Opt.router]: (n) => n >= 4 && n % 4 === 0,
  [Opt.dns]: (n) => n >= 4 && n % 4 === 0,
  [Opt.hostname]: (n) => n >= 1,
  [Opt.domain]: (n) => n >= 1,
  [Opt.requestedIp]: (n) => n === 4,
  [Opt.leaseTime]: (n) => n === 4,
  [Opt.overload]: (n) => n === 1,
  [Opt.messageType]: (n) => n === 1,
  [Opt.serverId]: (n) => n === 4,
  [Opt.parameterList]: (n) => n >= 1,
  [Opt.maxMessageSize]: (n) => n === 2,
  [Opt.renewalTime]: (n) => n === 4,
  [Opt.rebindingTime]: (n) => n === 4,
  [Opt.vendorClass]: (n) => n >= 1,
  [Opt.clientId]: (n) => n >= 2,
  [Opt.tftpServer]: (n) => n >= 1,
  [Opt.bootfile]: (n) => n >= 1,
  [Opt.userClass]: (n) => n >= 1,
  [Opt.relayAgent]: (n) => n >= 2,
  [Opt.clientArch]: (n) => n >= 2 && n % 2 === 0,
  [Opt.clientUuid]: (n) => n === 17,
}

const FIXED_LENGTH = new Set<number>([
  Opt.subnetMask,
  Opt.requestedIp,
  Opt.leaseTime,
  Opt.overload,
  Opt.messageType,
  Opt.serverId,
  Opt.maxMessageSize,
  Opt.renewalTime,
  Opt.rebindingTime,
  Opt.clientUuid,
])
/** The same rules as arrays indexed by option code: the parser's per-option lookups. */
const RULE_BY_CODE: ((n: number) => boolean)[] = Array.from({length: 256}, (_, code) => LENGTH_RULES[code] ?? (() => true))
const FIXED_BY_CODE: boolean[] = Array.from({length: 256}, (_, code) => FIXED_LENGTH.has(code))

class Refusal extends Error {
  constructor(
    readonly reason: DecodeFailure,
    readonly detail: string,
  ) {
    super(detail)
  }
}

const ipAt = (buf: Buffer, at: number): string => `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`
const cString = (buf: Buffer): string => {
  const nul = buf.indexOf(0)
  return buf.subarray(0, nul === -1 ? buf.length : nul).toString('latin1')
}
const ipList = (value: Buffer): string[] => Array.from({length: value.length / 4}, (_, i) => ipAt(value, i * 4))

export interface DecodeOptions {
  /** Largest datagram accepted (default MAX_MESSAGE_SIZE); a client reading replies may allow more. */
  maxSize?: number
}

/**
 * Decodes one datagram. `expectOp` is BOOTREQUEST for a server (the default) and BOOTREPLY for a
 * client. Refuses anything malformed with a reason rather than guessing. Runs in time linear in
 * the datagram's size, whatever options it repeats.
 */
export function decodePacket(buf: Buffer, expectOp: number = BOOTREQUEST, options: DecodeOptions = {}): DecodeResult {
  const maxSize = options.maxSize ?? MAX_MESSAGE_SIZE
  if (buf.length > maxSize) return {ok: false, reason: 'oversized', detail: `${buf.length} bytes, more than the ${maxSize} a DHCP message may have here`}
  try {
    return {ok: true, packet: decodeOrThrow(buf, expectOp)}
  } catch (err) {
    if (err instanceof Refusal) return {ok: false, reason: err.reason, detail: err.detail}
    throw err
  }
}

function decodeOrThrow(buf: Buffer, expectOp: number): DhcpPacket {
  if (buf.length < HEADER_SIZE) throw new Refusal('truncated', `${buf.length} bytes, a DHCP message has at least ${HEADER_SIZE}`)
  const op = buf[0]
  if (op !== expectOp) throw new Refusal('wrong-op', `op ${op}, expected ${expectOp}`)
  const htype = buf[1]
  const hlen = buf[2]
  // Ethernet only: the MAC registry keys on 6-byte MACs.
  if (htype !== 1) throw new Refusal('bad-htype', `htype ${htype}, only Ethernet (1) is served`)
  if (hlen !== 6) throw new Refusal('bad-hlen', `hlen ${hlen}, Ethernet addresses are 6 bytes`)
  const cookie = buf.readUInt32BE(236)
  if (cookie !== MAGIC_COOKIE) throw new Refusal('bad-cookie', `magic cookie 0x${cookie.toString(16)}`)

  const sizes = new Map<number, number>()
  const regions: OptionRegion[] = [{from: HEADER_SIZE, to: buf.length, where: 'options'}]
  const overloadAt = measureOptions(buf, regions[0]!, sizes)
  let overload = 0
  if (overloadAt !== undefined) {
    overload = buf[overloadAt]
    if (overload < 1 || overload > 3) throw new Refusal('bad-option-value', `option overload ${overload}`)
    // RFC 2131 4.1: options continue in `file`, then in `sname`.
    if (overload & 1) regions.push({from: 108, to: 236, where: 'file'})
    if (overload & 2) regions.push({from: 44, to: 108, where: 'sname'})
    for (const region of regions.slice(1)) measureOptions(buf, region, sizes)
  }
  const raw = joinOptions(buf, regions, sizes)

  return {
    op: op as DhcpPacket['op'],
    htype,
    hlen,
    hops: buf[3],
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: ipAt(buf, 12),
    yiaddr: ipAt(buf, 16),
    siaddr: ipAt(buf, 20),
    giaddr: ipAt(buf, 24),
    chaddr: Buffer.from(buf.subarray(28, 44)),
    sname: overload & 2 ? '' : cString(buf.subarray(44, 108)),
    file: overload & 1 ? '' : cString(buf.subarray(108, 236)),
    options: interpretOptions(raw),
  }
}

/** A stretch of the datagram that holds options: the options field, or an overloaded file/sname. */
interface OptionRegion {
  from: number
  to: number
  where: string
}

/**
 * First pass over a region: validates every option and adds its length to its code's total
 * (RFC 3396: repeated instances are one value). Returns where option 52's value lies, if present.
 * Nothing is allocated per instance: a datagram of many small instances costs one pass, with no
 * growing list to copy or collect.
 */
function measureOptions(buf: Buffer, region: OptionRegion, sizes: Map<number, number>): number | undefined {
  const {from, to, where} = region
  let overloadAt: number | undefined
  let i = from
  while (i < to) {
    const code = buf[i]
    if (code === Opt.pad) {
      i++
      continue
    }
    if (code === Opt.end) return overloadAt
    if (i + 1 >= to) throw new Refusal('bad-option-length', `option ${code} in ${where} has no length byte`)
    const len = buf[i + 1]
    if (i + 2 + len > to) throw new Refusal('bad-option-length', `option ${code} in ${where} claims ${len} bytes, ${to - i - 2} left`)
    if (!RULE_BY_CODE[code](len)) throw new Refusal('bad-option-length', `option ${code} has length ${len}`)
    const size = sizes.get(code)
    // RFC 3396 concatenation is only meaningful for variable-length options.
    if (size !== undefined && FIXED_BY_CODE[code]) throw new Refusal('duplicate-option', `option ${code} appears twice`)
    if (code === Opt.overload && overloadAt === undefined) overloadAt = i + 2
    sizes.set(code, (size ?? 0) + len)
    i += 2 + len
  }
  throw new Refusal('missing-end', `no end option in ${where}`)
}

/**
 * Second pass: each option's instances joined (RFC 3396) into one buffer of the size the first
 * pass measured, in region order. Joining instance by instance would copy the growing value
 * again each time (quadratic). The regions were validated by measureOptions.
 */
function joinOptions(buf: Buffer, regions: OptionRegion[], sizes: Map<number, number>): Map<number, Buffer> {
  const values = new Map<number, {value: Buffer; at: number}>()
  for (const [code, size] of sizes) values.set(code, {value: Buffer.allocUnsafe(size), at: 0})
  for (const {from, to} of regions) {
    let i = from
    while (i < to) {
      const code = buf[i]
      if (code === Opt.pad) {
        i++
        continue
      }
      if (code === Opt.end) break
      const len = buf[i + 1]
      const into = values.get(code)!
      // Byte by byte: most instances are a few bytes, where a copy() call costs more than the copy.
      for (let j = i + 2; j < i + 2 + len; j++) into.value[into.at++] = buf[j]
      i += 2 + len
    }
  }
  return new Map([...values].map(([code, v]) => [code, v.value]))
}

function interpretOptions(raw: Map<number, Buffer>): DhcpOptions {
  const o: DhcpOptions = {}
  const other = new Map<number, Buffer>()
  for (const [code, v] of raw) {
    switch (code) {
      case Opt.messageType: {
        const name = MESSAGE_NAMES.get(v[0])
        if (!name) throw new Refusal('bad-message-type', `message type ${v[0]}`)
        o.messageType = name
        break
      }
      case Opt.subnetMask:
        o.subnetMask = ipAt(v, 0)
        break
      case Opt.router:
        o.routers = ipList(v)
        break
      case Opt.dns:
        o.dns = ipList(v)
        break
      case Opt.hostname:
        o.hostname = v.toString('latin1')
        break
      case Opt.domain:
        o.domain = v.toString('latin1')
        break
      case Opt.requestedIp:
        o.requestedIp = ipAt(v, 0)
        break
      case Opt.leaseTime:
        o.leaseTime = v.readUInt32BE(0)
        break
      case Opt.serverId:
        o.serverId = ipAt(v, 0)
        break
      case Opt.parameterList:
        o.parameterList = [...v]
        break
      case Opt.message:
        o.message = v.toString('latin1')
        break
      case Opt.maxMessageSize:
        o.maxMessageSize = v.readUInt16BE(0)
        if (o.maxMessageSize < 576) throw new Refusal('bad-option-value', `maximum message size ${o.maxMessageSize} is below 576`)
        break
      case Opt.renewalTime:
        o.renewalTime = v.readUInt32BE(0)
        break
      case Opt.rebindingTime:
        o.rebindingTime = v.readUInt32BE(0)
        break
      case Opt.vendorClass:
        o.vendorClass = v.toString('latin1')
        break
      case Opt.clientId:
        o.clientId = v
        break
      case Opt.tftpServer:
        o.tftpServer = v.toString('latin1')
        break
      case Opt.bootfile:
        o.bootfile = v.toString('latin1')
        break
      case Opt.userClass:
        o.userClass = v
        break
      case Opt.relayAgent:
        o.relayAgent = v
        break
      case Opt.clientArch:
        o.clientArch = Array.from({length: v.length / 2}, (_, i) => v.readUInt16BE(i * 2))
        break
      case Opt.clientUuid:
        o.clientUuid = v
        break
      case Opt.overload:
        break
      default:
        other.set(code, v)
    }
  }
  if (!o.messageType) throw new Refusal('missing-message-type', 'no DHCP message type (option 53): plain BOOTP is not served')
  if (other.size > 0) o.other = other
  return o
}

/** The user classes in option 77: RFC 3004 instances, or the whole value when it is iPXE's bare string. */
export function userClasses(value: Buffer | undefined): string[] {
  if (!value) return []
  const instances: string[] = []
  let i = 0
  while (i < value.length) {
    const len = value[i]
    if (len === 0 || i + 1 + len > value.length) return [value.toString('latin1')]
    instances.push(value.subarray(i + 1, i + 1 + len).toString('latin1'))
    i += 1 + len
  }
  // A bare "iPXE" would parse as one instance of length 0x69 only by accident; prefer the literal.
  return instances.length > 0 ? instances : [value.toString('latin1')]
}

/** `aa:bb:cc:dd:ee:ff` from the first `hlen` bytes of chaddr. */
export const macOf = (packet: Pick<DhcpPacket, 'chaddr' | 'hlen'>): string => [...packet.chaddr.subarray(0, packet.hlen)].map((b) => b.toString(16).padStart(2, '0')).join(':')

export const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((h) => Number.parseInt(h, 16)))

function writeIp(buf: Buffer, at: number, ip: string): void {
  const parts = ip.split('.').map(Number)
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`)
  for (let i = 0; i < 4; i++) buf[at + i] = parts[i]
}

const ipBytes = (ips: string[]): Buffer => {
  const b = Buffer.alloc(ips.length * 4)
  ips.forEach((ip, i) => writeIp(b, i * 4, ip))
  return b
}
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n >>> 0)
  return b
}
const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

function optionEntries(o: DhcpOptions): [number, Buffer][] {
  const out: [number, Buffer][] = []
  const add = (code: number, value: Buffer | undefined): void => {
    if (value !== undefined) out.push([code, value])
  }
  // Message type first and server id early: some PXE ROMs read them positionally.
  if (o.messageType) add(Opt.messageType, Buffer.from([MessageType[o.messageType]]))
  if (o.serverId) add(Opt.serverId, ipBytes([o.serverId]))
  if (o.leaseTime !== undefined) add(Opt.leaseTime, u32(o.leaseTime))
  if (o.renewalTime !== undefined) add(Opt.renewalTime, u32(o.renewalTime))
  if (o.rebindingTime !== undefined) add(Opt.rebindingTime, u32(o.rebindingTime))
  if (o.subnetMask) add(Opt.subnetMask, ipBytes([o.subnetMask]))
  if (o.routers?.length) add(Opt.router, ipBytes(o.routers))
  if (o.dns?.length) add(Opt.dns, ipBytes(o.dns))
  if (o.domain) add(Opt.domain, Buffer.from(o.domain, 'latin1'))
  if (o.hostname) add(Opt.hostname, Buffer.from(o.hostname, 'latin1'))
  if (o.requestedIp) add(Opt.requestedIp, ipBytes([o.requestedIp]))
  if (o.parameterList?.length) add(Opt.parameterList, Buffer.from(o.parameterList))
  if (o.message) add(Opt.message, Buffer.from(o.message, 'latin1'))
  if (o.maxMessageSize !== undefined) add(Opt.maxMessageSize, u16(o.maxMessageSize))
  if (o.vendorClass) add(Opt.vendorClass, Buffer.from(o.vendorClass, 'latin1'))
  if (o.clientId) add(Opt.clientId, o.clientId)
  if (o.tftpServer) add(Opt.tftpServer, Buffer.from(o.tftpServer, 'latin1'))
  if (o.bootfile) add(Opt.bootfile, Buffer.from(o.bootfile, 'latin1'))
  if (o.userClass) add(Opt.userClass, o.userClass)
  if (o.clientArch?.length) add(Opt.clientArch, Buffer.concat(o.clientArch.map(u16)))
  if (o.clientUuid) add(Opt.clientUuid, o.clientUuid)
  for (const [code, v] of o.other ?? []) add(code, v)
  // RFC 3046: the relay agent option is echoed last.
  if (o.relayAgent) add(Opt.relayAgent, o.relayAgent)
  return out
}

/** Encodes a packet (a reply, or a request in tests and benchmarks); pads to BOOTP's 300 bytes. */
export function encodePacket(p: DhcpPacket): Buffer {
  const parts: Buffer[] = []
  for (const [code, value] of optionEntries(p.options)) {
    // Values over 255 bytes are split into several instances (RFC 3396).
    let at = 0
    do {
      const chunk = value.subarray(at, at + 255)
      parts.push(Buffer.from([code, chunk.length]), chunk)
      at += 255
    } while (at < value.length)
  }
  parts.push(Buffer.from([Opt.end]))
  const options = Buffer.concat(parts)
  const buf = Buffer.alloc(Math.max(MIN_REPLY_SIZE, HEADER_SIZE + options.length))
  buf[0] = p.op
  buf[1] = p.htype
  buf[2] = p.hlen
  buf[3] = p.hops
  buf.writeUInt32BE(p.xid >>> 0, 4)
  buf.writeUInt16BE(p.secs, 8)
  buf.writeUInt16BE(p.flags, 10)
  writeIp(buf, 12, p.ciaddr)
  writeIp(buf, 16, p.yiaddr)
  writeIp(buf, 20, p.siaddr)
  writeIp(buf, 24, p.giaddr)
  p.chaddr.copy(buf, 28, 0, Math.min(16, p.chaddr.length))
  buf.write(p.sname.slice(0, 63), 44, 'latin1')
  buf.write(p.file.slice(0, 127), 108, 'latin1')
  buf.writeUInt32BE(MAGIC_COOKIE, 236)
  options.copy(buf, HEADER_SIZE)
  return buf
}

/** A request as a client sends it: for tests, the load simulator and the benchmark. */
export function clientRequest(
  type: MessageTypeName,
  mac: string,
  xid: number,
  options: Omit<DhcpOptions, 'messageType'> = {},
  fields: Partial<Pick<DhcpPacket, 'ciaddr' | 'giaddr' | 'flags' | 'hops' | 'secs'>> = {},
): DhcpPacket {
  const chaddr = Buffer.alloc(16)
  macBytes(mac).copy(chaddr)
  return {
    op: BOOTREQUEST,
    htype: 1,
    hlen: 6,
    hops: fields.hops ?? 0,
    xid,
    secs: fields.secs ?? 0,
    flags: fields.flags ?? 0,
    ciaddr: fields.ciaddr ?? '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: fields.giaddr ?? '0.0.0.0',
    chaddr,
    sname: '',
    file: '',
    options: {messageType: type, ...options},
  }
}
