import {existsSync, readFileSync} from 'node:fs'

import {parseDocument, YAMLSeq} from 'yaml'

import {ExitStatus, XclusterError} from '../errors.js'
import {NODE_TYPES, type NodeType} from '../nodes/record.js'
import {settings} from '../settings.js'

/*
 * A small local reader of the cluster spec: only the fields the lab needs. The validated spec
 * loader (src/lib/spec) replaces the parsing here once it lands; the LabTopology shape stays.
 */

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
  /** The spec file with the extra nodes appended, comments kept: written to $LAB/xcluster.yaml. */
  effectiveSpecYaml: string
}

const specError = (file: string, message: string): XclusterError =>
  new XclusterError(`${file}: ${message}`, {
    code: 'SPEC_INVALID',
    exit: ExitStatus.usage,
    suggestion: 'Fix the spec (see templates/xcluster.yaml for a complete example) and run the command again.',
  })

export const ipToInt = (ip: string): number => ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0)
export const intToIp = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.')
const isIpv4 = (ip: unknown): ip is string =>
  typeof ip === 'string' && /^\d{1,3}(\.\d{1,3}){3}$/.test(ip) && ip.split('.').every((o) => Number(o) <= 255)
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/

/** Node type from the naming convention: s1..s3 core, s4.. storage, c* compute, f* frontend. */
export function typeFromName(name: string): NodeType | undefined {
  const m = name.match(/^([scf])(\d+)$/)
  if (!m) return undefined
  if (m[1] === 's') return Number(m[2]) <= 3 ? 'core' : 'storage'
  return m[1] === 'c' ? 'compute' : 'frontend'
}

/** The subnet's first address and prefix length. */
export function parseSubnet(subnet: string): {base: number; prefixLength: number} | undefined {
  const [ip, len] = subnet.split('/')
  const prefixLength = Number(len)
  if (!isIpv4(ip) || !Number.isInteger(prefixLength) || prefixLength < 8 || prefixLength > 30) return undefined
  const size = 2 ** (32 - prefixLength)
  return {base: ipToInt(ip) - (ipToInt(ip) % size), prefixLength}
}

/**
 * `--nodes N`: compute nodes c2..c(N+1), MACs 02:58:43:00:02:NN (hex), fixed addresses from
 * .100 upward so they sit outside every DHCP range.
 */
export function extraComputeNodes(count: number, existing: LabNodeSpec[], subnet: string, reserved: Array<{start: string; end: string}> = []): LabNodeSpec[] {
  if (!Number.isInteger(count) || count < 0) throw specError('--nodes', `must be a whole number >= 0, got ${count}`)
  const net = parseSubnet(subnet)
  if (!net) throw specError('spec', `network.subnet "${subnet}" is not an IPv4 CIDR`)
  const size = 2 ** (32 - net.prefixLength)
  const names = new Set(existing.map((n) => n.name))
  const macs = new Set(existing.map((n) => n.mac))
  const ips = new Set(existing.flatMap((n) => (n.ip ? [n.ip] : [])))
  const extra: LabNodeSpec[] = []
  for (let i = 0; i < count; i++) {
    const index = i + 2
    if (index > 0xff) throw specError('--nodes', `at most ${0xff - 1} extra compute nodes fit the MAC plan, asked for ${count}`)
    const name = `c${index}`
    const mac = `${settings.lab.extraNodeMacPrefix}:${index.toString(16).padStart(2, '0')}`
    const offset = settings.lab.extraNodeFirstHost + i
    const ipInt = net.base + offset
    const ip = intToIp(ipInt)
    if (offset >= size - 1) throw specError('--nodes', `${count} extra nodes do not fit in ${subnet} from .${settings.lab.extraNodeFirstHost} upward`)
    const inRange = reserved.find((r) => ipInt >= ipToInt(r.start) && ipInt <= ipToInt(r.end))
    if (inRange) throw specError('--nodes', `extra node ${name} would get ${ip}, inside the DHCP range ${inRange.start}-${inRange.end}; use fewer nodes`)
    if (names.has(name)) throw specError('--nodes', `the spec already has a node named ${name}; extra compute nodes are named c2..c${count + 1}`)
    if (macs.has(mac)) throw specError('--nodes', `the spec already uses MAC ${mac}, which extra node ${name} needs`)
    if (ips.has(ip)) throw specError('--nodes', `the spec already uses ${ip}, which extra node ${name} needs`)
    extra.push({name, mac, ip, type: 'compute'})
  }
  return extra
}

/** Reads the spec's lab-relevant fields and adds `extra` compute nodes; bad input throws SPEC_INVALID. */
export function labTopology(specFile: string, extra = 0): LabTopology {
  if (!existsSync(specFile)) {
    throw new XclusterError(`The spec file ${specFile} does not exist.`, {
      code: 'SPEC_NOT_FOUND',
      exit: ExitStatus.usage,
      suggestion: 'Pass an existing cluster spec with --file, e.g. --file templates/xcluster.yaml',
    })
  }
  const doc = parseDocument(readFileSync(specFile, 'utf8'))
  if (doc.errors.length > 0) throw specError(specFile, `not valid YAML: ${doc.errors[0].message}`)
  const spec = doc.toJS() as Record<string, any> | null
  if (!spec || typeof spec !== 'object') throw specError(specFile, 'expected a mapping with cluster, network and nodes')
  const cluster = spec.cluster
  if (typeof cluster !== 'string' || !/^[a-z0-9][a-z0-9-]*$/.test(cluster)) throw specError(specFile, 'cluster must be a name of lower-case letters, digits and dashes')
  const network = spec.network ?? {}
  const net = typeof network.subnet === 'string' ? parseSubnet(network.subnet) : undefined
  if (!net) throw specError(specFile, `network.subnet must be an IPv4 CIDR such as 10.0.0.0/24, got ${JSON.stringify(network.subnet)}`)
  const size = 2 ** (32 - net.prefixLength)
  const inSubnet = (ip: string) => ipToInt(ip) > net.base && ipToInt(ip) < net.base + size - 1
  if (!isIpv4(network.gateway) || !inSubnet(network.gateway)) throw specError(specFile, `network.gateway must be a host address inside ${network.subnet}`)
  if (!Array.isArray(spec.nodes) || spec.nodes.length === 0) throw specError(specFile, 'nodes must be a non-empty list of {name, mac, ip?, type?}')

  const seen = new Map<string, string>([[network.gateway, 'network.gateway']])
  const nodes: LabNodeSpec[] = spec.nodes.map((raw: Record<string, unknown>, i: number) => {
    const where = `nodes[${i}]`
    const name = raw?.name
    if (typeof name !== 'string' || !/^[a-z][a-z0-9]{0,11}$/.test(name) || name === 'admin' || name === 'lan') {
      throw specError(specFile, `${where}.name must be a short lower-case name (not admin or lan), got ${JSON.stringify(name)}`)
    }
    const mac = typeof raw.mac === 'string' ? raw.mac.toLowerCase().replaceAll('-', ':') : ''
    if (!MAC_RE.test(mac)) throw specError(specFile, `${where} (${name}): mac must look like 02:58:43:00:01:01, got ${JSON.stringify(raw.mac)}`)
    const type = raw.type ?? typeFromName(name)
    if (!NODE_TYPES.includes(type as NodeType)) throw specError(specFile, `${where} (${name}): type must be one of ${NODE_TYPES.join(', ')} (or follow the s/c/f naming)`)
    let ip: string | undefined
    if (raw.ip !== undefined) {
      if (!isIpv4(raw.ip) || !inSubnet(raw.ip)) throw specError(specFile, `${where} (${name}): ip must be a host address inside ${network.subnet}, got ${JSON.stringify(raw.ip)}`)
      ip = raw.ip
    }
    for (const [key, label] of [[`name:${name}`, 'name'], [`mac:${mac}`, 'MAC'], ...(ip ? [[ip, 'address']] : [])]) {
      if (seen.has(key)) throw specError(specFile, `${where} (${name}): ${label} already used by ${seen.get(key)}`)
      seen.set(key, where)
    }
    return {name, mac, type: type as NodeType, ...(ip ? {ip} : {})}
  })

  const reserved = Object.values((network.ranges ?? {}) as Record<string, unknown>).flatMap((r) => {
    const m = typeof r === 'string' ? r.match(/^(\S+)\s*-\s*(\S+)$/) : null
    return m && isIpv4(m[1]) && isIpv4(m[2]) ? [{start: m[1], end: m[2]}] : []
  })
  const added = extraComputeNodes(extra, nodes, network.subnet, reserved)
  if (added.length > 0) {
    const seq = doc.get('nodes') as YAMLSeq
    for (const n of added) {
      const item = doc.createNode({name: n.name, mac: n.mac, ip: n.ip})
      item.flow = true
      seq.items.push(item)
    }
  }
  return {
    cluster,
    subnet: network.subnet,
    prefixLength: net.prefixLength,
    gateway: network.gateway,
    domain: typeof network.domain === 'string' ? network.domain : 'lan',
    sshUser: typeof spec.ssh?.user === 'string' ? spec.ssh.user : 'root',
    nodes: [...nodes, ...added],
    effectiveSpecYaml: doc.toString(),
  }
}
