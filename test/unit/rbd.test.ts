import assert from 'node:assert/strict'
import {chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {cephCommandTimeoutMs, fenceRbdImage, localRbdHolders, RbdCli, rbdLockHolder, rbdLockId, type RbdLock, type RbdWatcher} from '../../src/lib/ceph/rbd.js'
import {attributeRbdHolders} from '../../src/lib/election/split-brain.js'
import {freeze, killPending} from '../helpers/freezer.js'

describe('RBD lock holders', () => {
  it('reads node and token from an xcluster lock id, and nothing from a foreign one', () => {
    const lock = {id: rbdLockId('s2', '41'), locker: 'client.4157', address: '10.0.0.3:0/1'}
    assert.deepEqual(rbdLockHolder(lock), {node: 's2', token: '41', lock})
    const foreign = {id: 'auto 1234', locker: 'client.9', address: '10.0.0.9:0/2'}
    assert.deepEqual(rbdLockHolder(foreign), {node: null, token: null, lock: foreign})
  })

  it('are "not checked" (null) on a host without the rbd CLI, but an rbd that fails is an error', async () => {
    assert.equal(await localRbdHolders(new RbdCli('/nonexistent/rbd'))('rbd/pg'), null)
    await assert.rejects(localRbdHolders(new RbdCli('/bin/false'))('rbd/pg'), /\/bin\/false lock ls rbd\/pg/)
  })

  it("names the leadership behind librbd's own lock only when the leader's fence record names that very client", () => {
    const managed = rbdLockHolder({id: 'auto 140400199210320', locker: 'client.4116', address: '127.0.0.1:0/3949584233'})
    const fence = {image: 'rbd/pg', node: 's2', token: '12', blocklisted: ['127.0.0.1:0/1'], brokenLocks: [], at: '', holder: {locker: 'client.4116', address: '127.0.0.1:0/3949584233'}}
    assert.deepEqual(
      attributeRbdHolders([managed], fence).map((h) => [h.node, h.token]),
      [['s2', '12']],
    )
    // Another client (a fenced one, or one xcluster did not start) stays unnamed: check reports it.
    assert.deepEqual(
      attributeRbdHolders([managed], {...fence, holder: {locker: 'client.9', address: '127.0.0.1:0/9'}}).map((h) => h.node),
      [null],
    )
    assert.deepEqual(
      attributeRbdHolders([managed], {...fence, holder: null}).map((h) => h.node),
      [null],
    )
    assert.deepEqual(
      attributeRbdHolders([managed], undefined).map((h) => h.node),
      [null],
    )
  })

  it('a fence asks again before each blocklist whether its token still leads, and stops there when it does not', async () => {
    const calls: string[] = []
    // A recording fake of the rbd/ceph CLIs: two foreign clients hold and watch the image.
    const rbd = {
      locks: async (): Promise<RbdLock[]> => [{id: 'auto 1', locker: 'client.1', address: '10.0.0.1:0/1'}],
      watchers: async (): Promise<RbdWatcher[]> => [{address: '10.0.0.1:0/1'}, {address: '10.0.0.2:0/2'}],
      blocklist: async (address: string) => void calls.push(`blocklist ${address}`),
      remove: async (_image: string, lock: RbdLock) => void calls.push(`break ${lock.id}`),
    } as unknown as RbdCli
    let answers = [true, false]
    await assert.rejects(
      fenceRbdImage(rbd, 'rbd/pg', 's1', '7', async () => answers.shift() ?? false),
      /token 7 no longer leads: rbd\/pg was not fenced \(10\.0\.0\.2:0\/2 left alone\)/,
    )
    assert.deepEqual(calls, ['blocklist 10.0.0.1:0/1'], 'nothing after the token stopped leading, no lock broken')
    calls.length = 0
    answers = [true, true]
    const fence = await fenceRbdImage(rbd, 'rbd/pg', 's1', '7', async () => answers.shift() ?? false)
    assert.deepEqual(calls, ['blocklist 10.0.0.1:0/1', 'blocklist 10.0.0.2:0/2', 'break auto 1'])
    assert.deepEqual(fence.blocklisted, ['10.0.0.1:0/1', '10.0.0.2:0/2'])
  })

  it('a ceph call that does not answer in time says so, and the bound is XCLUSTER_CEPH_TIMEOUT_MS when set', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xct-rbd-'))
    try {
      // A CLI that never answers, as the ceph CLI of a cluster without a monitor in reach.
      const silent = join(dir, 'ceph')
      writeFileSync(silent, '#!/bin/sh\nexec sleep 30\n')
      chmodSync(silent, 0o755)
      const started = Date.now()
      await assert.rejects(new RbdCli('rbd', 300, silent).blocklist('10.0.0.1:0/1', 60), /osd blocklist add 10\.0\.0\.1:0\/1 60: no answer within 300 ms .*XCLUSTER_CEPH_TIMEOUT_MS/)
      assert.ok(Date.now() - started < 5000, 'the call was cut at its bound')
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
    assert.equal(cephCommandTimeoutMs(undefined), 10_000)
    assert.equal(cephCommandTimeoutMs('45000'), 45_000)
    for (const bad of ['0', '-5', '1.5', 'ten'])
      assert.throws(() => cephCommandTimeoutMs(bad), /XCLUSTER_CEPH_TIMEOUT_MS=.* is not a whole number of milliseconds above 0: set it like XCLUSTER_CEPH_TIMEOUT_MS=30000/)
  })

  it('a ceph call stuck in the kernel (its SIGKILL pending) still ends at its bound', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xct-rbd-'))
    const pidFile = join(dir, 'pid')
    // An rbd that hangs where no signal reaches it: frozen by the test once it runs, as an unmap
    // waiting in the kernel on the I/O of a blocklisted mapping stays in D state.
    const stuck = join(dir, 'rbd')
    writeFileSync(stuck, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 30\n`)
    chmodSync(stuck, 0o755)
    let frozen: {thaw(): void} | undefined
    try {
      const started = Date.now()
      const call = new RbdCli(stuck, 1500).unmap({image: 'rbd/pg', device: '/dev/rbd0', type: 'krbd'}, true)
      const outcome = assert.rejects(call, /device unmap .*\/dev\/rbd0: no answer within 1500 ms \(killed/)
      while (!existsSync(pidFile) || readFileSync(pidFile, 'utf8').trim() === '') await new Promise((r) => setTimeout(r, 10))
      const pid = Number(readFileSync(pidFile, 'utf8'))
      frozen = freeze(pid, `xct-rbd-${process.pid}`)
      await outcome
      const ms = Date.now() - started
      assert.ok(ms < 4000, `the call ended ${ms} ms after it began, not at its 1500 ms bound`)
      assert.ok(killPending(pid), 'the stuck rbd is still alive, its SIGKILL pending: the call did not wait for its death')
    } finally {
      frozen?.thaw()
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
