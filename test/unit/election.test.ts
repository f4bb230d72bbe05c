import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {renderKeepalivedConfig, vrrpPriority} from '../../src/lib/election/keepalived.js'
import {ipv4Addresses} from '../../src/lib/election/vip.js'
import {safetyMarginMs} from '../../src/lib/election/lease.js'
import {checkSpecText} from '../../src/lib/spec/parse.js'
import type {SpecProblem} from '../../src/lib/spec/problems.js'
import type {ClusterSpec} from '../../src/lib/spec/types.js'
import {ROOT} from '../helpers/cli.js'

const EXAMPLE = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8')
const withServices = (yaml: string): string => `${EXAMPLE}services:\n${yaml}`

function valid(text: string): ClusterSpec {
  const result = checkSpecText(text, 'spec.yaml')
  assert.equal(result.ok, true, JSON.stringify(result.problems))
  return (result as {spec: ClusterSpec}).spec
}

function oneProblem(text: string, path: string, includes: string): SpecProblem {
  const result = checkSpecText(text, 'spec.yaml')
  assert.equal(result.ok, false, 'expected the spec to be invalid')
  assert.equal(result.problems.length, 1, JSON.stringify(result.problems))
  const [p] = result.problems as [SpecProblem]
  assert.equal(p.path, path)
  assert.ok(p.problem.includes(includes), p.problem)
  assert.ok(p.fix.length > 0)
  assert.ok(p.line !== null, 'problems carry a line number')
  return p
}

describe('services: in the spec', () => {
  it('is optional, and a service gets the default TTL of 3 s', () => {
    assert.equal(valid(EXAMPLE).services, undefined)
    const spec = valid(
      withServices("  - {name: postgres, start: 'pg start', stop: 'pg stop', nodes: [s1, s2, s3], vip: 10.0.0.253, rbdImage: rbd/postgres}\n  - {name: dhcp, unit: xcluster-dhcp.service, ttl: 5}\n"),
    )
    assert.deepEqual(spec.services, [
      {name: 'postgres', ttl: 3, start: 'pg start', stop: 'pg stop', nodes: ['s1', 's2', 's3'], vip: '10.0.0.253', rbdImage: 'rbd/postgres'},
      {name: 'dhcp', ttl: 5, unit: 'xcluster-dhcp.service'},
    ])
  })

  it('the commented example in templates/xcluster.yaml is valid once uncommented', () => {
    const uncommented = EXAMPLE.replace(/^# services:\n((?:# {3}- .*\n)+)/m, (_m, items: string) => `services:\n${items.replaceAll('#   - ', '  - ')}`)
    assert.notEqual(uncommented, EXAMPLE, 'the template has a commented services example')
    assert.deepEqual(
      valid(uncommented).services?.map((s) => s.name),
      ['postgres', 'dhcp'],
    )
  })

  it('rejects each kind of bad service with the path, a reason and a fix', () => {
    oneProblem(withServices('  - {name: a, start: x, stop: y, color: red}\n'), 'services[0].color', 'unknown key')
    oneProblem(withServices('  - {name: a, unit: u, start: x, stop: y}\n'), 'services[0].unit', 'both unit')
    oneProblem(withServices('  - {name: a, start: x}\n'), 'services[0].stop', 'no stop')
    oneProblem(withServices('  - {name: a}\n'), 'services[0]', 'neither unit')
    oneProblem(withServices('  - {name: a, unit: u, ttl: 0}\n'), 'services[0].ttl', 'whole number')
    oneProblem(withServices('  - {name: a, unit: u, ttl: 1.5}\n'), 'services[0].ttl', 'whole number')
    oneProblem(withServices('  - {name: a, unit: u, nodes: [s1, s9]}\n'), 'services[0].nodes[1]', 'not a node')
    oneProblem(withServices('  - {name: a, unit: u}\n  - {name: a, unit: v}\n'), 'services[1].name', 'duplicate service')
    oneProblem(withServices('  - {name: a, unit: u, vip: 10.9.0.1}\n'), 'services[0].vip', 'outside the subnet')
  })

  it("refuses a service VIP that is a machine's own address, or one DHCP could hand out", () => {
    // A node's fixed IP (s1 is 10.0.0.2), the admin VIP, the gateway.
    oneProblem(withServices('  - {name: a, unit: u, vip: 10.0.0.2}\n'), 'services[0].vip', "node s1's IP address")
    oneProblem(withServices('  - {name: a, unit: u, vip: 10.0.0.254}\n'), 'services[0].vip', "the admin VIP's address")
    oneProblem(withServices('  - {name: a, unit: u, vip: 10.0.0.1}\n'), 'services[0].vip', "the gateway's address")
    // Inside a typed range or the discovery range.
    oneProblem(withServices('  - {name: a, unit: u, vip: 10.0.0.55}\n'), 'services[0].vip', 'inside the compute range 10.0.0.51-10.0.0.70, which DHCP hands out')
    oneProblem(withServices('  - {name: a, unit: u, vip: 10.0.0.220}\n'), 'services[0].vip', 'inside the discovery range')
    oneProblem(withServices('  - {name: a, unit: u, vip: 10.0.0.5}\n'), 'services[0].vip', 'inside the core range')
    // Two services cannot share one.
    oneProblem(withServices('  - {name: a, unit: u, vip: 10.0.0.253}\n  - {name: b, unit: v, vip: 10.0.0.253}\n'), 'services[1].vip', 'already the VIP of services[0].vip')
    // Free addresses outside every range are fine.
    assert.equal(valid(withServices('  - {name: a, unit: u, vip: 10.0.0.253}\n  - {name: b, unit: v, vip: 10.0.0.100}\n')).services?.[1]?.vip, '10.0.0.100')
    oneProblem(withServices('  - {name: A_b, unit: u}\n'), 'services[0].name', 'not a valid service name')
    oneProblem(`${EXAMPLE}services: {a: 1}\n`, 'services', 'must be a list')
    oneProblem(withServices('  - {name: a, unit: u, rbdImage: postgres}\n'), 'services[0].rbdImage', 'not an RBD image name')
    oneProblem(withServices("  - {name: a, unit: u, rbdImage: 'rbd/pg; rm -rf /'}\n"), 'services[0].rbdImage', 'not an RBD image name')
    oneProblem(withServices('  - {name: a, unit: u, rbdImage: rbd/pg, rbdMap: kernel}\n'), 'services[0].rbdMap', 'not a way to map an image')
    oneProblem(withServices('  - {name: a, unit: u, rbdMap: krbd}\n'), 'services[0].rbdMap', 'there is no rbdImage')
    assert.equal(valid(withServices('  - {name: a, unit: u, rbdImage: rbd/pg, rbdMap: nbd}\n')).services?.[0]?.rbdMap, 'nbd')
    assert.equal(valid(withServices('  - {name: a, unit: u, rbdImage: rbd/pg}\n')).services?.[0]?.rbdMap, undefined)
  })
})

describe('lease safety margin', () => {
  it('is a quarter of the TTL, within 250 ms..1 s', () => {
    assert.equal(safetyMarginMs(1), 250)
    assert.equal(safetyMarginMs(2), 500)
    assert.equal(safetyMarginMs(10), 1000)
  })
})

describe('keepalived config', () => {
  const spec = valid(EXAMPLE)

  it('gives the core nodes descending priorities', () => {
    assert.deepEqual(
      ['s1', 's2', 's3'].map((n) => vrrpPriority(spec, n)),
      [150, 140, 130],
    )
    assert.throws(() => vrrpPriority(spec, 'c1'), /not a core node/)
  })

  it('renders the admin VIP with VRRP, priority and a track script', () => {
    const text = renderKeepalivedConfig(spec, {node: 's2', trackScript: '/bin/true'})
    assert.match(text, /router_id s2/)
    assert.match(text, /state BACKUP/)
    assert.match(text, /priority 140/)
    assert.match(text, /advert_int 1/)
    assert.match(text, /10\.0\.0\.254\/24 dev eth0/)
    assert.match(text, /script "\/bin\/true"/)
    assert.match(text, /track_script \{\s+admin_health/)
    assert.doesNotMatch(text, /\{\{/)
  })
})

describe('ip -o -4 addr output', () => {
  it('yields every IPv4 address, a VIP among them, and no prefix look-alikes', () => {
    const out = [
      '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
      '2: eth0    inet 10.0.0.2/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever preferred_lft forever',
      '2: eth0    inet 10.0.0.254/32 scope global eth0\\       valid_lft forever preferred_lft forever',
    ].join('\n')
    assert.deepEqual(ipv4Addresses(out), ['127.0.0.1', '10.0.0.2', '10.0.0.254'])
    assert.equal(ipv4Addresses(out).includes('10.0.0.25'), false)
  })
})
