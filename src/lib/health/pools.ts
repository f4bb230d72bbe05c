import {reservedAddresses} from '../dhcp/allocator.js'
import type {Lease} from '../dhcp/lease.js'
import type {NodeRecord} from '../nodes/record.js'
import {parseIpv4} from '../spec/ipv4.js'
import type {ClusterSpec} from '../spec/types.js'
import type {PoolUsage} from './types.js'

/**
 * How full each DHCP range of the spec is, counted as the allocator counts (src/lib/dhcp/
 * allocator.ts): an address it never leases (a node's fixed IP, the gateway, the admin VIP, a
 * service VIP) is not capacity; an unexpired lease, bound or declined, takes its address.
 */
export function poolUsage(spec: ClusterSpec, nodes: readonly NodeRecord[], leases: readonly Lease[], now = Date.now()): PoolUsage[] {
  const net = spec.network
  const reserved = reservedAddresses(spec, nodes)
  const taken = new Set<number>()
  for (const lease of leases) {
    const ip = parseIpv4(lease.ip)
    if (ip !== undefined && Date.parse(lease.expiresAt) > now && !reserved.has(ip)) taken.add(ip)
  }
  return Object.entries(net.ranges).map(([range, r]) => {
    const start = parseIpv4(r.start) ?? 0
    const end = parseIpv4(r.end) ?? -1
    let capacity = 0
    let used = 0
    for (let ip = start; ip <= end; ip++) {
      if (reserved.has(ip)) continue
      capacity++
      if (taken.has(ip)) used++
    }
    return {range, start: r.start, end: r.end, capacity, used, percent: percentOf(used, capacity)}
  })
}

/** used / capacity in %, one decimal; a range with nothing to lease is 0 % (it cannot run out). */
export const percentOf = (used: number, capacity: number): number => (capacity === 0 ? 0 : Math.round((used * 1000) / capacity) / 10)
