import {readFileSync} from 'node:fs'

import {parseDocument, type YAMLSeq} from 'yaml'

import {packageSettings} from '../admin-services/packages.js'
import {ExitStatus, XclusterError} from '../errors.js'
import type {NodeType} from '../nodes/record.js'
import {fromInt, inRange, parseCidr, parseRange, toInt} from '../spec/ipv4.js'
import {loadSpecFile, parseSpec} from '../spec/parse.js'
import {settings} from '../settings.js'
import type {ClusterSpec} from '../spec/types.js'
import {mirrorUrls} from './rootfs.js'

export interface LabNodeSpec {
  name: string
  /** Lower-case, colon-separated. */
  mac: string
  ip?: string
  type: NodeType
}

export interface LabTopology {
  cluster: string
  /** e.g. 10.0.0.0/24 */
  subnet: string
  prefixLength: number
  /** The admin host's lab address. */
  gateway: string
  domain: string
  sshUser: string
  nodes: LabNodeSpec[]
  /** The proxy the nodes' apt uses (the spec's packages.proxy); undefined for none. */
  nodeProxy?: string
  /** The lab's bridge to its Squid, the admin host's cache's upstream; undefined when the nodes do not use that cache. */
  upstreamProxy?: string
  /**
   * The spec file with the extra nodes appended and, unless it names them, packages.upstream
   * (the lab's bridge) and packages.mirrors (this machine's), comments kept: $LAB/xcluster.yaml.
   */
  effectiveSpecYaml: string
}

/** Host names the lab uses for itself (netns xc-admin, xc-lan). */
const RESERVED_NAMES = ['admin', 'lan']

const labError = (message: string): XclusterError =>
  new XclusterError(message, {code: 'LAB_TOPOLOGY_INVALID', exit: ExitStatus.usage, suggestion: 'Use fewer --nodes, or rename the node in the spec.'})

/**
 * `--nodes N`: compute nodes c2..c(N+1), MACs 02:58:43:00:02:NN (hex), fixed addresses from
 * .100 upward so they sit outside every DHCP range.
 */
export function extraComputeNodes(count: number, spec: ClusterSpec): LabNodeSpec[] {
  if (!Number.isInteger(count) || count < 0) throw labError(`--nodes must be a whole number >= 0, got ${count}`)
  const subnet = parseCidr(spec.network.subnet)!
  const names = new Set(spec.nodes.map((n) => n.name))
  const ranges = Object.entries(spec.network.ranges).map(([name, r]) => ({name, range: parseRange(`${r.start}-${r.end}`)!}))
  const extra: LabNodeSpec[] = []
  for (let i = 0; i < count; i++) {
    const index = i + 2
    const name = `c${index}`
    if (index > 0xff) throw labError(`at most ${0xff - 1} extra compute nodes fit the lab's MAC plan, asked for ${count}`)
    if (names.has(name)) throw labError(`the spec already has a node named ${name}; extra compute nodes are named c2..c${count + 1}`)
    const ipInt = toInt(fromInt(subnet.network + settings.lab.extraNodeFirstHost + i))
    if (ipInt >= subnet.broadcast) throw labError(`${count} extra nodes do not fit in ${spec.network.subnet} from .${settings.lab.extraNodeFirstHost} upward`)
    const hit = ranges.find((r) => inRange(ipInt, r.range))
    if (hit) throw labError(`extra node ${name} would get ${fromInt(ipInt)}, inside the ${hit.name} range; use fewer --nodes`)
    extra.push({name, mac: `${settings.lab.extraNodeMacPrefix}:${index.toString(16).padStart(2, '0')}`, ip: fromInt(ipInt), type: 'compute'})
  }
  return extra
}

/**
 * The lab's hosts from a cluster spec (validated like `config validate`: bad input exits 2
 * before the lab is touched), plus `extra` compute nodes. The effective spec, extras included,
 * is validated again, so an extra node can never clash with the spec's own.
 */
export function labTopology(specFile: string, extra = 0): LabTopology {
  const base = loadSpecFile(specFile)
  const reserved = base.nodes.filter((n) => RESERVED_NAMES.includes(n.name))
  if (reserved.length > 0) throw labError(`the lab uses the host names ${RESERVED_NAMES.join(' and ')} itself; rename node ${reserved[0].name}`)
  const added = extraComputeNodes(extra, base)
  const doc = parseDocument(readFileSync(specFile, 'utf8'))
  if (added.length > 0) {
    const seq = doc.get('nodes') as YAMLSeq
    for (const n of added) {
      const item = doc.createNode({name: n.name, mac: n.mac, ip: n.ip})
      item.flow = true
      seq.items.push(item)
    }
  }
  // The lab's admin host has no route out but its bridge to the lab's Squid: its cache's upstream.
  const packages = packageSettings(base)
  if (packages.adminCache) {
    if (!base.packages?.upstream) doc.setIn(['packages', 'upstream'], `http://${base.network.gateway}:${settings.lab.upstreamProxyPort}`)
    if (!base.packages?.mirrors) doc.setIn(['packages', 'mirrors'], mirrorUrls().length > 0 ? mirrorUrls() : packages.mirrors)
  }
  const effectiveSpecYaml = doc.toString()
  const spec = parseSpec(effectiveSpecYaml, `${specFile} (with ${extra} extra lab nodes)`)
  const effective = packageSettings(spec)
  return {
    cluster: spec.cluster,
    subnet: spec.network.subnet,
    prefixLength: parseCidr(spec.network.subnet)!.prefix,
    gateway: spec.network.gateway,
    domain: spec.network.domain,
    sshUser: spec.ssh.user,
    nodes: spec.nodes.map((n) => ({name: n.name, mac: n.mac, type: n.type, ...(n.ip ? {ip: n.ip} : {})})),
    ...(effective.nodeProxy ? {nodeProxy: effective.nodeProxy} : {}),
    ...(effective.upstream ? {upstreamProxy: effective.upstream} : {}),
    effectiveSpecYaml,
  }
}
