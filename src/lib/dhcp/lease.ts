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
