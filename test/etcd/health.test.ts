/**
 * `xcluster health` and `xcluster status` against real etcd: the built CLI on one member, a
 * three-member cluster with one member killed, and the SSH checks in-process against a real sshd.
 */
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {Lease} from '../../src/lib/dhcp/lease.js'
import type {LeaderRecord, ViewRecord} from '../../src/lib/election/records.js'
import type {CheckResult} from '../../src/lib/election/split-brain.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {collectStatus, runHealthChecks, type ClusterStatus, type HealthCheck, type HealthReport} from '../../src/lib/health/index.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import type {HostKeyRecord} from '../../src/lib/ssh/index.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {startEtcdCluster, startEtcdRetrying, type EtcdCluster} from '../helpers/etcd-cluster.js'
import type {TestEtcd} from '../helpers/etcd.js'
import {specBase, writeSpec} from '../helpers/election-harness.js'
import {startSshd, type TestSshd} from '../helpers/sshd.js'
import {FAILED_RUN} from '../helpers/runs.js'

const NODES = ['s1', 's2', 's3', 's4', 'c1', 'f1']
const SERVICES = "  - {name: web, ttl: 3, start: 'true', stop: 'true', nodes: [s1, s2, s3], vip: 10.0.0.253}\n"

let dir: string
let store: EtcdStore

const check = (r: HealthReport, name: string): HealthCheck => {
  const found = r.checks.find((c) => c.name === name)
  assert.ok(found, `no check ${name} in ${r.checks.map((c) => c.name).join(', ')}`)
  return found
}

async function patchNode(name: string, patch: Partial<NodeRecord>): Promise<void> {
  const n = await store.getJson<NodeRecord>(store.keys.node(name))
  const next: NodeRecord = {...n!.value, ...patch}
  if (patch.reason === undefined) delete next.reason
  await store.put(store.keys.node(name), next)
}

/** A leader for `web` on s1 and the views of s1 (leading) and s2 (following) agreeing with it. */
async function electWeb(): Promise<string> {
  const leader: LeaderRecord = {node: 's1', since: '2026-01-01T00:00:00.000Z', ttl: 3}
  await store.put(store.keys.electionLeader('web'), leader)
  const token = (await store.getJson(store.keys.electionLeader('web')))!.createRevision
  const view = (node: string, believesLeader: boolean): ViewRecord => ({node, believesLeader, active: believesLeader, leader: 's1', token, since: leader.since, updatedAt: new Date().toISOString()})
  await store.put(store.keys.electionView('web', 's1'), view('s1', true))
  await store.put(store.keys.electionView('web', 's2'), view('s2', false))
  return token
}

async function applySpec(etcdFlag: string): Promise<void> {
  const file = join(dir, 'spec.yaml')
  writeSpec(file, specBase(ROOT), SERVICES)
  const applied = await xcluster(['config', 'apply', '-f', file, '--yes', '--etcd', etcdFlag])
  assert.equal(applied.code, 0, applied.stderr)
}

const lease = (ip: string, i: number, expiresAt: string): Lease => ({
  ip,
  mac: `02:58:43:00:09:${i.toString(16).padStart(2, '0')}`,
  type: 'compute',
  state: 'bound',
  expiresAt,
  grantedBy: '10.0.0.2',
})

/** Ranges etcd has served so far (its own counter: transactions' reads included). */
async function rangesServed(endpoint: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/metrics`)).text()
  return Number(/^etcd_mvcc_range_total (\d+)/m.exec(text)?.[1])
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'xct-health-'))
})
after(() => rmSync(dir, {recursive: true, force: true}))

describe('health and status on one etcd', {concurrency: false}, () => {
  let etcd: TestEtcd
  let token: string
  const cli = (...args: string[]) => xcluster([...args, '--etcd', etcd.endpoint])

  before(async () => {
    etcd = await startEtcdRetrying()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await applySpec(etcd.endpoint)
    for (const n of NODES) await patchNode(n, {state: 'ready'})
    token = await electWeb()
  })
  after(async () => {
    await store?.close()
    await etcd?.stop()
  })

  it('a healthy cluster: exit 0, every check ok, and the JSON shape', async () => {
    const r = await cli('health', '--json')
    assert.equal(r.code, 0, r.stdout + r.stderr)
    const report = r.json<HealthReport>()
    assert.equal(report.status, 'ok', JSON.stringify(report.checks.filter((c) => c.status !== 'ok')))
    assert.deepEqual(report.counts, {fail: 0, warn: 0, ok: report.checks.length})
    for (const c of report.checks) {
      assert.deepEqual(Object.keys(c).sort(), ['name', 'observed', 'status'], `an ok check has no next step: ${JSON.stringify(c)}`)
    }
    const names = report.checks.map((c) => c.name)
    for (const n of NODES) assert.ok(names.includes(`node:${n}`))
    for (const range of ['core', 'storage', 'compute', 'frontend', 'discovery']) assert.ok(names.includes(`dhcp:${range}`))
    assert.ok(names.includes('etcd:quorum') && names.includes('etcd:member:test'))
    assert.match(check(report, 'election:web').observed, new RegExp(`leader s1 \\(token ${token}\\)`))
    const human = await cli('health')
    assert.equal(human.code, 0)
    assert.match(human.stdout, /^STATUS\s+CHECK\s+OBSERVED\s+NEXT/m)
    assert.match(human.stdout, /HEALTH_OK: 0 fail, 0 warn, \d+ ok/)
  })

  it('a node that is not ready: fail (or warn) with the command that is the next step, exit 3', async () => {
    await patchNode('c1', {state: 'failed', reason: 'disk gone'})
    await patchNode('s4', {state: 'drained', reason: 'maintenance'})
    try {
      const r = await cli('health', '--json')
      assert.equal(r.code, 3, r.stderr)
      const report = r.json<HealthReport>()
      assert.equal(report.status, 'fail')
      assert.deepEqual(check(report, 'node:c1'), {
        name: 'node:c1',
        status: 'fail',
        observed: 'compute node failed (disk gone)',
        next: 'See why (xcluster node show c1), then provision it again: xcluster node add c1',
      })
      assert.equal(check(report, 'node:s4').status, 'warn')
      assert.match(check(report, 'node:s4').next ?? '', /xcluster node undrain s4$/)
      // Worst first: the failure leads, then the warning, then every ok.
      assert.deepEqual(
        report.checks.slice(0, 2).map((c) => c.name),
        ['node:c1', 'node:s4'],
      )
      assert.ok(report.checks.slice(2).every((c) => c.status === 'ok'))
      const human = await cli('health')
      assert.equal(human.code, 3)
      assert.match(human.stdout, /^fail\s+node:c1\s+compute node failed \(disk gone\)\s+See why/m)
      assert.match(human.stdout, /HEALTH_FAIL: 1 fail, 1 warn/)
    } finally {
      await patchNode('c1', {state: 'ready'})
      await patchNode('s4', {state: 'ready'})
    }
  })

  it('two daemons that each believe they lead: the split-brain check fails, as election check does, exit 3', async () => {
    const rogue: ViewRecord = {node: 's2', believesLeader: true, active: true, leader: 's2', token: '1', since: null, updatedAt: new Date().toISOString()}
    await store.put(store.keys.electionView('web', 's2'), rogue)
    try {
      const r = await cli('health', '--json')
      assert.equal(r.code, 3, r.stderr)
      const web = check(r.json<HealthReport>(), 'election:web')
      assert.equal(web.status, 'fail')
      assert.match(web.observed, /^split brain: /)
      // The same disagreements election check reports: one detector, two views of it.
      const election = await cli('election', 'check', '--json', '--no-vips', '--no-rbd')
      assert.equal(election.code, 3)
      const kinds = election.json<CheckResult>().disagreements.map((d) => d.kind)
      assert.deepEqual([...kinds].sort(), ['leader-mismatch', 'multiple-leaders'])
      for (const kind of kinds) assert.ok(web.observed.includes(`[${kind}]`), `${kind} in ${web.observed}`)
      assert.match(web.next ?? '', /xcluster election check/)
      // status names it apart from the problems, for a dashboard's banner and an operator's eye.
      const status = (await cli('status', '--json')).json<ClusterStatus>()
      assert.deepEqual(
        status.splitBrain.map((b) => [b.service, b.observed.map((o) => o.slice(1, o.indexOf(']'))).sort()]),
        [['web', ['leader-mismatch', 'multiple-leaders']]],
      )
      assert.match((await cli('status')).stdout, /^services: +web: SPLIT BRAIN \(etcd: s1, token \d+\)$/m)
    } finally {
      await electWeb()
    }
    assert.equal((await cli('health', '--json')).code, 0, 'agrees again once the rogue view is gone')
  })

  it('a DHCP range at 80 % warns, at 95 % fails; expired leases do not count', async () => {
    // compute: 10.0.0.51-10.0.0.70, 20 addresses, none reserved (c1 has no fixed IP).
    const ips = Array.from({length: 19}, (_, i) => `10.0.0.${51 + i}`)
    const future = new Date(Date.now() + 3_600_000).toISOString()
    const past = new Date(Date.now() - 1000).toISOString()
    const poolOf = async () => check((await cli('health', '--json')).json<HealthReport>(), 'dhcp:compute')
    try {
      for (const [i, ip] of ips.slice(0, 15).entries()) await store.put(store.keys.lease(ip), lease(ip, i, future))
      assert.equal((await poolOf()).status, 'ok')
      await store.put(store.keys.lease(ips[15]!), lease(ips[15]!, 15, future))
      const warn = await poolOf()
      assert.equal(warn.status, 'warn')
      assert.match(warn.observed, /^16\/20 addresses leased \(80 %\)/)
      assert.match(warn.next ?? '', /widen network\.ranges\.compute/)
      for (const [i, ip] of ips.slice(16).entries()) await store.put(store.keys.lease(ip), lease(ip, 16 + i, future))
      const r = await cli('health', '--json')
      assert.equal(r.code, 3)
      const fail = check(r.json<HealthReport>(), 'dhcp:compute')
      assert.equal(fail.status, 'fail')
      assert.match(fail.observed, /^19\/20 addresses leased \(95 %\)/)
      for (const [i, ip] of ips.slice(0, 4).entries()) await store.put(store.keys.lease(ip), lease(ip, i, past))
      assert.equal((await poolOf()).status, 'ok', '15 of 20 leases still running')
    } finally {
      for (const ip of ips) await store.delete(store.keys.lease(ip))
    }
  })

  it('status --json: etcd, nodes by state, leaders, VIPs, pools, failed runs and problems worst first', async () => {
    const run = FAILED_RUN
    await store.put(store.keys.run(run.id), run)
    await store.put(store.keys.run('20260101-000001-abc124'), {...run, id: '20260101-000001-abc124', result: 'succeeded', failures: []})
    await patchNode('c1', {state: 'failed', reason: 'disk gone'})
    await patchNode('f1', {state: 'registered'})
    const ip = '10.0.0.60'
    await store.put(store.keys.lease(ip), lease(ip, 1, new Date(Date.now() + 60_000).toISOString()))
    try {
      const r = await cli('status', '--json')
      assert.equal(r.code, 0, 'status reports; it does not judge with its exit status')
      const s = r.json<ClusterStatus>()
      assert.equal(s.cluster, 'xcluster')
      assert.ok(Number(s.revision) > 1)
      assert.equal(s.health, 'fail')
      assert.equal(s.etcd.tls, false)
      assert.equal(s.etcd.leader, 'test')
      assert.deepEqual(s.etcd.quorum, {members: 1, healthy: 1, needed: 1, ok: true})
      assert.deepEqual(
        s.etcd.members.map((m) => [m.name, m.endpoint, m.healthy, m.isLeader]),
        [['test', etcd.endpoint, true, true]],
      )
      assert.ok((s.etcd.dbSize ?? 0) > 0)
      assert.deepEqual(s.nodes, {total: 6, byState: {ready: 4, failed: 1, registered: 1}})
      assert.deepEqual(s.services, [{service: 'web', leader: 's1', token, since: '2026-01-01T00:00:00.000Z', candidates: []}])
      assert.deepEqual(s.vips, [
        {address: '10.0.0.254', purpose: 'admin', holder: null, source: 'keepalived'},
        {address: '10.0.0.253', purpose: 'web', holder: 's1', source: 'election'},
      ])
      assert.deepEqual(
        s.dhcp.find((p) => p.range === 'compute'),
        {range: 'compute', start: '10.0.0.51', end: '10.0.0.70', capacity: 20, used: 1, percent: 5},
      )
      // core 10.0.0.2-10.0.0.10 holds the fixed IPs of s1..s3: they are not the pool's to lease.
      assert.equal(s.dhcp.find((p) => p.range === 'core')?.capacity, 6)
      assert.deepEqual(s.failedRuns, [{id: run.id, action: 'node add', result: 'failed', startedAt: run.startedAt, failures: 1, resume: 'xcluster node add c1 --resume 20260101-000000-abc123'}])
      assert.deepEqual(
        s.problems.map((p) => [p.status, p.name]),
        [
          ['fail', 'node:c1'],
          ['warn', 'node:f1'],
        ],
      )
      const human = await cli('status')
      assert.equal(human.code, 0)
      assert.match(human.stdout, /^health:\s+HEALTH_FAIL$/m)
      assert.match(human.stdout, /^etcd:\s+1 members, 1 healthy \(quorum 1\), leader test, db [\d.]+ [KM]iB, TLS no$/m)
      assert.match(human.stdout, /^nodes:\s+6 total: 1 registered, 4 ready, 1 failed$/m)
      assert.match(human.stdout, new RegExp(`^services:\\s+web: s1 \\(token ${token}, since`, 'm'))
      assert.match(human.stdout, /^runs:\s+20260101-000000-abc123 node add failed, 1 failure\(s\): xcluster node add c1 --resume 20260101-000000-abc123$/m)
    } finally {
      await store.delete(store.keys.run(run.id))
      await store.delete(store.keys.run('20260101-000001-abc124'))
      await store.delete(store.keys.lease(ip))
      await patchNode('c1', {state: 'ready'})
      await patchNode('f1', {state: 'ready'})
    }
  })

  it('status --watch cannot be combined with --json (a stream of screens is not one document)', async () => {
    const r = await cli('status', '--watch', '--json')
    assert.equal(r.code, 2)
    assert.match(r.stdout + r.stderr, /--watch/)
  })

  it('reads a few ranges whatever the number of nodes: 200 more nodes cost no more range reads', async () => {
    const base = (await store.getJson<NodeRecord>(store.keys.node('c1')))!.value
    const extra = Array.from({length: 200}, (_, i) => `c${100 + i}`)
    const ranges = async () => {
      const before = await rangesServed(etcd.endpoint)
      await collectStatus(store)
      await runHealthChecks(store)
      return (await rangesServed(etcd.endpoint)) - before
    }
    try {
      const few = await ranges()
      for (const name of extra) await store.put(store.keys.node(name), {...base, name, mac: '02:58:43:00:0a:00', state: 'ready'})
      const many = await ranges()
      console.log(`# status + health: ${few} etcd ranges with ${NODES.length} nodes, ${many} with ${NODES.length + extra.length}`)
      assert.ok(few > 0 && few < 40, `${few} ranges for ${NODES.length} nodes`)
      assert.equal(many, few, `${many} ranges for ${NODES.length + extra.length} nodes, ${few} for ${NODES.length}`)
    } finally {
      for (const name of extra) await store.delete(store.keys.node(name))
    }
  })
})

describe('health with an etcd member down', {concurrency: false}, () => {
  let cluster: EtcdCluster

  before(async () => {
    cluster = await startEtcdCluster(3)
    store = new EtcdStore({endpoints: cluster.endpoints, cluster: 'xcluster'})
    await applySpec(cluster.etcdFlag)
    for (const n of NODES) await patchNode(n, {state: 'ready'})
    await electWeb()
  })
  after(async () => {
    await store?.close()
    await cluster?.destroy()
  })

  it('all three members healthy first', async () => {
    const r = await xcluster(['health', '--json', '--etcd', cluster.etcdFlag])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    const report = r.json<HealthReport>()
    assert.match(check(report, 'etcd:quorum').observed, /^3\/3 members healthy \(quorum needs 2\), leader m\d$/)
    for (const m of ['m0', 'm1', 'm2']) assert.equal(check(report, `etcd:member:${m}`).status, 'ok')
  })

  it('a dead member fails its check while quorum holds (and the rest is still read), exit 3', async () => {
    await cluster.members[2]!.stop('SIGKILL')
    const r = await xcluster(['health', '--json', '--etcd', cluster.etcdFlag])
    assert.equal(r.code, 3, r.stderr)
    const report = r.json<HealthReport>()
    const quorum = check(report, 'etcd:quorum')
    assert.equal(quorum.status, 'ok')
    assert.match(quorum.observed, /^2\/3 members healthy \(quorum needs 2\)/)
    const dead = check(report, 'etcd:member:m2')
    assert.equal(dead.status, 'fail')
    assert.match(dead.observed, new RegExp(`^m2 at ${cluster.members[2]!.endpoint.replaceAll('.', '\\.')}: (connection refused|unreachable)`))
    assert.match(dead.next ?? '', /etcd-member\.service/)
    assert.deepEqual(
      report.checks.filter((c) => c.status !== 'ok').map((c) => c.name),
      ['etcd:member:m2'],
    )
    assert.equal(check(report, 'election:web').status, 'ok', 'elections are still read')
    const status = (await xcluster(['status', '--json', '--etcd', cluster.etcdFlag])).json<ClusterStatus>()
    assert.equal(status.etcd.quorum.ok, true)
    assert.deepEqual(status.etcd.members.map((m) => [m.name, m.healthy]).sort(), [
      ['m0', true],
      ['m1', true],
      ['m2', false],
    ])
    assert.deepEqual(
      status.problems.map((p) => p.name),
      ['etcd:member:m2'],
    )
  })
})

describe('health --ssh against a real sshd, pinned host keys only', {concurrency: false}, () => {
  let etcd: TestEtcd
  let sshd: TestSshd
  const ssh = () => ({keyPath: sshd.clientKeyPath, port: sshd.port})
  const pin = (fingerprint: string): HostKeyRecord => ({fingerprints: [fingerprint], pinnedAt: new Date().toISOString(), source: 'registration'})

  before(async () => {
    etcd = await startEtcdRetrying()
    sshd = await startSshd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await applySpec(etcd.endpoint)
    // c1 is the one provisioned node (the others are only registered: not reached over SSH).
    await patchNode('c1', {state: 'ready', ip: '127.0.0.1'})
  })
  after(async () => {
    await store?.close()
    await sshd?.stop()
    await etcd?.stop()
  })

  it('a node with its pinned key: reachable, and its clock compared with this host', async () => {
    await store.put(store.keys.hostKey('c1'), pin(sshd.hostFingerprint))
    const report = await runHealthChecks(store, {ssh: ssh()})
    assert.deepEqual(
      report.checks
        .filter((c) => /^(ssh|time):/.test(c.name))
        .map((c) => c.name)
        .sort(),
      ['ssh:c1', 'time:c1'],
      'only the provisioned node is reached',
    )
    assert.equal(check(report, 'ssh:c1').status, 'ok')
    assert.match(check(report, 'ssh:c1').observed, /host key matches its pin/)
    const time = check(report, 'time:c1')
    // The same machine's clock: no skew beyond the round trip.
    const [, skew, error] = /^clock ([+-][\d.]+) ms vs this host \(±([\d.]+) ms\)/.exec(time.observed) ?? []
    assert.ok(skew !== undefined, time.observed)
    assert.ok(Math.abs(Number(skew)) <= Number(error) + 5, time.observed)
    // No chronyd runs here: that is worth a warning on a real node.
    assert.equal(time.status, 'warn')
    assert.match(time.observed, /chrony not answering/)
    assert.match(time.next ?? '', /^On c1: chronyc sources/)
  })

  it('a changed host key fails with the repin step, and no key is accepted for an unpinned node', async () => {
    await store.put(store.keys.hostKey('c1'), pin('SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'))
    const changed = check(await runHealthChecks(store, {ssh: ssh()}), 'ssh:c1')
    assert.equal(changed.status, 'fail')
    assert.match(changed.next ?? '', /xcluster node repin c1/)
    await store.delete(store.keys.hostKey('c1'))
    const unpinned = await runHealthChecks(store, {ssh: ssh()})
    assert.equal(check(unpinned, 'ssh:c1').status, 'fail')
    assert.equal(
      unpinned.checks.find((c) => c.name === 'time:c1'),
      undefined,
      'nothing is run on a host whose key is not pinned',
    )
    assert.equal(await store.getJson(store.keys.hostKey('c1')), undefined, 'health pinned nothing')
  })

  it('a node whose sshd does not answer fails', async () => {
    await store.put(store.keys.hostKey('c1'), pin(sshd.hostFingerprint))
    const report = await runHealthChecks(store, {ssh: {keyPath: sshd.clientKeyPath, port: 1}})
    const down = check(report, 'ssh:c1')
    assert.equal(down.status, 'fail')
    assert.match(down.observed, /^127\.0\.0\.1:1: /)
    assert.equal(report.status, 'fail')
  })

  it('without --ssh no node is contacted', async () => {
    const report = await runHealthChecks(store)
    assert.equal(
      report.checks.some((c) => /^(ssh|time):/.test(c.name)),
      false,
    )
  })
})
