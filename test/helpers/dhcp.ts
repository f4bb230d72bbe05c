import {readFileSync} from 'node:fs'
import {join} from 'node:path'

import {HEADER_SIZE, MessageType, Opt, clientRequest, encodePacket} from '../../src/lib/dhcp/packet.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import type {ClusterSpec} from '../../src/lib/spec/types.js'
import {ROOT} from './cli.js'

/** The shipped example spec (templates/xcluster.yaml), validated. */
export function exampleSpec(): ClusterSpec {
  return parseSpec(readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8'), 'xcluster.yaml')
}

/**
 * A test spec on its own subnet `10.<net>.0.0/20`: the example's layout with a large discovery
 * range (10.<net>.8.1-10.<net>.15.250) for load tests, and node c2 holding the first compute
 * address as a fixed IP (so a range allocation must skip it).
 */
export function testSpecYaml(net: number): string {
  const p = `10.${net}`
  return `cluster: xcluster
network:
  subnet: ${p}.0.0/20
  gateway: ${p}.0.1
  dns: [${p}.0.1]
  domain: xcluster.lan
  adminVip: ${p}.0.254
  ranges:
    core: ${p}.0.2-${p}.0.10
    storage: ${p}.0.11-${p}.0.30
    compute: ${p}.0.51-${p}.0.70
    frontend: ${p}.0.71-${p}.0.80
    discovery: ${p}.8.1-${p}.15.250
ssh: {user: root, key: ~/.ssh/id_ed25519}
nodes:
  - {name: s1, mac: "02:58:43:00:01:01", ip: ${p}.0.2}
  - {name: s2, mac: "02:58:43:00:01:02", ip: ${p}.0.3}
  - {name: s3, mac: "02:58:43:00:01:03", ip: ${p}.0.4}
  - {name: s4, mac: "02:58:43:00:01:04"}
  - {name: c1, mac: "02:58:43:00:02:01"}
  - {name: c2, mac: "02:58:43:00:02:02", ip: ${p}.0.51}
  - {name: f1, mac: "02:58:43:00:03:01"}
`
}

/**
 * The decoder's worst case: a valid DISCOVER whose options area is filled with one-byte
 * instances of one variable-length option (RFC 3396 says they form one value, so a naive decoder
 * joins them one by one), padded out to `size` bytes. 224 is a site-specific option code.
 */
export function repeatedOptionDiscover(mac: string, xid: number, size: number): Buffer {
  const header = encodePacket(clientRequest('discover', mac, xid)).subarray(0, HEADER_SIZE)
  const instances = Math.floor((size - HEADER_SIZE - 3 - 1) / 3)
  const options = Buffer.alloc(size - HEADER_SIZE)
  options.set([Opt.messageType, 1, MessageType.discover])
  for (let i = 0; i < instances; i++) options.set([224, 1, 0x61], 3 + i * 3)
  options[3 + instances * 3] = Opt.end
  return Buffer.concat([header, options])
}
