/**
 * The RBD image lock follows the leadership, against a real Ceph cluster (mon, mgr, a memstore
 * OSD on loopback), a real etcd and three real `xcluster serve --elect` daemons: the leader locks
 * the image before it starts the service, a graceful handover moves the lock, a crashed leader's
 * stale lock is broken by the next leader (its token is newer), and `election check` reports a
 * lock held by anyone but the leader as split brain.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {RbdCli, rbdLockHolder, type RbdLockHolder} from '../../src/lib/ceph/rbd.js'
import type {CheckResult} from '../../src/lib/election/split-brain.js'
import {startCeph, type TestCeph} from '../helpers/ceph.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {Daemon, loggedService, readEvents, running, specBase, until, writeSpec} from '../helpers/election-harness.js'
import {startEtcdRetrying} from '../helpers/etcd-cluster.js'
import {type TestEtcd} from '../helpers/etcd.js'

const IMAGE = 'rbd/pg'

describe('an RBD image lock that follows the leader of its service', {concurrency: false}, () => {
  let ceph: TestCeph
  let etcd: TestEtcd
  let dir: string
  let env: Record<string, string>
  let pgService: string
  const daemons = new Map<string, Daemon>()
  const rbd = new RbdCli()
  const log = () => join(dir, 'pg.log')
  const cli = (args: string[]) => xcluster(args, {env})
  const holders = async (): Promise<RbdLockHolder[]> => (await rbd.locks(IMAGE)).map(rbdLockHolder)
  /** The one pg service running on a live daemon (a SIGKILLed daemon never logged its stop). */
  const leader = () =>
    until(
      'one running pg service',
      () => {
        const r = running(readEvents(log())).filter((e) => daemons.has(e.node))
        return r.length === 1 ? r[0] : undefined
      },
      15_000,
    )
  const check = async () => {
    const res = await cli(['election', 'check', '--json', '--no-vips'])
    return {code: res.code, result: res.json<CheckResult>(), stderr: res.stderr}
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-election-rbd-'))
    ceph = await startCeph({osdHosts: ['s4']})
    ceph.ceph(['osd', 'pool', 'create', 'rbd', '8', '8'])
    ceph.ceph(['osd', 'pool', 'application', 'enable', 'rbd', 'rbd'])
    process.env.CEPH_CONF = ceph.conf // for the daemons, the CLI and RbdCli here
    execFileSync('rbd', ['create', '--size', '16', IMAGE])
    etcd = await startEtcdRetrying()
    env = {XCLUSTER_ETCD: etcd.endpoint, CEPH_CONF: ceph.conf}
    const file = join(dir, 'spec.yaml')
    // The start command itself checks that its leadership already holds the lock.
    pgService = loggedService('pg', log(), 2).replace("start: '", `start: 'rbd lock ls ${IMAGE} | grep -q "xcluster:$XCLUSTER_NODE:$XCLUSTER_TOKEN" && `).replace('}\n', `, rbdImage: ${IMAGE}}\n`)
    writeSpec(file, specBase(ROOT), pgService)
    const applied = await cli(['config', 'apply', '-f', file, '--yes'])
    assert.equal(applied.code, 0, applied.stderr)
    for (const n of ['s1', 's2', 's3']) daemons.set(n, new Daemon(n, ['pg'], etcd.endpoint, join(dir, `${n}.err`)).start())
  })

  after(async () => {
    await Promise.all([...daemons.values()].map((d) => d.stop('SIGKILL').catch(() => undefined)))
    await etcd?.stop()
    await ceph?.stop()
    delete process.env.CEPH_CONF
    rmSync(dir, {recursive: true, force: true})
  })

  it('the leader holds the image lock under its token, taken before its service started', async () => {
    const first = await leader()
    assert.deepEqual(
      (await holders()).map((h) => [h.node, h.token]),
      [[first.node, first.token]],
    )
    const {code, result} = await check()
    assert.equal(code, 0, JSON.stringify(result.disagreements))
    assert.deepEqual(result.services.find((s) => s.service === 'pg')?.rbdHolders, [{node: first.node, token: first.token, lock: `xcluster:${first.node}:${first.token}`}])
  })

  it('a transfer moves the lock: the old leader frees it after stopping, the new one takes it', async () => {
    const old = await leader()
    const to = ['s1', 's2', 's3'].find((n) => n !== old.node) as string
    const res = await cli(['election', 'transfer', 'pg', '--to', to, '--yes'])
    assert.equal(res.code, 0, res.stderr)
    const now = await until('the new leader to run pg', () => running(readEvents(log())).find((e) => e.node === to), 10_000)
    assert.deepEqual(
      (await holders()).map((h) => [h.node, h.token]),
      [[to, now.token]],
    )
  })

  it('a crashed leader leaves its lock behind; the next leader breaks it (older token) and takes it', async () => {
    const old = await leader()
    await daemons.get(old.node)?.stop('SIGKILL')
    daemons.delete(old.node)
    assert.deepEqual(
      (await holders()).map((h) => h.node),
      [old.node],
      "the crashed leader's lock is still there",
    )
    const next = await until('a new leader', () => running(readEvents(log())).find((e) => e.node !== old.node), 15_000)
    // Its start command ran, so the lock was taken before it.
    assert.deepEqual(
      (await holders()).map((h) => [h.node, h.token]),
      [[next.node, next.token]],
    )
    assert.ok(BigInt(next.token) > BigInt(old.token))
  })

  it('check reports a lock held by another node than the leader as split brain (exit 3), naming both', async () => {
    const current = await leader()
    const other = ['s1', 's2', 's3'].find((n) => n !== current.node) as string
    const [mine] = await rbd.locks(IMAGE)
    await rbd.remove(IMAGE, mine!)
    try {
      const unlocked = await check()
      assert.equal(unlocked.code, 3)
      assert.match(unlocked.result.disagreements.map((d) => d.message).join('\n'), new RegExp(`${current.node} leads pg .* but ${IMAGE} is not locked`))
      await rbd.add(IMAGE, `xcluster:${other}:1`)
      const {code, result} = await check()
      assert.equal(code, 3)
      const found = result.disagreements.find((d) => d.kind === 'rbd-lock-not-on-leader')
      assert.ok(found, JSON.stringify(result.disagreements))
      assert.deepEqual([...found.nodes].sort(), [other, current.node].sort())
    } finally {
      for (const lock of await rbd.locks(IMAGE)) await rbd.remove(IMAGE, lock)
      await rbd.add(IMAGE, `xcluster:${current.node}:${current.token}`)
    }
    assert.equal((await check()).code, 0)
  })
  it('a start that fails gives the lock back: the image is unlocked until the next attempt takes it anew', async () => {
    const image = 'rbd/qd'
    execFileSync('rbd', ['create', '--size', '16', image])
    const attempts = join(dir, 'qd.attempts')
    // Only s1 may run qd, and its start always fails, after recording that it held the lock.
    const qd = `  - {name: qd, ttl: 2, nodes: [s1], rbdImage: ${image}, start: 'rbd lock ls ${image} | grep -q "xcluster:$XCLUSTER_NODE:$XCLUSTER_TOKEN" && echo "$XCLUSTER_TOKEN" >> ${attempts}; exit 1', stop: 'true'}\n`
    const file = join(dir, 'spec-qd.yaml')
    writeSpec(file, specBase(ROOT), pgService + qd)
    const applied = await cli(['config', 'apply', '-f', file, '--yes'])
    assert.equal(applied.code, 0, applied.stderr)
    const tokens = () => (existsSync(attempts) ? readFileSync(attempts, 'utf8').split('\n').filter(Boolean) : [])
    const qdLocks = async () => (await rbd.locks(image)).map(rbdLockHolder)
    const daemon = new Daemon('s1', ['qd'], etcd.endpoint, join(dir, 'qd.err')).start()
    try {
      await until('a first attempt holding the lock', () => tokens()[0], 15_000)
      // Failed: the daemon holds back a TTL before it tries again; the lock went with the failure.
      await until('the image unlocked after the failed start', async () => ((await qdLocks()).length === 0 ? true : undefined), 5_000)
      const [first, second] = await until('a second attempt', () => (tokens().length >= 2 ? tokens() : undefined), 15_000)
      assert.ok(BigInt(second!) > BigInt(first!), `the second attempt ran under a new token (${first} then ${second})`)
    } finally {
      await daemon.stop('SIGTERM')
    }
    assert.deepEqual(await qdLocks(), [], 'a lock outlived the daemon')
  })
})
