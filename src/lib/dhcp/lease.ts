import type {NodeType} from '../nodes/record.js'

/** What a lease's address range follows from: the node's type, or `discovered` for an unknown MAC. */
export type LeaseType = NodeType | 'discovered'

/**
 * The value under `dhcp/leases/<ip>`. `declined` marks an address a client reported in use by
 * someone else (DHCPDECLINE): kept out of the pool until `expiresAt`.
 */
export interface Lease {
  ip: string
  mac: string
  node?: string
  type: LeaseType
  state: 'bound' | 'declined'
  expiresAt: string
  /** The server that wrote it (its address on the served interface). */
  grantedBy: string
  hostname?: string
}

/** The value under `dhcp/by-mac/<mac>`: the MAC's lease, written in the same transaction. */
export interface LeaseByMac {
  ip: string
}

/** The value under `dhcp/discovered/<mac>`: an unknown MAC seen on the wire. */
export interface DiscoveredMac {
  mac: string
  state: 'discovered'
  firstSeen: string
  lastSeen: string
  vendorClass?: string
  /** Option 93 values: 0 BIOS, 7/9 UEFI x86-64. */
  clientArch?: number[]
  hostname?: string
}

/** The `--json` row of `dhcp leases`. */
export interface LeaseSummary extends Lease {
  expired: boolean
}

/** One DNS label (RFC 1123): what a client's hostname is stored as. */
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

/**
 * A client's hostname (option 12) as stored: its first label (as dnsmasq keeps it), lower-case,
 * when that is a valid DNS label (at most 63 characters); anything else is not stored. A client
 * chooses these bytes: they must not grow etcd's records or reach a name table unchecked.
 */
export function storedHostname(raw: string | undefined): string | undefined {
  const label = raw?.split('.')[0]?.toLowerCase()
  return label && LABEL.test(label) ? label : undefined
}

/** A vendor class (option 60) as stored: printable ASCII only, cut to `max` characters. */
export function storedVendorClass(raw: string | undefined, max: number): string | undefined {
  const text = raw?.replace(/[^\x20-\x7e]/g, '').slice(0, max)
  return text ? text : undefined
}
