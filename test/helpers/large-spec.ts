/**
 * Cluster specs of any size, for the tests and benches that apply them (one generator: a bench's
 * figures and a test's proof are about the same specs).
 *
 * Node i is the same in every generated spec, so a larger spec extends a smaller one: 3 core
 * nodes with fixed IPs, then a storage node every 20th, a frontend node every 50th, the rest
 * compute, all by DHCP. The network is a /16 whose ranges hold tens of thousands of nodes.
 */

export interface GeneratedNode {
  name: string
  mac: string
  ip?: string
}

export const CORE_NODES = ['s1', 's2', 's3']

/** The first `total` nodes of the sequence (MACs 02:58:…, i in the last four bytes). */
export function largeSpecNodes(total: number): GeneratedNode[] {
  const counts = {s: CORE_NODES.length, f: 0, c: 0}
  return Array.from({length: total}, (_, i) => {
    const mac = `02:58:${[(i >> 24) & 0xff, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff].map((b) => b.toString(16).padStart(2, '0')).join(':')}`
    if (i < CORE_NODES.length) return {name: CORE_NODES[i]!, mac, ip: `10.68.0.${i + 2}`}
    const kind = i % 20 === 0 ? 's' : i % 50 === 1 ? 'f' : 'c'
    return {name: `${kind}${++counts[kind]}`, mac}
  })
}

/**
 * The spec file for `nodes`: the example's layout on 10.68.0.0/16. `services` is YAML for the
 * services: list (its entries, indented two spaces), VIPs in 10.68.0.240-253.
 */
export function largeSpecYaml(nodes: GeneratedNode[], options: {cluster?: string; services?: string} = {}): string {
  const row = (n: GeneratedNode) => `  - {name: ${n.name}, mac: "${n.mac}"${n.ip ? `, ip: ${n.ip}` : ''}}`
  return `cluster: ${options.cluster ?? 'xcluster'}
network:
  subnet: 10.68.0.0/16
  gateway: 10.68.0.1
  dns: [10.68.0.1]
  domain: xcluster.lan
  adminVip: 10.68.0.254
  ranges:
    core: 10.68.0.2-10.68.0.10
    storage: 10.68.1.1-10.68.7.254
    frontend: 10.68.8.1-10.68.9.254
    discovery: 10.68.16.1-10.68.16.250
    compute: 10.68.32.1-10.68.255.254
ssh: {user: root, key: ~/.ssh/id_ed25519}
nodes:
${nodes.map(row).join('\n')}
${options.services ? `services:\n${options.services}` : ''}`
}
