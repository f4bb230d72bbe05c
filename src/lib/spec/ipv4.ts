/**
 * Small pure IPv4 helpers. Addresses are handled as unsigned 32-bit integers so comparisons and
 * range arithmetic are plain number operations (shared by spec validation and DHCP).
 */

export interface Subnet {
  /** The CIDR as written, normalised: `10.0.0.0/24`. */
  cidr: string
  prefix: number
  /** Network address as an integer. */
  network: number
  /** Broadcast address as an integer. */
  broadcast: number
}

/** An inclusive range of integer addresses. */
export interface IntRange {
  start: number
  end: number
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/

/** Parses dotted-quad IPv4 (no leading zeros, which some tools read as octal); undefined if invalid. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.')
  if (parts.length !== 4) return undefined
  let value = 0
  for (const part of parts) {
    if (!OCTET.test(part)) return undefined
    const octet = Number(part)
    if (octet > 255) return undefined
    value = value * 256 + octet
  }
  return value
}

export const isIpv4 = (text: string): boolean => parseIpv4(text) !== undefined

/** The integer form of a valid address; throws on an invalid one (use parseIpv4 to test). */
export function toInt(ip: string): number {
  const value = parseIpv4(ip)
  if (value === undefined) throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`)
  return value
}

export function fromInt(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.')
}

/** Parses `A.B.C.D/N`; the address must be the network address itself (no host bits set). */
export function parseCidr(text: string): Subnet | undefined {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(text)
  if (!match) return undefined
  const address = parseIpv4(match[1])
  const prefix = Number(match[2])
  if (address === undefined || prefix > 32) return undefined
  const size = 2 ** (32 - prefix)
  const network = address - (address % size)
  if (network !== address) return undefined
  return {cidr: `${fromInt(network)}/${prefix}`, prefix, network, broadcast: network + size - 1}
}

/** True when `ip` lies inside the subnet (network and broadcast addresses included). */
export function inSubnet(ip: string | number, subnet: Subnet): boolean {
  const value = typeof ip === 'number' ? ip : parseIpv4(ip)
  return value !== undefined && value >= subnet.network && value <= subnet.broadcast
}

/** True for the addresses a host may use: inside the subnet, neither network nor broadcast. */
export function isHostAddress(ip: string | number, subnet: Subnet): boolean {
  const value = typeof ip === 'number' ? ip : parseIpv4(ip)
  if (value === undefined || !inSubnet(value, subnet)) return false
  // /31 and /32 have no network/broadcast addresses to reserve (RFC 3021).
  if (subnet.prefix >= 31) return true
  return value !== subnet.network && value !== subnet.broadcast
}

/** Parses `A-B` (spaces around the dash allowed); undefined if either end is not an address. */
export function parseRange(text: string): IntRange | undefined {
  const parts = text.split('-').map((p) => p.trim())
  if (parts.length !== 2) return undefined
  const start = parseIpv4(parts[0])
  const end = parseIpv4(parts[1])
  if (start === undefined || end === undefined) return undefined
  return {start, end}
}

export const inRange = (ip: number, range: IntRange): boolean => ip >= range.start && ip <= range.end

export const rangesOverlap = (a: IntRange, b: IntRange): boolean => a.start <= b.end && b.start <= a.end

export const rangeSize = (range: IntRange): number => range.end - range.start + 1
