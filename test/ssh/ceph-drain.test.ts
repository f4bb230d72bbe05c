/**
 * Drain's Ceph steps against a real Ceph cluster (mon, mgr, memstore OSDs on loopback) reached
 * over a real sshd: the preflight finds the node's OSDs from the CRUSH map, the dry run only plans
 * marking them out, and the real run marks them out and waits until every placement group is
 * active+clean again with no data left on them.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {cephOutPhase, cephPreflightPhase} from '../../src/lib/phases/ceph-out.js'
import {NodeRunContext, type NodeHost} from '../../src/lib/phases/context.js'
import {inspectHoldingsPhase} from '../../src/lib/phases/holdings.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {HostKeyStore, HostPool} from '../../src/lib/ssh/index.js'
import {runPhases} from '../../src/lib/tasks/runner.js'
import {startCeph, type TestCeph} from '../helpers/ceph.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {startSshd, type TestSshd} from '../helpers/sshd.js'

const OBJECTS = 40

describe('drain with Ceph present: OSDs out, data moved, over SSH', () => {
  let ceph: TestCeph
  let sshd: TestSshd
  let etcd: TestEtcd
  let store: EtcdStore
  const pool = new HostPool()
  let host: NodeHost

  before(async () => {
    // s4 holds osd.0; osd.1 and osd.2 sit on another host, where its data can go.
    ceph = await startCeph({osdHosts: ['s4', 's5', 's5']})
    ceph.ceph(['osd', 'pool', 'create', 'data', '16', '16'])
    const blob = join(ceph.dir, 'blob')
    writeFileSync(blob, Buffer.alloc(64 * 1024, 7))
    for (let i = 0; i < OBJECTS; i++) execFileSync('rados', ['-c', ceph.conf, '-p', 'data', 'put', `obj-${i}`, blob])
    await untilClean()
    assert.ok(onOsd(0) > 0, 'osd.0 holds placement groups before the drain')
    sshd = await startSshd({setEnv: {CEPH_CONF: ceph.conf}})
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    const node: NodeRecord = {name: 's4', type: 'storage', mac: '02:58:43:00:01:04', state: 'draining', createdAt: '', updatedAt: ''}
    host = {name: 's4', node, target: {name: 's4', address: '127.0.0.1', port: sshd.port, user: 'root', privateKeyPath: sshd.clientKeyPath, hostKey: {pinned: [sshd.hostFingerprint]}}}
  })

  after(async () => {
    await pool.closeAll()
    await store?.close()
    await etcd?.stop()
    await sshd?.stop()
    await ceph?.stop()
  })

  /** The spec names Debian's Ceph (the default backend, MicroCeph, is not on this machine). */
  const context = (dryRun: boolean, force = false) => {
    const ctx = new NodeRunContext([host], dryRun, store, parseSpec(`${testSpecYaml(70)}\nceph:\n  backend: ceph\n`, 'test.yaml'), [host.node], pool, new HostKeyStore(store))
    ctx.force = force
    return ctx
  }
  const drainPhases = [inspectHoldingsPhase, cephPreflightPhase, cephOutPhase]
  const osdIn = (id: number) => ceph.cephJson<{osds: {osd: number; in: number}[]}>(['osd', 'dump']).osds.find((o) => o.osd === id)?.in
  /** Placement groups mapped to the OSD (up or acting). */
  const onOsd = (id: number) => {
    // Pacific prints {"pg_ready": true, "pg_stats": [...]}, and leaves pg_stats out when none.
    const listed = ceph.cephJson<{pg_stats?: unknown[]}>(['pg', 'ls-by-osd', String(id)])
    return listed.pg_stats?.length ?? 0
  }
  /**
   * Until every PG of the pool is active+clean on `size` OSDs, as the OSDs report it (the summary
   * of `pg stat` still shows the old clean state for a moment after a change).
   */
  async function untilClean(size = 1): Promise<void> {
    for (const deadline = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 250))) {
      const {pg_stats: pgs = []} = ceph.cephJson<{pg_stats?: {pgid: string; state: string; acting: number[]}[]}>(['pg', 'ls-by-pool', 'data'])
      if (pgs.length > 0 && pgs.every((pg) => pg.state === 'active+clean' && pg.acting.length === size)) return
      if (Date.now() > deadline) throw new Error(`PGs not clean on ${size} OSDs: ${JSON.stringify(pgs.map((pg) => [pg.pgid, pg.state, pg.acting]))}`)
    }
  }

  it('the preflight reports the node\'s OSDs; a dry run plans "osd out" and changes nothing', async () => {
    const ctx = context(true)
    const summary = await runPhases(drainPhases, ctx, {action: 'node drain', args: [], progress: 'silent'})
    assert.equal(summary.result, 'planned')
    assert.deepEqual(ctx.holdings.get('s4')?.osds, [0])
    assert.deepEqual(summary.plan.s4, ['ceph osd out 0'])
    assert.equal(osdIn(0), 1, 'osd.0 is still in')
  })

  it("a pool whose replicas would not all find an OSD without s4's is refused before anything changes, saying which and what to do", async () => {
    // Three replicas over three OSDs, one per OSD (the recipe's placement): without osd.0, two.
    ceph.ceph(['osd', 'pool', 'set', 'data', 'size', '3'])
    const summary = await runPhases(drainPhases, context(false), {action: 'node drain', args: [], progress: 'silent'})
    assert.equal(summary.result, 'failed')
    const failure = summary.hosts.find((h) => h.name === 's4')?.failure
    assert.equal(failure?.phase, 'ceph-preflight', JSON.stringify(summary.hosts))
    assert.match(failure.message, /^Draining s4 would put Ceph data at risk: without its OSDs \(0\), pool data keeps 2 of 3 replicas \(2 osds with an OSD up and in would be left\)\./)
    assert.match(failure.message, /Try this: .*xcluster ceph pool set data --size 2\b.*xcluster node drain s4 --force$/)
    assert.equal(summary.changed, 0)
    assert.equal(osdIn(0), 1, 'osd.0 is still in')
  })

  it('--force drains it anyway: the OSDs go out and the drain does not wait for data that has nowhere to go', async () => {
    const started = Date.now()
    const summary = await runPhases(drainPhases, context(false, true), {action: 'node drain', args: [], progress: 'silent'})
    assert.equal(summary.result, 'succeeded', JSON.stringify(summary.hosts))
    assert.deepEqual(summary.plan.s4, ['ceph osd out 0'])
    assert.equal(osdIn(0), 0, 'osd.0 is out')
    assert.ok(Date.now() - started < 60_000, 'no wait for the data (the wait gives up after 30 minutes)')
    // Back as it was for the drain that moves data: osd.0 in, one replica, its PGs back on it.
    ceph.ceph(['osd', 'in', '0'])
    ceph.ceph(['osd', 'pool', 'set', 'data', 'size', '1', '--yes-i-really-mean-it'])
    await untilClean(1)
    for (const deadline = Date.now() + 60_000; onOsd(0) === 0; await new Promise((r) => setTimeout(r, 250))) assert.ok(Date.now() < deadline, 'PGs back on osd.0')
  })

  it('marks the OSDs out and returns only once every PG is active+clean and none is left on them', async () => {
    const summary = await runPhases(drainPhases, context(false), {action: 'node drain', args: [], progress: 'silent'})
    assert.equal(summary.result, 'succeeded', JSON.stringify(summary.hosts))
    assert.equal(osdIn(0), 0, 'osd.0 is out')
    assert.equal(osdIn(1), 1, "the other host's OSDs stay in")
    const stat = ceph.cephJson<{pg_summary: {num_pg_by_state: {name: string}[]}}>(['pg', 'stat'])
    assert.deepEqual(
      stat.pg_summary.num_pg_by_state.map((s) => s.name),
      ['active+clean'],
      'the phase returned before the data had moved',
    )
    assert.equal(onOsd(0), 0, 'no placement group is left on osd.0')
    const listed = execFileSync('rados', ['-c', ceph.conf, '-p', 'data', 'ls'], {encoding: 'utf8'}).trim().split('\n')
    assert.equal(listed.length, OBJECTS, 'every object is still there')
  })

  it('a re-run finds the OSDs already out and changes nothing', async () => {
    const summary = await runPhases(drainPhases, context(false), {action: 'node drain', args: [], progress: 'silent'})
    assert.equal(summary.result, 'succeeded')
    assert.equal(summary.changed, 0)
  })
})
