/**
 * A fence that holds (issue 10), against a real Ceph (mon, mgr, a memstore OSD on loopback), a
 * real etcd and two real `xcluster serve --elect` daemons whose service is a librbd writer
 * (test/helpers/rbd-writer.py: it takes the image's exclusive lock and writes numbered records,
 * as a mapping would). Each trial freezes the whole leader as a paused machine would be (serve,
 * its guardian and its writer: SIGSTOP) past the TTL; the successor fences the image (blocklists
 * the old writer, breaks its lock) and starts its own writer; then the old writer resumes first,
 * before its guardian can kill it (the worst order), and its next write must fail. The image read
 * back must hold no record of the old leadership written after the successor's first one.
 * The trials can run in groups side by side (one service, image and pair of daemons each), as the
 * election checker does; the suite runs one group (see GROUPS).
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {fenceRbdImage, RbdCli} from '../../src/lib/ceph/rbd.js'
import {guardedWrite} from '../../src/lib/election/fence.js'
import {processAlive} from '../../src/lib/election/instance.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {CheckResult} from '../../src/lib/election/split-brain.js'
import {startRbdCeph, type TestCeph} from '../helpers/ceph.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {Daemon, specBase, until, writeSpec} from '../helpers/election-harness.js'
import {startEtcdRetrying} from '../helpers/etcd-cluster.js'
import {type TestEtcd} from '../helpers/etcd.js'
import {latestWriter, readRecords, writerLines, writerPid, writeWriterScripts} from '../helpers/rbd-writer.js'

/**
 * The issue asks for 50 trials. One takes ~7 s on this shared 2-core machine (the 2 s TTL, the
 * fence's blocklist calls, a writer's start), mostly waiting. Three groups side by side took
 * 156-172 s; runs where every `rbd` call then timed out were the test Ceph's shared client admin
 * socket (now one per client, test/helpers/ceph.ts), but three groups were not run again since:
 * the suite runs one (XCT_FENCE_GROUPS=3 for more).
 */
const TRIALS = Number(process.env.XCT_FENCE_TRIALS ?? 50)
const GROUPS = Number(process.env.XCT_FENCE_GROUPS ?? 1)
const NODES = ['s1', 's2']
/**
 * What this test proves is safety, not latency: a takeover is the TTL, a fence of several ceph/rbd
 * calls (up to ~4 s measured with a load of 10 on this machine) and a writer's start.
 */
const SUCCESSOR_TIMEOUT_MS = 40_000

/** Every pid in the process tree under `root` (serve, its guardian and their children). */
function tree(root: number): number[] {
  const parent = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      parent.set(ppid, [...(parent.get(ppid) ?? []), Number(entry)])
    } catch {
      // gone meanwhile
    }
  }
  const out = [root]
  for (let i = 0; i < out.length; i++) out.push(...(parent.get(out[i] as number) ?? []))
  return out
}

const signal = (pids: number[], sig: NodeJS.Signals) => {
  for (const pid of pids) {
    try {
      process.kill(pid, sig)
    } catch {
      // already gone
    }
  }
}

/** One elected service on its own image, with its own daemons, scripts and writer log. */
interface Group {
  service: string
  image: string
  dir: string
  daemons: Map<string, Daemon>
}

const writerLog = (g: Group) => join(g.dir, 'writer.log')
const lines = (g: Group) => writerLines(writerLog(g))
const current = (g: Group) => latestWriter(writerLog(g))

describe('a fence that holds: the successor blocklists the old leader’s own Ceph client', {concurrency: false}, () => {
  let ceph: TestCeph
  let etcd: TestEtcd
  let dir: string
  let env: Record<string, string>
  const groups: Group[] = []
  const rbd = new RbdCli()
  const cli = (args: string[]) => xcluster(args, {env})
  /** The group the tests after the trials use. */
  const main = () => groups[0] as Group

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-election-rbd-fence-'))
    ceph = await startRbdCeph()
    etcd = await startEtcdRetrying()
    env = {XCLUSTER_ETCD: etcd.endpoint, CEPH_CONF: ceph.conf}
    let services = ''
    for (let g = 0; g < GROUPS; g++) {
      const group: Group = {service: `db${g}`, image: `rbd/data${g}`, dir: join(dir, `db${g}`), daemons: new Map()}
      mkdirSync(group.dir)
      execFileSync('rbd', ['create', '--size', '64', group.image])
      const {start, stop} = writeWriterScripts(group.dir, ceph.conf, group.image, writerLog(group))
      services += `  - {name: ${group.service}, ttl: 2, rbdImage: ${group.image}, rbdMap: none, start: 'sh ${start}', stop: 'sh ${stop}'}\n`
      groups.push(group)
    }
    const file = join(dir, 'spec.yaml')
    writeSpec(file, specBase(ROOT), services)
    const applied = await cli(['config', 'apply', '-f', file, '--yes'])
    assert.equal(applied.code, 0, applied.stderr)
    for (const g of groups) for (const n of NODES) g.daemons.set(n, new Daemon(n, [g.service], etcd.endpoint, join(g.dir, `${n}.err`)).start())
  })

  after(async () => {
    for (const g of groups) for (const d of g.daemons.values()) signal(tree(d.proc.pid as number), 'SIGCONT')
    await Daemon.killAll()
    // Writers outlive a SIGKILLed serve only until their guardian kills them; make sure.
    for (const g of groups) {
      for (const f of existsSync(g.dir) ? readdirSync(g.dir).filter((x) => x.endsWith('.pid')) : []) signal([Number(readFileSync(join(g.dir, f), 'utf8'))], 'SIGKILL')
    }
    await etcd?.stop()
    await ceph?.stop()
    delete process.env.CEPH_CONF
    // XCT_KEEP_DIR=1 keeps the daemons' logs and the writer's for a failed run.
    if (!process.env.XCT_KEEP_DIR) rmSync(dir, {recursive: true, force: true})
  })

  /** One trial: the group's leader frozen whole, its writer fenced by the successor; the stale records found. */
  async function trial(g: Group, n: number): Promise<number> {
    const old = await until(
      `${g.service}: the leader writing`,
      () => {
        const c = current(g)
        return c && c.wrote >= 3 ? c : undefined
      },
      20_000,
    )
    const oldWriter = writerPid(g.dir, old.node, old.token)
    const oldDaemon = g.daemons.get(old.node) as Daemon
    // Frozen as a paused machine: serve, its guardian and the writer (in a session of its own).
    const frozen = [oldWriter, ...tree(oldDaemon.proc.pid as number)]
    signal(frozen, 'SIGSTOP')
    const next = await until(
      `${g.service}: the successor writing`,
      () => {
        const c = current(g)
        return c && c.token !== old.token && c.wrote >= 3 ? c : undefined
      },
      SUCCESSOR_TIMEOUT_MS,
    )
    assert.notEqual(next.node, old.node)
    assert.ok(BigInt(next.token) > BigInt(old.token))
    const successor = g.daemons.get(next.node) as Daemon
    // Fenced by the successor under a newer token (a start that then failed leaves a later token
    // nothing to fence). Waited for: serve logs the fence before the writer starts, but this
    // process may read the writer's file before the daemon's pipe (several groups share its loop).
    const fencedOld = () =>
      successor.events.some((e) => e.event === 'rbd-fenced' && BigInt(e.token as string) > BigInt(old.token) && e.ok === true && (e.blocklisted as string[]).includes(old.address))
    await until(`${g.service}: ${next.node}'s fence of the old writer`, () => fencedOld() || undefined, 10_000).catch(() => undefined)
    assert.ok(
      fencedOld(),
      `${g.service}: ${next.node}'s fences after token ${old.token} blocklisted ${JSON.stringify(successor.events.filter((e) => e.event === 'rbd-fenced' && BigInt(e.token as string) > BigInt(old.token)).map((f) => f.blocklisted))}, not the old writer ${old.address}`,
    )
    // The worst order: the old writer wakes before its guardian could kill it.
    signal([oldWriter], 'SIGCONT')
    const failure = await until(`${g.service}: the old writer to fail its next write`, () => lines(g).find((l) => l.startsWith(`failed ${old.node} ${old.token} `)), 15_000)
    assert.match(failure, /ConnectionShutdown|Blocklist|errno 108/i)
    await until(`${g.service}: the old writer to exit`, () => !processAlive(oldWriter), 5_000)
    signal(frozen, 'SIGCONT')
    const records = readRecords(ceph.conf, g.image)
    const firstOfNext = records.filter((r) => r.token === next.token).reduce((min, r) => (r.ns < min ? r.ns : min), BigInt(Number.MAX_SAFE_INTEGER) * 1000n)
    const late = records.filter((r) => r.token === old.token && r.ns >= firstOfNext)
    assert.deepEqual(late, [], `${g.service} trial ${n}: records of token ${old.token} written after token ${next.token}'s first`)
    // The woken serve has demoted itself and runs as a follower again before the next trial.
    await until(`${g.service}: ${old.node} back as a follower`, () => oldDaemon.events.some((e) => e.receivedAt > 0 && e.event === 'demoted' && e.token === old.token) || undefined, 15_000).catch(
      () => undefined,
    )
    return late.length
  }

  it(`${TRIALS} trials: a frozen leader's writer is fenced; 0 stale writes after the successor's first`, async () => {
    const started = Date.now()
    let done = 0
    let stale = 0
    let failed: unknown
    // Every group's loop ends (the first failure ends them all) before the daemons are stopped.
    const outcomes = await Promise.allSettled(
      groups.map(async (g) => {
        await until(`${g.service}: a writer holding the image`, () => current(g), 20_000)
        try {
          while (done < TRIALS && failed === undefined) {
            const n = ++done
            stale += await trial(g, n)
          }
        } catch (err) {
          failed ??= err
          throw err
        }
      }),
    )
    const rejected = outcomes.find((o) => o.status === 'rejected')
    if (rejected) throw failed ?? rejected.reason
    console.log(`# ${done} trials in ${GROUPS} groups side by side, ${((Date.now() - started) / 1000).toFixed(0)} s: stale writes ${stale}`)
    assert.ok(done >= TRIALS)
    assert.equal(stale, 0)
  })

  it('the fence record in etcd names the blocklisted writer and the successor token; check shows the real holder beside the leader', async () => {
    const old = await until('the leader writing', () => current(main()), 10_000)
    const oldWriter = writerPid(main().dir, old.node, old.token)
    const frozen = [oldWriter, ...tree((main().daemons.get(old.node) as Daemon).proc.pid as number)]
    signal(frozen, 'SIGSTOP')
    try {
      const next = await until(
        'the successor writing',
        () => {
          const c = current(main())
          return c && c.token !== old.token && c.wrote > 0 ? c : undefined
        },
        SUCCESSOR_TIMEOUT_MS,
      )
      // The old serve is frozen: its published view is stale, so check may disagree on that; the fence and holder are what is read here.
      const db = await until(
        'check to name the holder',
        async () => {
          const r = await cli(['election', 'check', '--json', '--no-vips'])
          const row = r.json<CheckResult>().services.find((s) => s.service === main().service)
          return row?.rbdFence?.holder === next.address ? row : undefined
        },
        20_000,
        300,
      )
      assert.equal(db.leader, next.node)
      assert.equal(db.rbdFence?.token, next.token)
      assert.equal(db.rbdFence?.node, next.node)
      assert.ok(db.rbdFence?.blocklisted.includes(old.address), JSON.stringify(db.rbdFence))
      assert.deepEqual(
        db.rbdHolders?.map((h) => [h.node, h.token, h.address]),
        [[next.node, next.token, next.address]],
      )
    } finally {
      signal([oldWriter], 'SIGCONT')
      await until('the old writer to exit', () => !processAlive(oldWriter), 15_000).catch(() => undefined)
      signal(frozen, 'SIGCONT')
    }
    assert.ok(
      lines(main()).some((l) => l.startsWith(`failed ${old.node} ${old.token} `)),
      'the old writer failed its next write',
    )
    const agreed = await until(
      'check to agree once the old leader woke',
      async () => {
        const r = await cli(['election', 'check', '--json', '--no-vips'])
        return r.code === 0 ? r.json<CheckResult>() : undefined
      },
      20_000,
      500,
    )
    assert.equal(agreed.ok, true)
  })

  it('a failed stop leaves the lock to the successor, who blocklists its client and breaks it', async () => {
    const old = await until('the leader writing', () => current(main()), 10_000)
    const to = NODES.find((n) => n !== old.node) as string
    writeFileSync(join(main().dir, 'fail-stop'), '')
    try {
      const res = await cli(['election', 'transfer', main().service, '--to', to, '--yes'])
      assert.equal(res.code, 0, res.stderr)
      const next = await until(
        'the new leader writing',
        () => {
          const c = current(main())
          return c && c.token !== old.token ? c : undefined
        },
        20_000,
      )
      const fenced = (main().daemons.get(next.node) as Daemon).events.find((e) => e.event === 'rbd-fenced' && e.token === next.token)
      assert.ok(fenced)
      // The stop failed; the guardian then killed the writer: its lock stayed, and was broken under a blocklist.
      assert.ok((fenced.blocklisted as string[]).includes(old.address), JSON.stringify(fenced))
      assert.equal((fenced.brokenLocks as string[]).length, 1, JSON.stringify(fenced))
    } finally {
      rmSync(join(main().dir, 'fail-stop'), {force: true})
    }
  })

  it('a stale leadership refuses to fence: its claim is refused by etcd, and a newer leadership’s lock is left, nothing blocklisted', async () => {
    // The claim comes first: written under a token that no longer leads, etcd refuses it and the
    // record stays as the leader wrote it.
    const store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    try {
      const key = store.keys.electionFence(main().service)
      const before = await store.getJson(key)
      const claim = {image: main().image, node: 's1', token: '5', blocklisted: [], brokenLocks: [], at: new Date().toISOString(), holder: null}
      assert.equal(await guardedWrite(store, main().service, '5', [{kind: 'put', key, value: claim}]), false)
      assert.deepEqual(await store.getJson(key), before)
    } finally {
      await store.close()
    }
    // And a lock of a newer leadership (an older release's advisory lock carries its token) stops it.
    const image = 'rbd/other'
    execFileSync('rbd', ['create', '--size', '16', image])
    await rbd.add(image, 'xcluster:s9:999999999')
    const [advisory] = await rbd.locks(image)
    await assert.rejects(fenceRbdImage(rbd, image, 's1', '5'), /newer leadership \(s9, token 999999999\)/)
    // The elections may blocklist their own clients meanwhile: this fence's would be the lock's address.
    assert.doesNotMatch(ceph.ceph(['osd', 'blocklist', 'ls']), new RegExp(advisory!.address.replaceAll('.', '\\.')))
    assert.deepEqual(
      (await rbd.locks(image)).map((l) => l.id),
      ['xcluster:s9:999999999'],
    )
  })
})
