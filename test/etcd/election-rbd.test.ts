/**
 * The RBD image's lock follows the leadership, against a real Ceph cluster (mon, mgr, a memstore
 * OSD on loopback), a real etcd and three real `xcluster serve --elect` daemons whose service is a
 * librbd writer (test/helpers/rbd-writer.py): the lock is the service's own client's exclusive
 * lock, as a mapping's would be. The leader fences the image before it starts the service and
 * records the client that took the lock; a graceful handover moves the lock with nothing to fence;
 * a crashed leader's stale lock is broken by the next leader after a blocklist; `election check`
 * reports a lock held by anyone but the leader's client as split brain. The paused-leader case
 * (a client alive, not dead) is election-rbd-fence.test.ts.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {RbdCli} from '../../src/lib/ceph/rbd.js'
import type {CheckResult} from '../../src/lib/election/split-brain.js'
import {startRbdCeph, type TestCeph} from '../helpers/ceph.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {Daemon, specBase, until, writeSpec} from '../helpers/election-harness.js'
import {startEtcdRetrying} from '../helpers/etcd-cluster.js'
import {type TestEtcd} from '../helpers/etcd.js'
import {latestWriter, writeWriterScripts} from '../helpers/rbd-writer.js'

const IMAGE = 'rbd/pg'

describe('an RBD image lock that follows the leader of its service', {concurrency: false}, () => {
  let ceph: TestCeph
  let etcd: TestEtcd
  let dir: string
  let env: Record<string, string>
  let pgService: string
  const daemons = new Map<string, Daemon>()
  const rbd = new RbdCli()
  const log = () => join(dir, 'writer.log')
  const cli = (args: string[]) => xcluster(args, {env})
  /** The image's locks, with the leadership the fence record names (what election check reports). */
  const holders = async () => {
    const res = await check()
    return res.result.services.find((s) => s.service === 'pg')?.rbdHolders ?? []
  }
  /** The writer holding the image, on a live daemon. */
  const leader = () =>
    until(
      'a live daemon writing pg',
      () => {
        const w = latestWriter(log())
        return w && w.wrote > 0 && daemons.has(w.node) ? w : undefined
      },
      15_000,
    )
  const fenceOf = (node: string, token: string) => daemons.get(node)?.events.find((e) => e.event === 'rbd-fenced' && e.token === token)
  const check = async () => {
    const res = await cli(['election', 'check', '--json', '--no-vips'])
    return {code: res.code, result: res.json<CheckResult>(), stderr: res.stderr}
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-election-rbd-'))
    ceph = await startRbdCeph()
    execFileSync('rbd', ['create', '--size', '16', IMAGE])
    etcd = await startEtcdRetrying()
    env = {XCLUSTER_ETCD: etcd.endpoint, CEPH_CONF: ceph.conf}
    const file = join(dir, 'spec.yaml')
    const {start, stop} = writeWriterScripts(dir, ceph.conf, IMAGE, log())
    pgService = `  - {name: pg, ttl: 2, rbdImage: ${IMAGE}, rbdMap: none, start: 'sh ${start}', stop: 'sh ${stop}'}\n`
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

  it("the leader fences the image before its service starts; the lock is the service's own client's, named by the fence record", async () => {
    const first = await leader()
    const fenced = fenceOf(first.node, first.token)
    assert.ok(fenced, `${first.node} logged no fence for token ${first.token}`)
    assert.deepEqual([fenced.blocklisted, fenced.brokenLocks], [[], []], 'nothing held the image before the first leader')
    const {code, result} = await until(
      'check to name the holder',
      async () => {
        const c = await check()
        return c.code === 0 ? c : undefined
      },
      10_000,
      200,
    )
    assert.equal(code, 0, JSON.stringify(result.disagreements))
    const pg = result.services.find((s) => s.service === 'pg')
    assert.deepEqual(
      pg?.rbdHolders?.map((h) => [h.node, h.token, h.address, h.lock.startsWith('auto ')]),
      [[first.node, first.token, first.address, true]],
    )
    assert.equal(pg?.rbdFence?.token, first.token)
  })

  it('a transfer moves the lock: the old writer releases it when stopped, the new leader has nothing to fence', async () => {
    const old = await leader()
    const to = ['s1', 's2', 's3'].find((n) => n !== old.node) as string
    const res = await cli(['election', 'transfer', 'pg', '--to', to, '--yes'])
    assert.equal(res.code, 0, res.stderr)
    const now = await until(
      'the new leader to write pg',
      () => {
        const w = latestWriter(log())
        return w && w.node === to && w.wrote > 0 ? w : undefined
      },
      10_000,
    )
    assert.deepEqual(fenceOf(to, now.token)?.blocklisted, [], 'a clean stop left no client to blocklist')
    await until('the new holder named', async () => ((await holders()).map((h) => `${h.node}:${h.token}`).join() === `${to}:${now.token}` ? true : undefined), 10_000, 200)
  })

  it("a crashed leader's writer is killed by its guardian, its lock left behind; the next leader blocklists that client and breaks it", async () => {
    const old = await leader()
    await daemons.get(old.node)?.stop('SIGKILL')
    daemons.delete(old.node)
    const next = await until(
      'a new leader writing',
      () => {
        const w = latestWriter(log())
        return w && w.token !== old.token && w.wrote > 0 ? w : undefined
      },
      15_000,
    )
    assert.ok(BigInt(next.token) > BigInt(old.token))
    const fenced = fenceOf(next.node, next.token)
    assert.deepEqual(fenced?.blocklisted, [old.address], JSON.stringify(fenced))
    assert.equal((fenced?.brokenLocks as string[]).length, 1)
    await until('the new holder named', async () => ((await holders()).map((h) => `${h.node}:${h.token}`).join() === `${next.node}:${next.token}` ? true : undefined), 10_000, 200)
  })

  it('check reports a lock held by a client the leader did not record as split brain (exit 3), naming it', async () => {
    const current = await leader()
    const other = ['s1', 's2', 's3'].find((n) => n !== current.node) as string
    // The leader's client is blocklisted and its lock broken behind xcluster's back; another lock appears.
    const [mine] = await rbd.locks(IMAGE)
    await rbd.blocklist(mine!.address, 600)
    await rbd.remove(IMAGE, mine!)
    await rbd.add(IMAGE, `xcluster:${other}:1`)
    try {
      const {code, result} = await check()
      assert.equal(code, 3)
      const found = result.disagreements.find((d) => d.kind === 'rbd-lock-not-on-leader')
      assert.ok(found, JSON.stringify(result.disagreements))
      assert.ok(found.nodes.includes(other), JSON.stringify(found))
    } finally {
      for (const lock of await rbd.locks(IMAGE)) await rbd.remove(IMAGE, lock)
    }
  })

  it('a start that fails leaves no lock of its own; the next attempt fences anew under a new token', async () => {
    const image = 'rbd/qd'
    execFileSync('rbd', ['create', '--size', '16', image])
    const attempts = join(dir, 'qd.attempts')
    // Only s1 may run qd, and its start always fails, after recording its token.
    const qd = `  - {name: qd, ttl: 2, nodes: [s1], rbdImage: ${image}, rbdMap: none, start: 'echo "$XCLUSTER_TOKEN" >> ${attempts}; exit 1', stop: 'true'}\n`
    const file = join(dir, 'spec-qd.yaml')
    writeSpec(file, specBase(ROOT), pgService + qd)
    const applied = await cli(['config', 'apply', '-f', file, '--yes'])
    assert.equal(applied.code, 0, applied.stderr)
    const tokens = () => (existsSync(attempts) ? readFileSync(attempts, 'utf8').split('\n').filter(Boolean) : [])
    const daemon = new Daemon('s1', ['qd'], etcd.endpoint, join(dir, 'qd.err')).start()
    try {
      const [first, second] = await until('a second attempt', () => (tokens().length >= 2 ? tokens() : undefined), 20_000)
      assert.ok(BigInt(second!) > BigInt(first!), `the second attempt ran under a new token (${first} then ${second})`)
      for (const token of [first, second])
        assert.ok(
          daemon.events.some((e) => e.event === 'rbd-fenced' && e.token === token && e.ok === true),
          `no fence before attempt ${token}`,
        )
    } finally {
      await daemon.stop('SIGTERM')
    }
    assert.deepEqual(await rbd.locks(image), [], 'a lock outlived the daemon')
  })
})
