import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {type XclusterError} from '../../src/lib/errors.js'
import {fromInt, inRange, inSubnet, isHostAddress, parseCidr, parseIpv4, parseRange, rangesOverlap, toInt} from '../../src/lib/spec/ipv4.js'
import {checkMac, normalizeMac} from '../../src/lib/spec/mac.js'
import {typeFromName} from '../../src/lib/spec/node-type.js'
import {checkSpecText, loadSpecFile, parseSpec} from '../../src/lib/spec/parse.js'
import {formatProblem, type SpecProblem} from '../../src/lib/spec/problems.js'
import {specToYaml} from '../../src/lib/spec/document.js'
import {packageSettings} from '../../src/lib/admin-services/packages.js'
import {validateSpec} from '../../src/lib/spec/validate.js'
import {ROOT} from '../helpers/cli.js'

const EXAMPLE = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8')
const FILE = 'spec.yaml'

/** The example with one substring replaced; fails loudly if the substring is not there. */
function edit(from: string, to: string, text = EXAMPLE): string {
  assert.ok(text.includes(from), `test setup: ${JSON.stringify(from)} not in the spec`)
  return text.replace(from, to)
}

function problemsOf(text: string): SpecProblem[] {
  const result = checkSpecText(text, FILE)
  assert.equal(result.ok, false, 'expected the spec to be invalid')
  return result.problems
}

/** Exactly one problem, at `path`, whose message and fix contain the given parts. */
function onlyProblem(text: string, path: string, problem: string, fix?: string): SpecProblem {
  const problems = problemsOf(text)
  assert.equal(problems.length, 1, `expected one problem, got:\n${problems.map(formatProblem).join('\n')}`)
  const [p] = problems
  assert.equal(p.path, path)
  assert.equal(p.file, FILE)
  assert.ok(p.problem.includes(problem), `problem ${JSON.stringify(p.problem)} lacks ${JSON.stringify(problem)}`)
  if (fix) assert.ok(p.fix.includes(fix), `fix ${JSON.stringify(p.fix)} lacks ${JSON.stringify(fix)}`)
  assert.equal(typeof p.line, 'number')
  return p
}

const lineOf = (text: string, needle: string): number => text.split('\n').findIndex((l) => l.includes(needle)) + 1

describe('ipv4 helpers', () => {
  it('parses dotted quads and refuses anything else', () => {
    assert.equal(parseIpv4('10.0.0.1'), 0x0a000001)
    assert.equal(parseIpv4('255.255.255.255'), 0xffffffff)
    for (const bad of ['10.0.0', '10.0.0.256', '10.0.0.01', '10.0.0.-1', 'a.b.c.d', '', '10.0.0.1.2', ' 10.0.0.1']) {
      assert.equal(parseIpv4(bad), undefined, bad)
    }
    assert.equal(fromInt(toInt('192.168.1.200')), '192.168.1.200')
    assert.throws(() => toInt('nope'), /not an IPv4 address/)
  })

  it('parses CIDRs, refusing host bits and bad prefixes', () => {
    const s = parseCidr('10.0.0.0/24')
    assert.deepEqual(s, {cidr: '10.0.0.0/24', prefix: 24, network: toInt('10.0.0.0'), broadcast: toInt('10.0.0.255')})
    assert.equal(parseCidr('10.0.0.5/24'), undefined)
    assert.equal(parseCidr('10.0.0.0/33'), undefined)
    assert.equal(parseCidr('10.0.0.0'), undefined)
    assert.equal(parseCidr('0.0.0.0/0')?.broadcast, 0xffffffff)
  })

  it('tests subnet membership and host addresses', () => {
    const s = parseCidr('10.0.0.0/24')!
    assert.ok(inSubnet('10.0.0.0', s) && inSubnet('10.0.0.255', s) && !inSubnet('10.0.1.0', s))
    assert.ok(isHostAddress('10.0.0.1', s) && isHostAddress('10.0.0.254', s))
    assert.ok(!isHostAddress('10.0.0.0', s) && !isHostAddress('10.0.0.255', s) && !isHostAddress('10.0.1.1', s))
    assert.ok(isHostAddress('10.0.0.1', parseCidr('10.0.0.0/31')!), '/31 has no reserved addresses')
  })

  it('parses ranges and detects overlap', () => {
    const a = parseRange('10.0.0.2-10.0.0.10')!
    assert.deepEqual(a, {start: toInt('10.0.0.2'), end: toInt('10.0.0.10')})
    assert.deepEqual(parseRange('10.0.0.2 - 10.0.0.10'), a)
    assert.equal(parseRange('10.0.0.2..10.0.0.10'), undefined)
    assert.equal(parseRange('10.0.0.2-10.0.0.10-10.0.0.12'), undefined)
    assert.ok(rangesOverlap(a, parseRange('10.0.0.10-10.0.0.20')!), 'touching ends overlap')
    assert.ok(!rangesOverlap(a, parseRange('10.0.0.11-10.0.0.20')!))
    assert.ok(rangesOverlap(parseRange('10.0.0.1-10.0.0.100')!, a), 'containment overlaps')
    assert.ok(inRange(toInt('10.0.0.2'), a) && !inRange(toInt('10.0.0.11'), a))
  })
})

describe('MACs', () => {
  it('normalises to lower-case colon form', () => {
    assert.equal(normalizeMac('AA-BB-CC-DD-EE-F0'), 'aa:bb:cc:dd:ee:f0')
    assert.equal(normalizeMac('02:58:43:00:01:0A'), '02:58:43:00:01:0a')
  })

  it('refuses malformed, multicast and all-zero MACs', () => {
    for (const bad of ['02:58:43:00:01', '02:58:43:00:01:0g', '02-58:43:00:01:01', '0258.4300.0101', '02:58:43:00:01:01:01']) {
      assert.deepEqual(checkMac(bad), {ok: false, kind: 'format', reason: 'is not a MAC address'}, bad)
    }
    assert.equal(checkMac('01:00:5e:00:00:01').ok, false)
    assert.match((checkMac('03:00:00:00:00:01') as {reason: string}).reason, /multicast/)
    assert.match((checkMac('00-00-00-00-00-00') as {reason: string}).reason, /all-zero/)
    assert.throws(() => normalizeMac('ff:ff:ff:ff:ff:ff'), /multicast/)
  })
})

describe('type from name', () => {
  it('follows the naming rule', () => {
    const cases: [string, string | undefined][] = [
      ['s1', 'core'],
      ['s2', 'core'],
      ['s3', 'core'],
      ['s4', 'storage'],
      ['s12', 'storage'],
      ['c1', 'compute'],
      ['compute-7', 'compute'],
      ['f1', 'frontend'],
      ['fe', 'frontend'],
      ['s0', undefined],
      ['s01', undefined],
      ['sx', undefined],
      ['x1', undefined],
      ['admin', undefined],
    ]
    for (const [name, type] of cases) assert.equal(typeFromName(name), type, name)
  })
})

describe('parseSpec: the example spec', () => {
  it('is valid and resolves types, MACs and ranges', () => {
    const spec = parseSpec(EXAMPLE, FILE)
    assert.equal(spec.cluster, 'xcluster')
    assert.equal(spec.network.subnet, '10.0.0.0/24')
    assert.deepEqual(spec.network.ranges.discovery, {start: '10.0.0.200', end: '10.0.0.250'})
    assert.deepEqual(
      spec.nodes.map((n) => [n.name, n.type, n.ip ?? null]),
      [
        ['s1', 'core', '10.0.0.2'],
        ['s2', 'core', '10.0.0.3'],
        ['s3', 'core', '10.0.0.4'],
        ['s4', 'storage', null],
        ['c1', 'compute', null],
        ['f1', 'frontend', null],
      ],
    )
    assert.deepEqual(spec.ssh, {user: 'root', key: '~/.ssh/id_ed25519'})
  })

  it('normalises MACs written upper-case with dashes', () => {
    const spec = parseSpec(edit('"02:58:43:00:02:01"', '"02-58-43-00-02-0A"'), FILE)
    assert.equal(spec.nodes.find((n) => n.name === 'c1')?.mac, '02:58:43:00:02:0a')
  })

  it('takes an explicit type over the name, and types names that follow no rule', () => {
    const spec = parseSpec(edit('{name: c1, mac: "02:58:43:00:02:01"}', '{name: gpu1, mac: "02:58:43:00:02:01", type: compute}'), FILE)
    assert.equal(spec.nodes.find((n) => n.name === 'gpu1')?.type, 'compute')
    const five = edit('{name: s4, mac: "02:58:43:00:01:04"}', '{name: s4, mac: "02:58:43:00:01:04", type: core}\n  - {name: s5, mac: "02:58:43:00:01:05", type: core}')
    assert.equal(parseSpec(five, FILE).nodes.filter((n) => n.type === 'core').length, 5)
  })
})

describe('parseSpec: every rule', () => {
  it('malformed YAML', () => {
    const text = edit('  dns: [10.0.0.1]', '  dns: [10.0.0.1')
    const p = problemsOf(text)[0]
    assert.equal(p.path, '(yaml)')
    assert.match(p.problem, /^malformed YAML: /)
    assert.match(p.fix, /Fix the YAML syntax/)
    assert.equal(typeof p.line, 'number')
  })

  it('duplicate YAML keys', () => {
    const p = problemsOf(edit('  domain: xcluster.lan', '  domain: xcluster.lan\n  domain: other.lan'))[0]
    assert.equal(p.path, '(yaml)')
    assert.match(p.problem, /malformed YAML: Map keys must be unique/)
    assert.equal(p.fix, 'Remove or rename the repeated key.')
    assert.equal(p.line, lineOf(EXAMPLE, '  domain: xcluster.lan') + 1)
  })

  it('an empty file', () => {
    onlyProblem('# nothing\n', '(top level)', 'must be a mapping of cluster, network, ssh, nodes, pxe, packages, services, autoProvision, ceph, but is empty')
  })

  it('unknown keys, at every level, naming the allowed ones', () => {
    const top = onlyProblem(
      edit('cluster: xcluster', 'cluster: xcluster\nclustr: typo'),
      'clustr',
      'unknown key "clustr"',
      'Allowed keys here: cluster, network, ssh, nodes, pxe, packages, services, autoProvision, ceph.',
    )
    assert.equal(top.line, lineOf(EXAMPLE, 'cluster: xcluster') + 1)
    assert.equal(top.col, 1)
    onlyProblem(edit('  domain: xcluster.lan', '  domain: xcluster.lan\n  mtu: 9000'), 'network.mtu', 'unknown key "mtu"', 'Allowed keys here: subnet, gateway, dns, domain, adminVip, ranges.')
    onlyProblem(edit('    discovery:', '    pxe: 10.0.0.90-10.0.0.99\n    discovery:'), 'network.ranges.pxe', 'unknown key "pxe"', 'Allowed keys here: core, storage, compute, frontend, discovery.')
    onlyProblem(edit('  user: root', '  user: root\n  port: 22'), 'ssh.port', 'unknown key "port"', 'Allowed keys here: user, key.')
    const withRack = edit('{name: f1, mac: "02:58:43:00:03:01"}', '{name: f1, mac: "02:58:43:00:03:01", rack: 7}')
    const node = onlyProblem(withRack, 'nodes[5].rack', 'unknown key "rack"', 'Allowed keys here: name, mac, ip, type.')
    assert.equal(node.line, lineOf(withRack, 'name: f1'))
    assert.equal(node.col, withRack.split('\n')[node.line! - 1].indexOf('rack') + 1, 'points at the key')
  })

  it('required fields', () => {
    onlyProblem(edit('  domain: xcluster.lan\n', ''), 'network.domain', 'required key "domain" is missing', 'Add domain: to network.')
    onlyProblem(edit('cluster: xcluster\n', ''), 'cluster', 'required key "cluster" is missing')
    onlyProblem(edit('    frontend: 10.0.0.71-10.0.0.80\n', ''), 'network.ranges.frontend', 'required key "frontend" is missing')
    const p = onlyProblem(edit('{name: s4, mac: "02:58:43:00:01:04"}', '{name: s4}'), 'nodes[3].mac', 'required key "mac" is missing', 'Add mac: to nodes[3].')
    assert.equal(p.line, lineOf(EXAMPLE, 'name: s4'), 'points at the node')
  })

  it('cluster name must be a DNS label', () => {
    onlyProblem(edit('cluster: xcluster', 'cluster: Bad_Name'), 'cluster', '"Bad_Name" is not a valid cluster name', 'Use a DNS label')
  })

  it('subnet must be a CIDR network address', () => {
    const bad = problemsOf(edit('subnet: 10.0.0.0/24', 'subnet: 10.0.0.0/33'))
    assert.equal(bad[0].path, 'network.subnet')
    assert.equal(bad[0].problem, '"10.0.0.0/33" is not an IPv4 subnet in CIDR form')
    onlyProblem(edit('subnet: 10.0.0.0/24', 'subnet: 10.0.0.7/24'), 'network.subnet', '"10.0.0.7/24" has host bits set', 'Write the network address: 10.0.0.0/24.')
  })

  it('gateway, DNS and admin VIP must be host addresses inside the subnet', () => {
    // Moving the gateway out also leaves it out of the ranges, so this is its only problem.
    onlyProblem(edit('gateway: 10.0.0.1 ', 'gateway: 10.0.1.1 '), 'network.gateway', '"10.0.1.1" is outside the subnet 10.0.0.0/24', 'Use an address from 10.0.0.1 to 10.0.0.254.')
    onlyProblem(edit('adminVip: 10.0.0.254', 'adminVip: 10.0.0.255'), 'network.adminVip', '"10.0.0.255" is the broadcast address of 10.0.0.0/24')
    onlyProblem(edit('dns: [10.0.0.1]', 'dns: [10.0.0.1, 8.8.8.8]'), 'network.dns[1]', '"8.8.8.8" is outside the subnet 10.0.0.0/24')
    onlyProblem(edit('dns: [10.0.0.1]', 'dns: []'), 'network.dns', 'must be a non-empty list of addresses')
    onlyProblem(edit('adminVip: 10.0.0.254', 'adminVip: 10.0.0.1'), 'network.adminVip', "the admin VIP 10.0.0.1 is the gateway's address")
    onlyProblem(edit('adminVip: 10.0.0.254', 'adminVip: 10.0.0.300'), 'network.adminVip', '"10.0.0.300" is not an IPv4 address')
  })

  it('domain must be a DNS name', () => {
    onlyProblem(edit('domain: xcluster.lan', 'domain: x_cluster..lan'), 'network.domain', '"x_cluster..lan" is not a valid domain name')
  })

  it('ranges: well formed, ordered, inside the subnet', () => {
    onlyProblem(edit('core: 10.0.0.2-10.0.0.10', 'core: 10.0.0.2..10.0.0.10'), 'network.ranges.core', '"10.0.0.2..10.0.0.10" is not a range of addresses', 'Write it as FIRST-LAST')
    onlyProblem(
      edit('core: 10.0.0.2-10.0.0.10', 'core: 10.0.0.10-10.0.0.2'),
      'network.ranges.core',
      'the core range "10.0.0.10-10.0.0.2" starts after it ends',
      'Write the lower address first: 10.0.0.2-10.0.0.10.',
    )
    const out = onlyProblem(
      edit('storage: 10.0.0.11-10.0.0.30', 'storage: 10.0.1.11-10.0.1.30'),
      'network.ranges.storage',
      'the storage range 10.0.1.11-10.0.1.30 is outside the subnet 10.0.0.0/24',
      'Keep it within 10.0.0.1-10.0.0.254.',
    )
    assert.equal(out.line, lineOf(EXAMPLE, 'storage: 10.0.0.11'))
    assert.equal(out.col, 14)
    onlyProblem(edit('discovery: 10.0.0.200-10.0.0.250', 'discovery: 10.0.0.200-10.0.0.255'), 'network.ranges.discovery', "includes the subnet's network or broadcast address")
  })

  it('ranges must not overlap', () => {
    onlyProblem(
      edit('storage: 10.0.0.11-10.0.0.30', 'storage: 10.0.0.9-10.0.0.30'),
      'network.ranges.storage',
      'the storage range 10.0.0.9-10.0.0.30 overlaps the core range 10.0.0.2-10.0.0.10',
      'Ranges must not share addresses',
    )
  })

  it('ranges must not contain the gateway or the admin VIP', () => {
    onlyProblem(
      edit('core: 10.0.0.2-10.0.0.10', 'core: 10.0.0.1-10.0.0.10'),
      'network.ranges.core',
      'the core range 10.0.0.1-10.0.0.10 contains the gateway 10.0.0.1',
      'Shrink the range so it leaves out 10.0.0.1.',
    )
    onlyProblem(edit('discovery: 10.0.0.200-10.0.0.250', 'discovery: 10.0.0.200-10.0.0.254'), 'network.ranges.discovery', 'contains the admin VIP 10.0.0.254')
  })

  it('node names: DNS labels, unique', () => {
    onlyProblem(edit('name: c1,', 'name: C_1, type: compute,'), 'nodes[4].name', '"C_1" is not a valid node name', 'Use a DNS label')
    const dup = onlyProblem(edit('name: c1,', 'name: s2,'), 'nodes[4].name', 'duplicate node name "s2" (first used at nodes[1].name, line', 'Give every node a unique name.')
    assert.ok(dup.problem.includes(`line ${lineOf(EXAMPLE, 'name: s2')}`))
  })

  it('MACs: valid, unicast, non-zero, unique after normalisation', () => {
    onlyProblem(edit('"02:58:43:00:01:04"', '"02:58:43:00:01"'), 'nodes[3].mac', '"02:58:43:00:01" is not a MAC address', 'six hex pairs')
    onlyProblem(edit('"02:58:43:00:01:04"', '"01:00:5e:00:00:01"'), 'nodes[3].mac', '"01:00:5e:00:00:01" is a multicast MAC', 'unicast, non-zero')
    onlyProblem(edit('"02:58:43:00:01:04"', '"00:00:00:00:00:00"'), 'nodes[3].mac', 'is the all-zero MAC')
    onlyProblem(edit('"02:58:43:00:02:01"', '"02-58-43-00-01-01"'), 'nodes[4].mac', 'duplicate MAC 02:58:43:00:01:01 (already used at nodes[0].mac', 'copy-paste')
    onlyProblem(edit('mac: "02:58:43:00:01:04"', 'mac: 12'), 'nodes[3].mac', 'MAC must be a non-empty string, but is 12')
  })

  it('fixed IPs: inside the subnet, unique, not reserved, not in discovery', () => {
    const addIp = (ip: string) => edit('{name: s4, mac: "02:58:43:00:01:04"}', `{name: s4, mac: "02:58:43:00:01:04", ip: ${ip}}`)
    onlyProblem(addIp('10.0.1.5'), 'nodes[3].ip', '"10.0.1.5" is outside the subnet 10.0.0.0/24')
    onlyProblem(addIp('10.0.0.0'), 'nodes[3].ip', '"10.0.0.0" is the network address of 10.0.0.0/24')
    onlyProblem(addIp('10.0.0.1'), 'nodes[3].ip', "10.0.0.1 is the gateway's address")
    onlyProblem(addIp('10.0.0.254'), 'nodes[3].ip', "10.0.0.254 is the admin VIP's address")
    onlyProblem(addIp('10.0.0.210'), 'nodes[3].ip', '10.0.0.210 is inside the discovery range 10.0.0.200-10.0.0.250', 'outside the discovery range')
    onlyProblem(addIp('10.0.0.3'), 'nodes[3].ip', 'duplicate IP 10.0.0.3 (already used at nodes[1].ip', 'leave ip: out to use DHCP')
  })

  it('types: explicit ones must exist, names without a rule need one', () => {
    onlyProblem(
      edit('{name: c1, mac: "02:58:43:00:02:01"}', '{name: c1, mac: "02:58:43:00:02:01", type: gpu}'),
      'nodes[4].type',
      '"gpu" is not a node type',
      'Use one of: core, storage, compute, frontend.',
    )
    onlyProblem(edit('name: c1,', 'name: x1,'), 'nodes[4].name', 'cannot tell the type of node "x1" from its name', 's1..s3 are core, s4 and up are storage, c* is compute, f* is frontend')
  })

  it('core count must be 3 or 5, naming the core nodes', () => {
    const two = onlyProblem(
      edit('  - {name: s3, mac: "02:58:43:00:01:03", ip: 10.0.0.4}\n', ''),
      'nodes',
      "there are 2 core nodes (s1, s2), but etcd's quorum needs 3 or 5",
      'Declare 3 or 5 core nodes',
    )
    assert.equal(two.line, lineOf(EXAMPLE, '  - {name: s1'))
    onlyProblem(edit('{name: s4, mac: "02:58:43:00:01:04"}', '{name: s4, mac: "02:58:43:00:01:04", type: core}'), 'nodes', 'there are 4 core nodes (s1, s2, s3, s4)')
  })

  it('reports every problem at once', () => {
    let text = edit('"02:58:43:00:01:04"', '"zz"')
    text = edit('storage: 10.0.0.11-10.0.0.30', 'storage: 10.0.0.9-10.0.0.30', text)
    text = edit('  user: root', '  user: root\n  port: 22', text)
    const paths = problemsOf(text).map((p) => p.path)
    assert.deepEqual(paths, ['network.ranges.storage', 'ssh.port', 'nodes[3].mac'])
  })

  it('throws SPEC_INVALID (exit 2) with FILE:LINE:COL lines and the problems in details', () => {
    const text = edit('"02:58:43:00:01:04"', '"zz"')
    const err = (() => {
      try {
        parseSpec(text, FILE)
      } catch (e) {
        return e as XclusterError
      }
      assert.fail('parseSpec accepted a bad spec')
    })()
    assert.equal(err.code, 'SPEC_INVALID')
    assert.equal(err.exit, 2)
    const line = lineOf(text, '"zz"')
    const col = text.split('\n')[line - 1].indexOf('"zz"') + 1
    assert.ok(err.message.includes(`${FILE}:${line}:${col}: nodes[3].mac: "zz" is not a MAC address.`), err.message)
    assert.match(err.suggestion ?? '', /xcluster config validate -f spec\.yaml/)
    assert.equal((err.details as {problems: SpecProblem[]}).problems.length, 1)
  })

  it('loadSpecFile: an unreadable file is a usage error', () => {
    assert.throws(
      () => loadSpecFile('/nonexistent/xcluster.yaml'),
      (e: XclusterError) => e.code === 'SPEC_FILE_UNREADABLE' && e.exit === 2,
    )
  })

  it('validateSpec works on plain data without positions', () => {
    const result = validateSpec({cluster: 'x'}, {file: 'data'})
    assert.equal(result.ok, false)
    assert.deepEqual(
      result.problems.map((p) => [p.path, p.line, p.problem]),
      [
        ['network', null, 'required key "network" is missing'],
        ['ssh', null, 'required key "ssh" is missing'],
        ['nodes', null, 'required key "nodes" is missing'],
      ],
    )
  })
})

describe("packages: mirrors, the nodes' proxy and the cache's upstream", () => {
  const withPackages = (body: string) => `${EXAMPLE}packages:\n${body}`

  it("defaults: Debian's mirrors through the admin host's cache, no upstream", () => {
    const spec = parseSpec(EXAMPLE, FILE)
    assert.equal(spec.packages, undefined, 'nothing is stored that the file did not say')
    assert.deepEqual(packageSettings(spec), {
      mirrors: ['http://deb.debian.org/debian', 'http://deb.debian.org/debian-security'],
      nodeProxy: 'http://10.0.0.1:3128',
      adminCache: true,
    })
  })

  it('normalises URLs and keeps what the file says', () => {
    const spec = parseSpec(
      withPackages('  mirrors: [HTTP://Deb.Debian.ORG:80/debian/, "https://mirror.example.com:8443/debian"]\n  proxy: http://10.0.0.1:3128/\n  upstream: http://proxy.example.com:3129\n'),
      FILE,
    )
    assert.deepEqual(spec.packages, {
      mirrors: ['http://deb.debian.org/debian', 'https://mirror.example.com:8443/debian'],
      proxy: 'http://10.0.0.1:3128',
      upstream: 'http://proxy.example.com:3129',
    })
    assert.deepEqual(packageSettings(spec), {
      mirrors: ['http://deb.debian.org/debian', 'https://mirror.example.com:8443/debian'],
      nodeProxy: 'http://10.0.0.1:3128',
      adminCache: true,
      upstream: 'http://proxy.example.com:3129',
    })
  })

  it('proxy: none means direct access; another proxy inside the subnet is not the admin cache', () => {
    assert.deepEqual(packageSettings(parseSpec(withPackages('  proxy: none\n'), FILE)), {mirrors: ['http://deb.debian.org/debian', 'http://deb.debian.org/debian-security'], adminCache: false})
    const other = packageSettings(parseSpec(withPackages('  proxy: http://10.0.0.90:8000\n'), FILE))
    assert.equal(other.nodeProxy, 'http://10.0.0.90:8000')
    assert.equal(other.adminCache, false)
  })

  it('mirrors: a non-empty list of http(s) URLs without credentials or queries, each once', () => {
    onlyProblem(withPackages('  mirrors: []\n'), 'packages.mirrors', 'must be a non-empty list of mirror URLs', 'mirrors: [http://deb.debian.org/debian')
    onlyProblem(withPackages('  mirrors: [deb.debian.org/debian]\n'), 'packages.mirrors[0]', '"deb.debian.org/debian" is not a URL', 'http:// or https:// URL')
    onlyProblem(withPackages('  mirrors: ["ftp://ftp.debian.org/debian"]\n'), 'packages.mirrors[0]', '"ftp://ftp.debian.org/debian" is not an http:// or https:// URL')
    onlyProblem(withPackages('  mirrors: ["http://user:secret@deb.debian.org/debian"]\n'), 'packages.mirrors[0]', 'carries credentials', 'Remove user:password@')
    onlyProblem(withPackages('  mirrors: ["http://deb.debian.org/debian?x=1"]\n'), 'packages.mirrors[0]', 'has more than a scheme, a host, an optional port and a path')
    const dup = onlyProblem(
      withPackages('  mirrors: [http://deb.debian.org/debian, "http://deb.debian.org/debian/"]\n'),
      'packages.mirrors[1]',
      'duplicate mirror http://deb.debian.org/debian (first listed at packages.mirrors[0], line',
    )
    assert.equal(dup.fix, 'List every mirror once.')
  })

  it('proxy: an http:// URL on the cluster network, the admin cache on its own port, or none', () => {
    const text = withPackages('  proxy: 10.0.0.1:3128\n')
    const p = onlyProblem(text, 'packages.proxy', '"10.0.0.1:3128" is not a URL', 'e.g. http://10.0.0.1:3128, or none.')
    assert.equal(p.line, lineOf(text, '  proxy: 10.0.0.1:3128'))
    onlyProblem(withPackages('  proxy: https://10.0.0.90:3128\n'), 'packages.proxy', 'is not an http:// URL')
    onlyProblem(withPackages('  proxy: http://10.0.0.90:3128/squid\n'), 'packages.proxy', 'has more than a scheme, a host and an optional port')
    onlyProblem(
      withPackages('  proxy: http://192.168.1.5:3128\n'),
      'packages.proxy',
      'the proxy http://192.168.1.5:3128 is outside the subnet 10.0.0.0/24: the nodes reach their proxy on the cluster network',
      'a proxy inside 10.0.0.0/24, or none',
    )
    onlyProblem(withPackages('  proxy: http://10.0.0.255:3128\n'), 'packages.proxy', 'is the broadcast address of 10.0.0.0/24')
    onlyProblem(withPackages('  proxy: http://10.0.0.1:8080\n'), 'packages.proxy', "the admin host's package cache listens on port 3128, not 8080", 'Write proxy: http://10.0.0.1:3128')
    onlyProblem(withPackages('  proxy: ""\n'), 'packages.proxy', 'proxy must be a non-empty string')
  })

  it('upstream: an http:// host and port, only for the admin cache, never the cache itself', () => {
    onlyProblem(withPackages('  upstream: proxy.example.com:3128\n'), 'packages.upstream', 'is not an http:// URL')
    onlyProblem(
      withPackages('  proxy: none\n  upstream: http://10.0.0.1:3129\n'),
      'packages.upstream',
      "the upstream proxy is used only by the admin host's cache, but the nodes use no proxy",
      'Remove upstream:, or remove proxy:',
    )
    onlyProblem(withPackages('  proxy: http://10.0.0.90:8000\n  upstream: http://10.0.0.1:3129\n'), 'packages.upstream', 'but the nodes use http://10.0.0.90:8000')
    onlyProblem(withPackages('  upstream: http://10.0.0.1:3128\n'), 'packages.upstream', "the upstream proxy http://10.0.0.1:3128 is the admin host's cache itself")
  })

  it('unknown keys and a section that is not a mapping', () => {
    onlyProblem(withPackages('  mirror: http://deb.debian.org/debian\n'), 'packages.mirror', 'unknown key "mirror"', 'Allowed keys here: mirrors, proxy, upstream.')
    onlyProblem(`${EXAMPLE}packages: [http://deb.debian.org/debian]\n`, 'packages', 'must be a mapping of mirrors, proxy, upstream, but is a list')
  })

  it('survives config show: specToYaml writes pxe and packages back, and they parse to the same spec', () => {
    const spec = parseSpec(
      withPackages('  mirrors: [http://deb.debian.org/debian]\n  upstream: http://10.0.0.1:3129\n').replace('# services:', 'pxe: {biosBootFile: undionly.kpxe}\n# services:'),
      FILE,
    )
    assert.deepEqual(parseSpec(specToYaml(spec), 'shown.yaml'), spec)
  })
})

describe('autoProvision', () => {
  it('is off unless the spec says true, survives config show, and refuses anything but true or false', () => {
    assert.equal(parseSpec(EXAMPLE, FILE).autoProvision, undefined)
    const on = parseSpec(`${EXAMPLE}autoProvision: true\n`, FILE)
    assert.equal(on.autoProvision, true)
    assert.deepEqual(parseSpec(specToYaml(on), 'shown.yaml'), on)
    assert.equal(parseSpec(`${EXAMPLE}autoProvision: false\n`, FILE).autoProvision, undefined)
    onlyProblem(`${EXAMPLE}autoProvision: yes please\n`, 'autoProvision', '"yes please" is not true or false', 'autoProvision: true')
  })
})
