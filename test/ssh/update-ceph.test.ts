/**
 * The rolling update's Ceph check against a real Ceph cluster (mon, mgr, memstore OSDs on
 * loopback) asked over a real sshd, as `xcluster update` asks it on a storage node: with data
 * that lives only on the batch's OSDs, Ceph's `ok-to-stop` refuses the batch and the check says
 * so in Ceph's words; with a second replica elsewhere it lets one storage node go and still
 * refuses the batch that holds every replica; a storage node with no OSD is skipped.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {HostPool} from '../../src/lib/ssh/index.js'
import {cephCheck} from '../../src/lib/update/checks.js'
import {startCeph, type TestCeph} from '../helpers/ceph.js'
import {startSshd, type TestSshd} from '../helpers/sshd.js'

const storage = (name: string): NodeRecord => ({name, type: 'storage', mac: '02:58:43:00:01:04', state: 'ready', createdAt: '', updatedAt: ''})

describe("update's Ceph check: Ceph's own ok-to-stop against real OSDs, over SSH", () => {
  let ceph: TestCeph
  let sshd: TestSshd
  const pool = new HostPool()
  const sshOf = (node: string) => pool.get({name: node, address: '127.0.0.1', port: sshd.port, user: 'root', privateKeyPath: sshd.clientKeyPath, hostKey: {pinned: [sshd.hostFingerprint]}})

  /**
   * Until every PG of the pool is active+clean on `size` OSDs, as the OSDs report it: the
   * summary in `pg stat` still shows the old clean state for a moment after a size change.
   */
  async function untilClean(size: number): Promise<void> {
    for (const deadline = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 250))) {
      const {pg_stats: pgs} = ceph.cephJson<{pg_stats: {pgid: string; state: string; acting: number[]}[]}>(['pg', 'ls-by-pool', 'data'])
      if (pgs.length > 0 && pgs.every((pg) => pg.state === 'active+clean' && pg.acting.length === size)) return
      if (Date.now() > deadline) throw new Error(`PGs not clean on ${size} OSDs: ${JSON.stringify(pgs.map((pg) => [pg.pgid, pg.state, pg.acting]))}`)
    }
  }

  before(async () => {
    // s4 holds osd.0, s5 holds osd.1 and osd.2; placement is per OSD (the recipe's one host).
    ceph = await startCeph({osdHosts: ['s4', 's5', 's5']})
    ceph.ceph(['osd', 'pool', 'create', 'data', '16', '16'])
    const blob = join(ceph.dir, 'blob')
    writeFileSync(blob, Buffer.alloc(16 * 1024, 7))
    for (let i = 0; i < 20; i++) execFileSync('rados', ['-c', ceph.conf, '-p', 'data', 'put', `obj-${i}`, blob])
    await untilClean(1)
    sshd = await startSshd({setEnv: {CEPH_CONF: ceph.conf}})
  })

  after(async () => {
    await pool.closeAll()
    await sshd?.stop()
    await ceph?.stop()
  })

  it('one replica (size 1): the OSDs of s4 hold the only copy of some data, so Ceph refuses and the check says why', async () => {
    const check = await cephCheck([storage('s4')], sshOf, 'ceph')
    assert.equal(check.status, 'refused', JSON.stringify(check))
    assert.match(check.observed, /^ceph osd ok-to-stop 0: .*(unsafe to stop|would become offline|inactive)/)
    assert.match(check.fix ?? '', /--serial 1/)
  })

  it('two replicas (size 2, min_size 1): s4 alone may stop; s4 and s5 together hold every replica and may not', async () => {
    ceph.ceph(['osd', 'pool', 'set', 'data', 'size', '2'])
    ceph.ceph(['osd', 'pool', 'set', 'data', 'min_size', '1'])
    await untilClean(2)
    const one = await cephCheck([storage('s4')], sshOf, 'ceph')
    assert.equal(one.status, 'ok', JSON.stringify(one))
    assert.match(one.observed, /^ceph osd ok-to-stop 0: /)
    const both = await cephCheck([storage('s4'), storage('s5')], sshOf, 'ceph')
    assert.equal(both.status, 'refused', JSON.stringify(both))
    assert.match(both.observed, /^ceph osd ok-to-stop 0 1 2: /)
  })

  it('a storage node without an OSD in the CRUSH map is skipped, not refused', async () => {
    const check = await cephCheck([storage('s6')], sshOf, 'ceph')
    assert.deepEqual(check, {check: 'ceph', status: 'skipped', observed: 'no Ceph OSD on s6'})
  })

  it("the spec's backend is the Ceph asked: a node with Debian's Ceph and no MicroCeph has no MicroCeph OSD", async () => {
    const check = await cephCheck([storage('s4')], sshOf, 'microceph')
    assert.deepEqual(check, {check: 'ceph', status: 'skipped', observed: 'no Ceph OSD on s4'})
  })
})
