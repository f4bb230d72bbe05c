import {CEPH_BACKENDS, type CephBackend} from '../ceph/cli.js'
import {RBD_IMAGE} from '../ceph/rbd.js'
import {NODE_TYPES, type NodeType} from '../nodes/record.js'
import {settings} from '../settings.js'
import {fromInt, inRange, inSubnet, isHostAddress, parseCidr, parseIpv4, parseRange, rangesOverlap, type IntRange, type Subnet} from './ipv4.js'
import {checkMac} from './mac.js'
import {CORE_COUNTS, TYPE_FROM_NAME_RULES, isNodeType, typeFromName} from './node-type.js'
import {formatPath, type Locator, type SpecPath, type SpecProblem} from './problems.js'
import {RBD_MAP_MODES, type CephSpec, type ClusterSpec, type IpRange, type NetworkSpec, type NodeSpec, type PackagesSpec, type PxeSpec, type RbdMapMode, type ServiceSpec} from './types.js'

/** The result of validation: a spec when there are no problems, every problem otherwise. */
export type SpecValidation = {ok: true; spec: ClusterSpec; problems: []} | {ok: false; problems: SpecProblem[]}

export interface ValidateOptions {
  /** Named in every problem; defaults to `<spec>`. */
  file?: string
  /** Source positions for problems (parseSpec provides one from the YAML document). */
  locate?: Locator
}

const TOP_KEYS = ['cluster', 'network', 'ssh', 'nodes', 'pxe', 'packages', 'services', 'autoProvision', 'ceph'] as const
const TOP_REQUIRED = ['cluster', 'network', 'ssh', 'nodes'] as const
const PXE_KEYS = ['tftpServer', 'httpBootUrl', 'biosBootFile', 'uefiBootFile'] as const
const PACKAGES_KEYS = ['mirrors', 'proxy', 'upstream'] as const
const CEPH_KEYS = ['backend'] as const
/** `packages.proxy: none`: the nodes' apt goes to the mirrors directly. */
export const NO_PROXY = 'none'
/** Services `xcluster serve` runs inside itself (serve --dhcp, --provision, --certs): an entry only tunes their ttl and nodes. */
export const IN_PROCESS_SERVICES = ['dhcp', 'provision', 'certs'] as const
const NETWORK_KEYS = ['subnet', 'gateway', 'dns', 'domain', 'adminVip', 'ranges'] as const
const RANGE_KEYS = ['core', 'storage', 'compute', 'frontend', 'discovery'] as const
const SSH_KEYS = ['user', 'key'] as const
const NODE_KEYS = ['name', 'mac', 'ip', 'type'] as const
const NODE_REQUIRED = ['name', 'mac'] as const
const SERVICE_KEYS = ['name', 'ttl', 'start', 'stop', 'unit', 'nodes', 'vip', 'rbdImage', 'rbdMap'] as const
/** etcd's lease floor with default timings is 2 s (1.5 x the 1 s election timeout). */
const SERVICE_TTL = {default: settings.election.defaultTtlSeconds, min: 1, max: 300} as const

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const DNS_LABEL_FIX = 'Use a DNS label: 1 to 63 lower-case letters, digits and hyphens, starting and ending with a letter or digit.'

type RangeName = (typeof RANGE_KEYS)[number]

/** What later sections are checked against: the subnet, the ranges, the addresses already taken. */
interface NetworkFacts {
  spec: NetworkSpec
  subnet: Subnet
  discovery: IntRange
  ranges: Record<RangeName, IntRange>
  /** The gateway's and the admin VIP's addresses, with what they are. */
  reserved: Map<number, string>
}

/**
 * Checks a parsed spec (plain data, e.g. from YAML) and resolves it into a ClusterSpec:
 * canonical MACs, node types from names. Collects every problem rather than stopping at the
 * first, so the operator can fix a file in one pass.
 */
export function validateSpec(raw: unknown, options: ValidateOptions = {}): SpecValidation {
  const check = new SpecChecker(options.file ?? '<spec>', options.locate)
  const spec = check.spec(raw)
  if (check.problems.length > 0 || !spec) return {ok: false, problems: check.problems}
  return {ok: true, spec, problems: []}
}

class SpecChecker {
  readonly problems: SpecProblem[] = []

  constructor(
    private readonly file: string,
    private readonly locate?: Locator,
  ) {}

  private report(path: SpecPath, problem: string, fix: string, at: 'key' | 'value' = 'value'): void {
    const pos = this.locate?.(path, at)
    this.problems.push({file: this.file, line: pos?.line ?? null, col: pos?.col ?? null, path: formatPath(path), problem, fix})
  }

  private where(path: SpecPath): string {
    const pos = this.locate?.(path, 'value')
    return pos ? `${formatPath(path)}, line ${pos.line}` : formatPath(path)
  }

  spec(raw: unknown): ClusterSpec | undefined {
    const top = this.mapping(raw, [], TOP_KEYS, TOP_REQUIRED)
    if (!top) return undefined
    const cluster = this.dnsLabel(top.cluster, ['cluster'], 'cluster name')
    const network = this.network(top.network)
    const ssh = this.ssh(top.ssh)
    const nodes = this.nodes(top.nodes, network)
    const pxe = this.pxe(top.pxe, network?.subnet)
    const packages = this.packages(top.packages, network)
    const services = this.services(top.services, nodes, network)
    const autoProvision = this.flag(top.autoProvision, ['autoProvision'], 'Write autoProvision: true to let the cluster provision nodes that enlist, or false (the default) to leave that to node add.')
    const ceph = this.ceph(top.ceph)
    if (cluster === undefined || !network || !ssh || !nodes || pxe === null || packages === null || !services || autoProvision === null || ceph === null) return undefined
    return {
      cluster,
      network: network.spec,
      ssh,
      nodes,
      ...(pxe ? {pxe} : {}),
      ...(packages ? {packages} : {}),
      ...(services.length > 0 ? {services} : {}),
      ...(autoProvision ? {autoProvision} : {}),
      ...(ceph ? {ceph} : {}),
    }
  }

  /** The optional ceph: section; null when it has problems, undefined when absent. */
  private ceph(raw: unknown): CephSpec | undefined | null {
    if (raw === undefined) return undefined
    const map = this.mapping(raw, ['ceph'], CEPH_KEYS, ['backend'])
    if (!map || map.backend === undefined || map.backend === null) return null
    if (typeof map.backend !== 'string' || !(CEPH_BACKENDS as readonly string[]).includes(map.backend)) {
      this.report(['ceph', 'backend'], `${JSON.stringify(map.backend)} is not a Ceph backend`, `Write backend: microceph (MicroCeph's snap, the default) or backend: ceph (Debian's ceph packages).`)
      return null
    }
    return {backend: map.backend as CephBackend}
  }

  /** An optional true/false; null (reported) when it is something else. */
  private flag(raw: unknown, path: SpecPath, fix: string): boolean | undefined | null {
    if (raw === undefined || typeof raw === 'boolean') return raw
    this.report(path, `${JSON.stringify(raw)} is not true or false`, fix)
    return null
  }

  /**
   * The optional packages: section; null when it has problems, undefined when absent. URLs are
   * stored normalised (lower-case host, no default port, no trailing slash).
   */
  private packages(raw: unknown, network: {spec: NetworkSpec; subnet: Subnet} | undefined): PackagesSpec | undefined | null {
    if (raw === undefined) return undefined
    const before = this.problems.length
    const map = this.mapping(raw, ['packages'], PACKAGES_KEYS, [])
    if (!map) return null
    const packages: PackagesSpec = {}
    if (map.mirrors !== undefined) {
      const path = ['packages', 'mirrors']
      if (!Array.isArray(map.mirrors) || map.mirrors.length === 0) {
        this.report(path, `must be a non-empty list of mirror URLs, but is ${JSON.stringify(map.mirrors)}`, `Write it as a list, e.g. mirrors: [${settings.packages.mirrors.join(', ')}].`)
      } else {
        const seen = new Map<string, number>()
        const mirrors = map.mirrors.map((m, i) => {
          const url = this.url(m, [...path, i], 'mirror', ['http:', 'https:'], {path: true})
          if (url === undefined) return undefined
          const first = seen.get(url)
          if (first === undefined) seen.set(url, i)
          else this.report([...path, i], `duplicate mirror ${url} (first listed at ${this.where([...path, first])})`, 'List every mirror once.')
          return url
        })
        if (mirrors.every((m) => m !== undefined)) packages.mirrors = mirrors as string[]
      }
    }
    const gateway = network?.spec.gateway
    const cachePort = settings.packageProxyPort
    const cacheUrl = gateway === undefined ? undefined : `http://${gateway}:${cachePort}`
    if (map.proxy !== undefined) {
      const path = ['packages', 'proxy']
      if (map.proxy === NO_PROXY) packages.proxy = NO_PROXY
      else {
        const url = this.url(map.proxy, path, 'proxy', ['http:'], {path: false, none: true})
        const parsed = url === undefined ? undefined : new URL(url)
        const ip = parsed === undefined ? undefined : parseIpv4(parsed.hostname)
        const port = parsed === undefined ? undefined : Number(parsed.port || 80)
        if (parsed && ip !== undefined && network && !isHostAddress(ip, network.subnet)) {
          this.report(
            path,
            `the proxy ${url} is ${hostAddressProblem(parsed.hostname, ip, network.subnet).replace(/^"[^"]*" is /, '')}: the nodes reach their proxy on the cluster network`,
            `Use the admin host's cache (${cacheUrl}, the default: leave proxy: out), a proxy inside ${network.subnet.cidr}, or none.`,
          )
        } else if (parsed && parsed.hostname === gateway && port !== cachePort) {
          this.report(path, `the admin host's package cache listens on port ${cachePort}, not ${port}`, `Write proxy: ${cacheUrl}, or leave proxy: out (that is the default).`)
        } else if (url !== undefined) packages.proxy = url
      }
    }
    if (map.upstream !== undefined && map.upstream !== null) {
      const path = ['packages', 'upstream']
      const url = this.url(map.upstream, path, 'upstream proxy', ['http:'], {path: false})
      const nodesProxy = packages.proxy ?? cacheUrl
      if (url !== undefined && map.proxy !== undefined && packages.proxy !== undefined && nodesProxy !== cacheUrl) {
        this.report(
          path,
          `the upstream proxy is used only by the admin host's cache, but the nodes use ${nodesProxy === NO_PROXY ? 'no proxy' : nodesProxy}`,
          `Remove upstream:, or remove proxy: so the nodes use the admin host's cache (${cacheUrl}).`,
        )
      } else if (url !== undefined && url === cacheUrl) {
        this.report(path, `the upstream proxy ${url} is the admin host's cache itself`, 'Name the proxy the admin host reaches the mirrors through (e.g. a site proxy), or remove upstream:.')
      } else if (url !== undefined) packages.upstream = url
    }
    return this.problems.length > before ? null : packages
  }

  /**
   * A URL with one of `protocols`, without credentials, query or fragment; with `path: false`
   * nothing after the host either. Returned normalised: `http://host[:port][/path]`.
   */
  private url(value: unknown, path: SpecPath, what: string, protocols: string[], options: {path: boolean; none?: boolean}): string | undefined {
    const text = this.string(value, path, what)
    if (text === undefined) return undefined
    const schemes = protocols.map((p) => `${p}//`).join(' or ')
    const example = options.path ? 'http://deb.debian.org/debian' : 'http://10.0.0.1:3128'
    const orNone = options.none ? `, or ${NO_PROXY}` : ''
    let url: URL
    try {
      url = new URL(text)
    } catch {
      this.report(path, `"${text}" is not a URL`, `Write the ${what}'s ${schemes} URL, e.g. ${example}${orNone}.`)
      return undefined
    }
    if (!protocols.includes(url.protocol)) {
      this.report(path, `"${text}" is not an ${schemes} URL`, `Write the ${what}'s ${schemes} URL, e.g. ${example}${orNone}.`)
      return undefined
    }
    if (url.username || url.password) {
      this.report(path, `"${text}" carries credentials`, 'Remove user:password@ from the URL: the spec is stored in etcd and rendered into configs.')
      return undefined
    }
    if (url.search || url.hash || (!options.path && url.pathname !== '/') || /\s/.test(text)) {
      const allowed = options.path ? 'a scheme, a host, an optional port and a path' : 'a scheme, a host and an optional port'
      this.report(path, `"${text}" has more than ${allowed}`, `Write only ${allowed}, e.g. ${example}.`)
      return undefined
    }
    const pathname = options.path ? url.pathname.replace(/\/+$/, '') : ''
    return `${url.protocol}//${url.host}${pathname}`
  }

  /** The optional pxe: section; null when it has problems, undefined when absent. */
  private pxe(raw: unknown, subnet: Subnet | undefined): PxeSpec | undefined | null {
    if (raw === undefined) return undefined
    const before = this.problems.length
    const map = this.mapping(raw, ['pxe'], PXE_KEYS, [])
    if (!map) return null
    const pxe: PxeSpec = {}
    if (map.tftpServer !== undefined) {
      const ip = this.address(map.tftpServer, ['pxe', 'tftpServer'], 'TFTP server', subnet)
      if (ip !== undefined) pxe.tftpServer = fromInt(ip)
    }
    if (map.httpBootUrl !== undefined) {
      const url = this.string(map.httpBootUrl, ['pxe', 'httpBootUrl'], 'boot script URL')
      if (url !== undefined && !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(url)) {
        this.report(['pxe', 'httpBootUrl'], `"${url}" is not an http:// or https:// URL`, 'Write the URL of the iPXE boot script, e.g. http://10.0.0.1/boot.ipxe.')
      } else if (url !== undefined) pxe.httpBootUrl = url
    }
    for (const key of ['biosBootFile', 'uefiBootFile'] as const) {
      if (map[key] === undefined) continue
      const file = this.string(map[key], ['pxe', key], 'boot file name')
      // DHCP's file field holds 127 bytes plus a NUL; whitespace would break TFTP requests.
      if (file !== undefined && (file.length > 127 || /\s/.test(file))) {
        this.report(['pxe', key], `"${file}" is not a usable boot file name`, 'Use a path on the TFTP server without spaces, at most 127 characters, e.g. undionly.kpxe.')
      } else if (file !== undefined) pxe[key] = file
    }
    return this.problems.length > before ? null : pxe
  }

  /** A mapping with only `allowed` keys and every `required` one; undefined if not a mapping. */
  private mapping(value: unknown, path: SpecPath, allowed: readonly string[], required: readonly string[]): Record<string, unknown> | undefined {
    if (value === undefined) return undefined // reported as missing by the parent
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      const what = value === null ? 'empty' : Array.isArray(value) ? 'a list' : `${JSON.stringify(value)}`
      this.report(path, `must be a mapping of ${allowed.join(', ')}, but is ${what}`, `Write it as key: value lines with the keys ${allowed.join(', ')}.`)
      return undefined
    }
    const map = value as Record<string, unknown>
    for (const key of Object.keys(map)) {
      if (!allowed.includes(key)) {
        this.report([...path, key], `unknown key "${key}"`, `Allowed keys here: ${allowed.join(', ')}.`, 'key')
      }
    }
    for (const key of required) {
      if (map[key] === undefined || map[key] === null) {
        this.report([...path, key], `required key "${key}" is missing`, `Add ${key}: to ${formatPath(path)}.`)
      }
    }
    return map
  }

  private string(value: unknown, path: SpecPath, what: string): string | undefined {
    if (value === undefined || value === null) return undefined // reported as missing
    if (typeof value !== 'string' || value.trim() === '') {
      this.report(path, `${what} must be a non-empty string, but is ${JSON.stringify(value)}`, `Write the ${what} as text.`)
      return undefined
    }
    return value
  }

  private dnsLabel(value: unknown, path: SpecPath, what: string): string | undefined {
    const text = this.string(value, path, what)
    if (text === undefined) return undefined
    if (!DNS_LABEL.test(text)) {
      this.report(path, `"${text}" is not a valid ${what}`, DNS_LABEL_FIX)
      return undefined
    }
    return text
  }

  private address(value: unknown, path: SpecPath, what: string, subnet: Subnet | undefined): number | undefined {
    const text = this.string(value, path, what)
    if (text === undefined) return undefined
    const ip = parseIpv4(text)
    if (ip === undefined) {
      this.report(path, `"${text}" is not an IPv4 address`, 'Write four decimal numbers from 0 to 255 separated by dots, e.g. 10.0.0.1.')
      return undefined
    }
    if (subnet && !isHostAddress(ip, subnet)) {
      this.report(path, hostAddressProblem(text, ip, subnet), `Use an address from ${fromInt(firstHost(subnet))} to ${fromInt(lastHost(subnet))}.`)
      return undefined
    }
    return ip
  }

  private network(raw: unknown): NetworkFacts | undefined {
    const path = ['network']
    const net = this.mapping(raw, path, NETWORK_KEYS, NETWORK_KEYS)
    if (!net) return undefined
    const subnet = this.subnet(net.subnet)
    const gateway = this.address(net.gateway, ['network', 'gateway'], 'gateway', subnet)
    const adminVip = this.address(net.adminVip, ['network', 'adminVip'], 'admin VIP', subnet)
    if (gateway !== undefined && gateway === adminVip) {
      this.report(
        ['network', 'adminVip'],
        `the admin VIP ${fromInt(adminVip)} is the gateway's address`,
        'Pick a free address for the VIP: it moves between core nodes, the gateway stays on the admin host.',
      )
    }
    const dns = this.dnsServers(net.dns, subnet)
    const domain = this.domain(net.domain)
    const ranges = this.ranges(net.ranges, subnet, {gateway, adminVip})
    if (!subnet || gateway === undefined || adminVip === undefined || !dns || domain === undefined || !ranges) return undefined
    const reserved = new Map<number, string>([
      [gateway, 'the gateway'],
      [adminVip, 'the admin VIP'],
    ])
    return {
      spec: {subnet: subnet.cidr, gateway: fromInt(gateway), dns, domain, adminVip: fromInt(adminVip), ranges: ranges.spec},
      subnet,
      discovery: ranges.ints.discovery,
      ranges: ranges.ints,
      reserved,
    }
  }

  private subnet(value: unknown): Subnet | undefined {
    const path = ['network', 'subnet']
    const text = this.string(value, path, 'subnet')
    if (text === undefined) return undefined
    const subnet = parseCidr(text)
    if (subnet) return subnet
    const [address, prefix] = text.split('/')
    const ip = parseIpv4(address ?? '')
    if (ip !== undefined && /^\d{1,2}$/.test(prefix ?? '') && Number(prefix) <= 32) {
      const size = 2 ** (32 - Number(prefix))
      const network = `${fromInt(ip - (ip % size))}/${prefix}`
      this.report(path, `"${text}" has host bits set`, `Write the network address: ${network}.`)
    } else {
      this.report(path, `"${text}" is not an IPv4 subnet in CIDR form`, 'Write the network address and prefix length, e.g. 10.0.0.0/24.')
    }
    return undefined
  }

  private dnsServers(value: unknown, subnet: Subnet | undefined): string[] | undefined {
    const path = ['network', 'dns']
    if (value === undefined || value === null) return undefined
    if (!Array.isArray(value) || value.length === 0) {
      this.report(path, `must be a non-empty list of addresses, but is ${JSON.stringify(value)}`, 'Write it as a list, e.g. dns: [10.0.0.1].')
      return undefined
    }
    const servers = value.map((v, i) => this.address(v, [...path, i], 'DNS server', subnet))
    return servers.every((s) => s !== undefined) ? servers.map((s) => fromInt(s as number)) : undefined
  }

  private domain(value: unknown): string | undefined {
    const path = ['network', 'domain']
    const text = this.string(value, path, 'domain')
    if (text === undefined) return undefined
    if (text.length > 253 || !text.split('.').every((label) => DNS_LABEL.test(label))) {
      this.report(path, `"${text}" is not a valid domain name`, 'Use dot-separated DNS labels (lower-case letters, digits and hyphens), e.g. xcluster.lan.')
      return undefined
    }
    return text
  }

  private ranges(raw: unknown, subnet: Subnet | undefined, reserved: {gateway?: number; adminVip?: number}): {spec: NetworkSpec['ranges']; ints: Record<RangeName, IntRange>} | undefined {
    const base = ['network', 'ranges']
    const map = this.mapping(raw, base, RANGE_KEYS, RANGE_KEYS)
    if (!map) return undefined
    const ints: Partial<Record<RangeName, IntRange>> = {}
    for (const name of RANGE_KEYS) {
      const range = this.range(map[name], [...base, name], name, subnet, reserved)
      if (range) ints[name] = range
    }
    // Overlaps only between ranges that are valid on their own; reported on the later range.
    const valid = RANGE_KEYS.filter((n) => ints[n])
    for (const [i, later] of valid.entries()) {
      for (const earlier of valid.slice(0, i)) {
        const a = ints[earlier] as IntRange
        const b = ints[later] as IntRange
        if (rangesOverlap(a, b)) {
          this.report([...base, later], `the ${later} range ${formatRange(b)} overlaps the ${earlier} range ${formatRange(a)}`, 'Ranges must not share addresses: shrink or move one of them.')
        }
      }
    }
    if (valid.length !== RANGE_KEYS.length || this.problems.some((p) => p.path.startsWith('network.ranges'))) return undefined
    const all = ints as Record<RangeName, IntRange>
    const spec = Object.fromEntries(RANGE_KEYS.map((n) => [n, toIpRange(all[n])])) as NetworkSpec['ranges']
    return {spec, ints: all}
  }

  private range(value: unknown, path: SpecPath, name: RangeName, subnet: Subnet | undefined, reserved: {gateway?: number; adminVip?: number}): IntRange | undefined {
    const text = this.string(value, path, `${name} range`)
    if (text === undefined) return undefined
    const range = parseRange(text)
    if (!range) {
      this.report(path, `"${text}" is not a range of addresses`, 'Write it as FIRST-LAST, e.g. 10.0.0.11-10.0.0.30.')
      return undefined
    }
    if (range.start > range.end) {
      this.report(path, `the ${name} range "${text}" starts after it ends`, `Write the lower address first: ${formatRange({start: range.end, end: range.start})}.`)
      return undefined
    }
    if (subnet && !(isHostAddress(range.start, subnet) && isHostAddress(range.end, subnet))) {
      const outside = !inSubnet(range.start, subnet) || !inSubnet(range.end, subnet)
      this.report(
        path,
        outside ? `the ${name} range ${formatRange(range)} is outside the subnet ${subnet.cidr}` : `the ${name} range ${formatRange(range)} includes the subnet's network or broadcast address`,
        `Keep it within ${fromInt(firstHost(subnet))}-${fromInt(lastHost(subnet))}.`,
      )
      return undefined
    }
    for (const [what, ip] of [
      ['gateway', reserved.gateway],
      ['admin VIP', reserved.adminVip],
    ] as const) {
      if (ip !== undefined && inRange(ip, range)) {
        this.report(path, `the ${name} range ${formatRange(range)} contains the ${what} ${fromInt(ip)}`, `Shrink the range so it leaves out ${fromInt(ip)}.`)
        return undefined
      }
    }
    return range
  }

  /** `services:` is optional: an absent section is an empty list. */
  private services(raw: unknown, nodes: NodeSpec[] | undefined, network: NetworkFacts | undefined): ServiceSpec[] | undefined {
    if (raw === undefined || raw === null) return []
    if (!Array.isArray(raw)) {
      this.report(['services'], `must be a list of services, but is ${JSON.stringify(raw)}`, 'Write one "- {name: ..., start: ..., stop: ...}" entry per service.')
      return undefined
    }
    const before = this.problems.length
    const seen = new Map<string, number>()
    const vips = new Map<number, number>()
    const services = raw.map((entry, i) => this.service(entry, i, nodes, network, seen, vips))
    return this.problems.length === before ? (services as ServiceSpec[]) : undefined
  }

  private service(raw: unknown, i: number, nodes: NodeSpec[] | undefined, network: NetworkFacts | undefined, seen: Map<string, number>, vips: Map<number, number>): ServiceSpec | undefined {
    const path = ['services', i]
    const entry = this.mapping(raw, path, SERVICE_KEYS, ['name'])
    if (!entry) return undefined
    const name = this.dnsLabel(entry.name, [...path, 'name'], 'service name')
    if (name !== undefined) {
      const first = seen.get(name)
      if (first === undefined) seen.set(name, i)
      else this.report([...path, 'name'], `duplicate service name "${name}" (first used at ${this.where(['services', first, 'name'])})`, 'Give every service a unique name.')
    }
    let ttl: number = SERVICE_TTL.default
    if (entry.ttl !== undefined && entry.ttl !== null) {
      if (typeof entry.ttl !== 'number' || !Number.isInteger(entry.ttl) || entry.ttl < SERVICE_TTL.min || entry.ttl > SERVICE_TTL.max) {
        this.report(
          [...path, 'ttl'],
          `ttl must be a whole number of seconds from ${SERVICE_TTL.min} to ${SERVICE_TTL.max}, but is ${JSON.stringify(entry.ttl)}`,
          `Write e.g. ttl: ${SERVICE_TTL.default} (etcd raises a lease below its floor, 2 s with default timings).`,
        )
      } else ttl = entry.ttl
    }
    const start = this.string(entry.start, [...path, 'start'], 'start command')
    const stop = this.string(entry.stop, [...path, 'stop'], 'stop command')
    const unit = this.string(entry.unit, [...path, 'unit'], 'systemd unit')
    if (unit !== undefined && (entry.start !== undefined || entry.stop !== undefined)) {
      this.report([...path, 'unit'], `service "${name ?? i}" has both unit: and start:/stop:`, 'Give either unit: (run with systemctl) or start: and stop: commands, not both.')
    } else if (unit === undefined && (entry.start === undefined) !== (entry.stop === undefined)) {
      const missing = entry.start === undefined ? 'start' : 'stop'
      this.report(
        [...path, missing],
        `service "${name ?? i}" has ${missing === 'start' ? 'stop:' : 'start:'} but no ${missing}:`,
        'A service started by a command needs the command that stops it too (the leader stops it when it loses).',
      )
    } else if (unit === undefined && entry.start === undefined && !(IN_PROCESS_SERVICES as readonly unknown[]).includes(name)) {
      this.report(
        path,
        `service "${name ?? i}" has neither unit: nor start:/stop:`,
        `Add unit: NAME (systemd) or start: and stop: commands (only ${IN_PROCESS_SERVICES.join(', ')} runs inside xcluster serve and needs neither).`,
      )
    }
    let allowed: string[] | undefined
    if (entry.nodes !== undefined && entry.nodes !== null) {
      if (!Array.isArray(entry.nodes) || entry.nodes.length === 0) {
        this.report(
          [...path, 'nodes'],
          `must be a non-empty list of node names, but is ${JSON.stringify(entry.nodes)}`,
          'Write e.g. nodes: [s1, s2, s3], or leave nodes: out to let every node campaign.',
        )
      } else {
        const known = new Set((nodes ?? []).map((n) => n.name))
        allowed = []
        for (const [j, n] of entry.nodes.entries()) {
          if (typeof n !== 'string' || (nodes && !known.has(n))) {
            this.report([...path, 'nodes', j], `${JSON.stringify(n)} is not a node of this spec`, `Use names from nodes: (${[...known].join(', ')}).`)
          } else allowed.push(n)
        }
      }
    }
    const vip = entry.vip === undefined || entry.vip === null ? undefined : this.serviceVip(entry.vip, [...path, 'vip'], nodes, network, vips, i)
    const rbdImage = this.string(entry.rbdImage, [...path, 'rbdImage'], 'RBD image')
    if (rbdImage !== undefined && !RBD_IMAGE.test(rbdImage)) {
      this.report([...path, 'rbdImage'], `"${rbdImage}" is not an RBD image name`, 'Write pool/image, e.g. rbdImage: rbd/postgres.')
    }
    const rbdMap = this.string(entry.rbdMap, [...path, 'rbdMap'], 'RBD map mode')
    if (rbdMap !== undefined && !(RBD_MAP_MODES as readonly string[]).includes(rbdMap)) {
      this.report([...path, 'rbdMap'], `"${rbdMap}" is not a way to map an image`, `Write one of ${RBD_MAP_MODES.join(', ')} (auto when left out).`)
    } else if (rbdMap !== undefined && rbdImage === undefined) {
      this.report([...path, 'rbdMap'], 'says how to map rbdImage, but there is no rbdImage', 'Add rbdImage: POOL/IMAGE, or leave rbdMap: out.')
    }
    if (name === undefined) return undefined
    return {
      name,
      ttl,
      ...(unit === undefined ? {start, stop} : {unit}),
      ...(allowed ? {nodes: allowed} : {}),
      ...(vip === undefined ? {} : {vip: fromInt(vip)}),
      ...(rbdImage === undefined ? {} : {rbdImage}),
      ...(rbdMap === undefined ? {} : {rbdMap: rbdMap as RbdMapMode}),
    }
  }

  /**
   * A service VIP moves to whichever node leads: it must be nobody's own address (a node's IP,
   * the gateway, the admin VIP, another service's VIP) and outside every DHCP range, so DHCP
   * never hands it to a machine.
   */
  private serviceVip(value: unknown, path: SpecPath, nodes: NodeSpec[] | undefined, network: NetworkFacts | undefined, vips: Map<number, number>, i: number): number | undefined {
    const vip = this.address(value, path, 'VIP', network?.subnet)
    if (vip === undefined || !network) return vip
    const fix = "Pick a free address outside the DHCP ranges for the VIP: it moves between nodes and must be no machine's own address."
    const reservedFor = network.reserved.get(vip)
    const node = (nodes ?? []).find((n) => n.ip !== undefined && parseIpv4(n.ip) === vip)
    const range = RANGE_KEYS.find((name) => inRange(vip, network.ranges[name]))
    const first = vips.get(vip)
    if (reservedFor) this.report(path, `the VIP ${fromInt(vip)} is ${reservedFor}'s address`, fix)
    else if (node) this.report(path, `the VIP ${fromInt(vip)} is node ${node.name}'s IP address`, fix)
    else if (range) this.report(path, `the VIP ${fromInt(vip)} is inside the ${range} range ${formatRange(network.ranges[range])}, which DHCP hands out`, fix)
    else if (first !== undefined) this.report(path, `the VIP ${fromInt(vip)} is already the VIP of ${this.where(['services', first, 'vip'])}`, 'Give every service its own VIP.')
    else {
      vips.set(vip, i)
      return vip
    }
    return undefined
  }

  private ssh(raw: unknown): ClusterSpec['ssh'] | undefined {
    const ssh = this.mapping(raw, ['ssh'], SSH_KEYS, SSH_KEYS)
    if (!ssh) return undefined
    const user = this.string(ssh.user, ['ssh', 'user'], 'SSH user')
    const key = this.string(ssh.key, ['ssh', 'key'], 'SSH key path')
    return user === undefined || key === undefined ? undefined : {user, key}
  }

  private nodes(raw: unknown, network: NetworkFacts | undefined): NodeSpec[] | undefined {
    if (raw === undefined || raw === null) return undefined // reported as missing
    if (!Array.isArray(raw)) {
      this.report(['nodes'], `must be a list of nodes, but is ${JSON.stringify(raw)}`, 'Write one "- {name: ..., mac: ...}" line per node.')
      return undefined
    }
    const before = this.problems.length
    const names = new Map<string, number>()
    const macs = new Map<string, number>()
    const ips = new Map<number, number>()
    const nodes: (NodeSpec | undefined)[] = raw.map((entry, i) => this.node(entry, i, network, {names, macs, ips}))
    const resolved = nodes.filter((n): n is NodeSpec => n !== undefined)
    if (resolved.length === raw.length) {
      const core = resolved.filter((n) => n.type === 'core').map((n) => n.name)
      if (!(CORE_COUNTS as readonly number[]).includes(core.length)) {
        const which = core.length === 0 ? 'none' : core.join(', ')
        this.report(
          ['nodes'],
          `there are ${core.length} core nodes (${which}), but etcd's quorum needs ${CORE_COUNTS.join(' or ')}`,
          `Declare ${CORE_COUNTS.join(' or ')} core nodes: s1, s2 and s3 are core by name; give any other node type: core.`,
        )
      }
    }
    return this.problems.length === before ? resolved : undefined
  }

  private node(raw: unknown, i: number, network: NetworkFacts | undefined, seen: {names: Map<string, number>; macs: Map<string, number>; ips: Map<number, number>}): NodeSpec | undefined {
    const path = ['nodes', i]
    const entry = this.mapping(raw, path, NODE_KEYS, NODE_REQUIRED)
    if (!entry) return undefined
    const before = this.problems.length

    const name = this.dnsLabel(entry.name, [...path, 'name'], 'node name')
    if (name !== undefined) {
      const first = seen.names.get(name)
      if (first === undefined) seen.names.set(name, i)
      else this.report([...path, 'name'], `duplicate node name "${name}" (first used at ${this.where(['nodes', first, 'name'])})`, 'Give every node a unique name.')
    }

    const macText = this.string(entry.mac, [...path, 'mac'], 'MAC')
    let mac: string | undefined
    if (macText !== undefined) {
      const result = checkMac(macText)
      if (!result.ok) {
        const fix =
          result.kind === 'format'
            ? "Write the NIC's MAC as six hex pairs, e.g. 02:58:43:00:01:01 (or 02-58-43-00-01-01)."
            : "Use the MAC of the node's boot NIC (as `ip link` shows it): a unicast, non-zero address."
        this.report([...path, 'mac'], `"${macText}" ${result.reason}`, fix)
      } else {
        mac = result.mac
        const first = seen.macs.get(mac)
        if (first === undefined) seen.macs.set(mac, i)
        else this.report([...path, 'mac'], `duplicate MAC ${mac} (already used at ${this.where(['nodes', first, 'mac'])})`, 'Every NIC has its own MAC: check for a copy-paste error.')
      }
    }

    let ip: number | undefined
    if (entry.ip !== undefined && entry.ip !== null) {
      ip = this.address(entry.ip, [...path, 'ip'], 'IP address', network?.subnet)
      if (ip !== undefined && network) {
        const reservedFor = network.reserved.get(ip)
        if (reservedFor) {
          this.report([...path, 'ip'], `${fromInt(ip)} is ${reservedFor}'s address`, 'Pick an address no other host or VIP uses.')
        } else if (inRange(ip, network.discovery)) {
          this.report(
            [...path, 'ip'],
            `${fromInt(ip)} is inside the discovery range ${formatRange(network.discovery)}`,
            'Pick an address outside the discovery range: DHCP hands those out to unknown machines.',
          )
        }
      }
      if (ip !== undefined) {
        const first = seen.ips.get(ip)
        if (first === undefined) seen.ips.set(ip, i)
        else this.report([...path, 'ip'], `duplicate IP ${fromInt(ip)} (already used at ${this.where(['nodes', first, 'ip'])})`, 'Give every node its own address, or leave ip: out to use DHCP.')
      }
    }

    let type: NodeType | undefined
    if (entry.type !== undefined && entry.type !== null) {
      if (isNodeType(entry.type)) type = entry.type
      else this.report([...path, 'type'], `${JSON.stringify(entry.type)} is not a node type`, `Use one of: ${NODE_TYPES.join(', ')}.`)
    } else if (name !== undefined) {
      type = typeFromName(name)
      if (!type) {
        this.report([...path, 'name'], `cannot tell the type of node "${name}" from its name`, `Add type: (${NODE_TYPES.join('|')}), or follow the naming rule: ${TYPE_FROM_NAME_RULES}.`)
      }
    }

    if (this.problems.length > before || name === undefined || mac === undefined || type === undefined) return undefined
    return {name, mac, ...(ip === undefined ? {} : {ip: fromInt(ip)}), type}
  }
}

function hostAddressProblem(text: string, ip: number, subnet: Subnet): string {
  if (!inSubnet(ip, subnet)) return `"${text}" is outside the subnet ${subnet.cidr}`
  if (ip === subnet.network) return `"${text}" is the network address of ${subnet.cidr}`
  return `"${text}" is the broadcast address of ${subnet.cidr}`
}

const firstHost = (s: Subnet): number => (s.prefix >= 31 ? s.network : s.network + 1)
const lastHost = (s: Subnet): number => (s.prefix >= 31 ? s.broadcast : s.broadcast - 1)
const formatRange = (r: IntRange): string => `${fromInt(r.start)}-${fromInt(r.end)}`
const toIpRange = (r: IntRange): IpRange => ({start: fromInt(r.start), end: fromInt(r.end)})
