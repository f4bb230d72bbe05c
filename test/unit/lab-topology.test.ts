import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {extraComputeNodes, labTopology} from '../../src/lib/lab/topology.js'
import {mirrorUrls} from '../../src/lib/lab/rootfs.js'
import {loadSpecFile, parseSpec} from '../../src/lib/spec/parse.js'
import {ROOT} from '../helpers/cli.js'

const SPEC = join(ROOT, 'templates', 'xcluster.yaml')

describe('lab topology (pure logic)', () => {
  test('the default spec gives six typed nodes, three with fixed addresses', () => {
    const t = labTopology(SPEC, 0)
    assert.equal(t.cluster, 'xcluster')
    assert.equal(t.gateway, '10.0.0.1')
    assert.equal(t.prefixLength, 24)
    assert.deepEqual(
      t.nodes.map((n) => [n.name, n.type, n.ip ?? null]),
      [
        ['s1', 'core', '10.0.0.2'],
        ['s2', 'core', '10.0.0.3'],
        ['s3', 'core', '10.0.0.4'],
        ['s4', 'storage', null],
        ['c1', 'compute', null],
        ['f1', 'frontend', null],
      ],
    )
  })

  test('--nodes adds c2..c(N+1) with hex MACs and addresses from .100 up, also in the effective spec', () => {
    const t = labTopology(SPEC, 20)
    const extra = t.nodes.slice(6)
    assert.equal(extra.length, 20)
    assert.deepEqual(extra[0], {name: 'c2', mac: '02:58:43:00:02:02', ip: '10.0.0.100', type: 'compute'})
    assert.deepEqual(extra[19], {name: 'c21', mac: '02:58:43:00:02:15', ip: '10.0.0.119', type: 'compute'})
    assert.match(t.effectiveSpecYaml, /\{ name: c21, mac: 02:58:43:00:02:15, ip: 10\.0\.0\.119 \}/)
    assert.match(t.effectiveSpecYaml, /^# xcluster cluster spec/)
  })

  test("the effective spec names the lab's bridge as the admin cache's upstream, and this machine's mirrors", () => {
    const t = labTopology(SPEC, 0)
    const spec = parseSpec(t.effectiveSpecYaml, 'effective')
    assert.equal(spec.packages?.upstream, 'http://10.0.0.1:3129')
    assert.deepEqual(spec.packages?.mirrors, mirrorUrls().length > 0 ? mirrorUrls() : ['http://deb.debian.org/debian', 'http://deb.debian.org/debian-security'])
    assert.equal(t.nodeProxy, 'http://10.0.0.1:3128', "the nodes use the admin host's cache")
    assert.equal(t.upstreamProxy, 'http://10.0.0.1:3129')
    assert.match(t.effectiveSpecYaml, /^# xcluster cluster spec/, 'comments kept')

    const dir = mkdtempSync(join(tmpdir(), 'xct-topology-'))
    const own = join(dir, 'own.yaml')
    writeFileSync(own, `${readFileSync(SPEC, 'utf8')}packages:\n  upstream: http://10.0.0.1:8080\n`)
    assert.equal(parseSpec(labTopology(own, 0).effectiveSpecYaml, 'e').packages?.upstream, 'http://10.0.0.1:8080', "a spec's own upstream is kept")
    const none = join(dir, 'none.yaml')
    writeFileSync(none, `${readFileSync(SPEC, 'utf8')}packages:\n  proxy: none\n`)
    const direct = labTopology(none, 0)
    assert.equal(parseSpec(direct.effectiveSpecYaml, 'e').packages?.upstream, undefined, 'no admin cache, no upstream')
    assert.equal(direct.nodeProxy, undefined)
  })

  test('extra nodes never land in a DHCP range or on a used name', () => {
    const spec = loadSpecFile(SPEC)
    const withC2 = {...spec, nodes: [...spec.nodes, {name: 'c2', mac: '02:58:43:00:09:09', type: 'compute' as const}]}
    assert.throws(() => extraComputeNodes(1, withC2), /already has a node named c2/)
    assert.throws(() => extraComputeNodes(101, spec), /would get 10\.0\.0\.200, inside the discovery range/)
    assert.throws(() => extraComputeNodes(-1, spec), /whole number/)
  })

  test('a bad spec is rejected with SPEC_INVALID before anything is made', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xc-topo-'))
    const bad = join(dir, 'bad.yaml')
    writeFileSync(bad, 'cluster: x\nnetwork: {subnet: 10.0.0.0/24, gateway: 10.0.0.1}\nnodes:\n  - {name: s1, mac: "zz"}\n')
    assert.throws(
      () => labTopology(bad, 0),
      (e: Error & {code?: string}) => e.code === 'SPEC_INVALID' && /nodes\[0\]\.mac/.test(e.message),
    )
    const good = readFileSync(SPEC, 'utf8')
    writeFileSync(bad, good.replace('- {name: s4,', '- {name: admin, type: storage,'))
    assert.throws(() => labTopology(bad, 0), /the lab uses the host names admin and lan itself; rename node admin/)
    writeFileSync(bad, good)
    assert.throws(() => labTopology(bad, 256), /extra|fit/)
  })
})
