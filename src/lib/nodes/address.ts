import type {NodeRecord} from './record.js'

/**
 * The IPv6 link-local address a NIC gives itself from its MAC (modified EUI-64, RFC 4291):
 * flip the universal/local bit and put ff:fe in the middle. A node on the cluster LAN answers on
 * it before it has any IPv4 address, so it can be provisioned before DHCP serves it.
 */
export function linkLocalFromMac(mac: string): string {
  const b = mac.split(':').map((h) => Number.parseInt(h, 16))
  b[0] ^= 0x02
  const eui = [b[0], b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]]
  const groups: string[] = []
  for (let i = 0; i < 8; i += 2) groups.push(((eui[i] << 8) | eui[i + 1]).toString(16))
  return `fe80::${groups.join(':')}`
}

/**
 * Where to reach a node for management: its IPv4 address (fixed, or leased by DHCP) when it has
 * one, otherwise its MAC-derived link-local address on the admin host's cluster-LAN interface.
 */
export function managementAddress(node: Pick<NodeRecord, 'ip' | 'mac'>, lanInterface: string): string {
  return node.ip ?? `${linkLocalFromMac(node.mac)}%${lanInterface}`
}
