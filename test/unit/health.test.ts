import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {parseCephStatus} from '../../src/lib/ceph/status.js'
import type {Lease} from '../../src/lib/dhcp/lease.js'
import type {EtcdMemberState} from '../../src/lib/etcd/maintenance.js'
import {
  clockCheck,
  currentServices,
  electionChecks,
  etcdChecks,
  nodeChecks,
  parseClockOutput,
  percentOf,
  poolChecks,
  poolUsage,
  report,
  sortChecks,
  type EtcdStatus,
  type HealthCheck,
} from '../../src/lib/health/index.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {checkSpecText} from '../../src/lib/spec/parse.js'
import type {ClusterSpec} from '../../src/lib/spec/types.js'
import {cephCheck} from '../../src/lib/health/ceph.js'
import {ROOT} from '../helpers/cli.js'

const TEMPLATE = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8')

function spec(): ClusterSpec {
  const result = checkSpecText(TEMPLATE, 'spec.yaml')
  assert.equal(result.ok, true, JSON.stringify(result.problems))
  return (result as {spec: ClusterSpec}).spec
}

const NOW = Date.parse('2026-06-01T12:00:00Z')
const lease = (ip: string, expiresInMs: number, state: Lease['state'] = 'bound'): Lease => ({
  ip,
  mac: `02:00:00:00:00:${ip.split('.')[3]!.padStart(2, '0').slice(-2)}`,
  type: 'compute',
  state,
  expiresAt: new Date(NOW + expiresInMs).toISOString(),
  grantedBy: '10.0.0.2',
})

const node = (name: string, state: NodeRecord['state'], extra: Partial<NodeRecord> = {}): NodeRecord => ({
  name,
  type: 'compute',
  mac: '02:58:43:00:02:01',
  state,
  createdAt: '2026-01-01T00:00:00Z',
  updatedAt: '2026-01-01T00:00:00Z',
  ...extra,
})

describe('sorting checks', () => {
  it('worst first, then by name with numbers in order', () => {
    const checks: HealthCheck[] = [
      {name: 'node:c10', status: 'ok', observed: ''},
      {name: 'node:c2', status: 'warn', observed: ''},
      {name: 'etcd:quorum', status: 'ok', observed: ''},
      {name: 'node:c9', status: 'fail', observed: ''},
      {name: 'node:c1', status: 'warn', observed: ''},
      {name: 'node:c2', status: 'ok', observed: ''},
    ]
    assert.deepEqual(
      sortChecks(checks).map((c) => `${c.status} ${c.name}`),
      ['fail node:c9', 'warn node:c1', 'warn node:c2', 'ok etcd:quorum', 'ok node:c2', 'ok node:c10'],
    )
    const r = report(checks)
    assert.equal(r.status, 'fail')
    assert.deepEqual(r.counts, {fail: 1, warn: 2, ok: 3})
    assert.equal(report([]).status, 'ok')
    assert.equal(report(checks.filter((c) => c.status !== 'fail')).status, 'warn')
  })
})

describe('DHCP pool usage', () => {
  it('reserved addresses are not capacity; expired leases free their address; declined ones hold it', () => {
    // A service VIP inside the compute range (validation refuses one now; the allocator still
    // never leases it) and a compute node with a fixed IP in it.
    const s: ClusterSpec = {...spec(), services: [{name: 'web', ttl: 3, start: 'true', stop: 'true', vip: '10.0.0.60'}]}
    const nodes = [node('c9', 'ready', {ip: '10.0.0.61'})]
    const leases = [
      lease('10.0.0.51', 60_000),
      lease('10.0.0.52', 60_000, 'declined'),
      lease('10.0.0.53', -1),
      lease('10.0.0.61', 60_000), // the fixed IP's own lease: not the pool's
      lease('10.0.0.199', 60_000), // outside every range
    ]
    const compute = poolUsage(s, nodes, leases, NOW).find((p) => p.range === 'compute')
    assert.deepEqual(compute, {range: 'compute', start: '10.0.0.51', end: '10.0.0.70', capacity: 18, used: 2, percent: 11.1})
    // core 10.0.0.2-10.0.0.10 holds s1..s3's fixed IPs.
    assert.equal(poolUsage(s, [], [], NOW).find((p) => p.range === 'core')?.capacity, 6)
  })

  it('percent has one decimal; an empty range is 0 %', () => {
    assert.equal(percentOf(1, 3), 33.3)
    assert.equal(percentOf(2, 3), 66.7)
    assert.equal(percentOf(0, 0), 0)
    assert.equal(percentOf(19, 20), 95)
  })

  it('warns from 80 %, fails from 95 %, with a next step', () => {
    const pool = (used: number) => ({range: 'compute', start: '10.0.0.51', end: '10.0.0.70', capacity: 1000, used, percent: percentOf(used, 1000)})
    const status = (used: number) => poolChecks([pool(used)])[0]!.status
    assert.deepEqual([799, 800, 949, 950, 1000].map(status), ['ok', 'warn', 'warn', 'fail', 'fail'])
    assert.equal(poolChecks([pool(10)])[0]!.next, undefined)
    assert.match(poolChecks([pool(990)])[0]!.next ?? '', /widen network\.ranges\.compute and run xcluster config apply -f xcluster\.yaml/)
    assert.equal(poolChecks([{...pool(0), capacity: 0, percent: 0}])[0]!.status, 'ok')
  })
})

describe('node checks', () => {
  it('ready is ok, removed is not checked, every other state has a runnable next step', () => {
    const checks = nodeChecks([
      node('c1', 'ready'),
      node('c2', 'failed', {reason: 'disk'}),
      node('c3', 'registered'),
      node('c4', 'draining', {reason: 'x'}),
      node('c5', 'drained'),
      node('c6', 'removed'),
      node('c7', 'provisioning'),
    ])
    assert.deepEqual(
      checks.map((c) => [c.name, c.status, c.next ?? null]),
      [
        ['node:c1', 'ok', null],
        ['node:c2', 'fail', 'See why (xcluster node show c2), then provision it again: xcluster node add c2'],
        ['node:c3', 'warn', 'Provision it: xcluster node add c3'],
        ['node:c4', 'warn', 'Finish the drain: xcluster node drain c4 (or return it: xcluster node undrain c4)'],
        ['node:c5', 'warn', 'Return it to service when its work is done: xcluster node undrain c5'],
        ['node:c7', 'warn', 'A run is provisioning it, or one stopped midway: xcluster runs list, then resume the failed run or run xcluster node add c7'],
      ],
    )
    assert.equal(checks[1]!.observed, 'compute node failed (disk)')
  })
})

describe('etcd checks', () => {
  const member = (name: string, healthy: boolean): EtcdMemberState => ({
    id: name,
    name,
    peerUrls: [],
    clientUrls: [`http://127.0.0.1:${name.length}`],
    learner: false,
    endpoint: healthy ? `http://127.0.0.1:${name.length}` : null,
    isLeader: name === 'm0',
    raftTerm: 2,
    raftIndex: 10,
    dbSize: 20480,
    version: '3.4.23',
    healthy,
    problem: healthy ? null : 'connection refused',
    tookMs: 1,
  })
  const status = (healthy: number): EtcdStatus => ({
    endpoints: [],
    tls: false,
    members: ['m0', 'm1', 'm2'].map((n, i) => member(n, i < healthy)),
    leader: healthy >= 2 ? 'm0' : null,
    quorum: {members: 3, healthy, needed: 2, ok: healthy >= 2},
    dbSize: 20480,
  })

  it('a lost member fails alone while quorum holds; without quorum the quorum check fails too', () => {
    const two = etcdChecks(status(2))
    assert.deepEqual(
      two.map((c) => [c.name, c.status]),
      [
        ['etcd:quorum', 'ok'],
        ['etcd:member:m0', 'ok'],
        ['etcd:member:m1', 'ok'],
        ['etcd:member:m2', 'fail'],
      ],
    )
    const one = etcdChecks(status(1))
    assert.equal(one[0]!.status, 'fail')
    assert.match(one[0]!.observed, /^1\/3 members healthy \(quorum needs 2\), leader none$/)
    assert.match(one[0]!.next ?? '', /until 2 are healthy/)
    assert.equal(two[3]!.observed, 'm2 at http://127.0.0.1:2: connection refused')
  })
})

describe('clock checks', () => {
  const synced = {synchronised: true, offsetMs: 0.02, source: '10.0.0.2'}
  const sample = (skewMs: number, rttMs: number, chrony: Parameters<typeof clockCheck>[1]['chrony'] = synced) => ({sentMs: 1000, receivedMs: 1000 + rttMs, remoteMs: 1000 + rttMs / 2 + skewMs, chrony})

  it('a skew counts only beyond the round trip’s uncertainty', () => {
    assert.equal(clockCheck('c1', sample(3, 10)).status, 'ok')
    assert.equal(clockCheck('c1', sample(104, 10)).status, 'ok', '104 ms ± 5 ms may be 99 ms')
    assert.equal(clockCheck('c1', sample(106, 10)).status, 'warn')
    assert.equal(clockCheck('c1', sample(-2000, 10)).status, 'fail')
    assert.match(clockCheck('c1', sample(-2000, 10)).observed, /^clock -2000 ms vs this host \(±5 ms\)/)
  })

  it('chrony not synchronised or not answering warns', () => {
    const unsynced = clockCheck('c1', sample(0, 2, {...synced, synchronised: false}))
    assert.equal(unsynced.status, 'warn')
    assert.match(unsynced.next ?? '', /xcluster node add c1/)
    assert.equal(clockCheck('c1', sample(0, 2, {unavailable: '506 Cannot talk to daemon'})).status, 'warn')
    assert.equal(clockCheck('c1', sample(5000, 2, {unavailable: 'x'})).status, 'fail', 'the worse verdict wins')
  })

  it('parses the remote time and chronyc -c tracking', () => {
    const csv = 'A9FEA97B,169.254.169.123,4,1717243200.123456789,-0.000012345,0.000001,0.000020,-12.3,0.001,0.05,0.000300,0.000100,64.2,Normal'
    assert.deepEqual(parseClockOutput(`1717243200123456789\n${csv}\n`), {remoteMs: 1717243200123, chrony: {synchronised: true, offsetMs: -0.012345, source: '169.254.169.123'}})
    assert.deepEqual(parseClockOutput('1717243200123456789\n506 Cannot talk to daemon\n'), {remoteMs: 1717243200123, chrony: {unavailable: '506 Cannot talk to daemon'}})
    assert.equal(parseClockOutput('sh: date: not found\n'), undefined)
    const unsynced = parseClockOutput(`1717243200123456789\n${csv.replace('Normal', 'Not synchronised')}`)
    assert.equal(unsynced && 'synchronised' in unsynced.chrony && unsynced.chrony.synchronised, false)
  })
})

describe('election checks', () => {
  const service = (name: string, leader: string | null) => ({service: name, leader, token: leader ? '7' : null, believers: leader ? [leader] : [], vipHolders: null, rbdHolders: null, rbdFence: null})
  const result = {ok: true, services: [service('postgres', 's1'), service('qdrant', null), service('removed', null), service('stray', 's2')], disagreements: []}

  it('a declared service without a leader fails; one taken out of the spec, led by nobody, is history and not checked', () => {
    const current = currentServices({
      ...spec(),
      services: [
        {name: 'postgres', ttl: 3, start: 'true', stop: 'true'},
        {name: 'qdrant', ttl: 3, start: 'true', stop: 'true'},
      ],
    } as ClusterSpec)
    const checks = electionChecks(result, undefined, current)
    assert.deepEqual(
      checks.map((c) => `${c.name} ${c.status}`),
      ['election:postgres ok', 'election:qdrant fail', 'election:stray ok'],
    )
    // Without the spec nothing is known to be history: every service is checked.
    assert.equal(electionChecks(result).length, 4)
  })
})

describe('Ceph check', () => {
  const GiB = 1024 ** 3
  const status = (health: string, checks: Record<string, {severity: string; summary: {message: string}; muted?: boolean}> = {}) =>
    parseCephStatus(
      {
        fsid: 'f',
        health: {status: health, checks},
        osdmap: {num_osds: 3, num_up_osds: 2, num_in_osds: 3},
        pgmap: {
          pgs_by_state: [
            {state_name: 'active+clean', count: 12},
            {state_name: 'active+undersized', count: 4},
          ],
          num_pgs: 16,
          bytes_used: GiB,
          bytes_total: 3 * GiB,
        },
      },
      's3',
    )

  it("Ceph's own verdict: HEALTH_OK ok, HEALTH_WARN warn, HEALTH_ERR fail, each with OSDs, PGs, usage and the node asked", () => {
    const ok = cephCheck({checked: true, status: status('HEALTH_OK')})!
    assert.deepEqual(ok, {name: 'ceph', status: 'ok', observed: 'HEALTH_OK from s3: 3 OSDs, 2 up, 3 in; 16 PGs (12 active+clean, 4 active+undersized); 1 GiB used of 3 GiB'})
    const warn = cephCheck({
      checked: true,
      status: status('HEALTH_WARN', {OSD_DOWN: {severity: 'HEALTH_WARN', summary: {message: '1 osds down'}}, MUTED: {severity: 'HEALTH_WARN', summary: {message: 'hidden'}, muted: true}}),
    })!
    assert.equal(warn.status, 'warn')
    assert.match(warn.observed, /; OSD_DOWN: 1 osds down$/)
    assert.doesNotMatch(warn.observed, /hidden/, 'a muted check is not repeated')
    assert.equal(warn.next, 'xcluster ceph status --node s3')
    assert.equal(cephCheck({checked: true, status: status('HEALTH_ERR')})!.status, 'fail')
  })

  it('no node answering fails with the reasons on one line and their next step; a cluster without Ceph is not checked', () => {
    const failed = cephCheck({checked: true, problem: "No node's Ceph (ceph) answered:\n  s1: timed out\n  s2: exit 127", next: 'xcluster node list'})!
    assert.deepEqual(failed, {name: 'ceph', status: 'fail', observed: "No node's Ceph (ceph) answered: s1: timed out; s2: exit 127", next: 'xcluster node list'})
    assert.equal(cephCheck({checked: false, reason: 'the spec has no ceph section'}), undefined)
  })
})
