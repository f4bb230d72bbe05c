/**
 * Failover times of the election daemon beside keepalived's VRRP failover, in the same run:
 *  - election crash failover: SIGKILL the leader's `xcluster serve` -> a peer's start command ran
 *  - election graceful handover: SIGTERM the leader -> a peer's start command ran
 *  - VRRP crash failover: SIGKILL the VIP holder's keepalived -> the VIP is on a peer
 *  - VRRP graceful: SIGTERM the holder's keepalived -> the VIP is on a peer
 * Real etcd (3 members, default raft timings), real daemons (the built CLI), real keepalived in
 * namespaces of its own (xct-vip-bench-*). Needs root, etcd-server and keepalived; build first.
 *
 *   npx tsx bench/failover.ts [election trials=10] [vrrp trials=5]
 */
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {parseSpec} from '../src/lib/spec/parse.js'
import {ROOT, xcluster} from '../test/helpers/cli.js'
import {Daemon, loggedService, readEvents, running, sleep, specBase, until, writeSpec} from '../test/helpers/election-harness.js'
import {raftTerm, startEtcdCluster} from '../test/helpers/etcd-cluster.js'
import {VrrpLab} from '../test/helpers/keepalived.js'

const electionTrials = Number(process.argv[2] ?? 10)
const vrrpTrials = Number(process.argv[3] ?? 5)
const TTL = 2
const NODES = ['s1', 's2', 's3']

if (!existsSync(join(ROOT, 'oclif.manifest.json'))) {
  console.error('oclif.manifest.json is missing: run `npm run build` first')
  process.exit(2)
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return {n: s.length, median: s[Math.floor(s.length / 2)] ?? NaN, max: s[s.length - 1] ?? NaN, min: s[0] ?? NaN}
}

async function electionBench(dir: string): Promise<{crash: number[]; graceful: number[]; acrossEtcdElection: number[]}> {
  const etcd = await startEtcdCluster(3, {heartbeatMs: 100, electionMs: 1000})
  const log = join(dir, 'bench.log')
  const file = join(dir, 'spec.yaml')
  writeSpec(file, specBase(ROOT), loggedService('bench', log, TTL))
  const applied = await xcluster(['config', 'apply', '-f', file, '--yes'], {env: {XCLUSTER_ETCD: etcd.etcdFlag}})
  if (applied.code !== 0) throw new Error(applied.stderr)
  const daemons = new Map(NODES.map((n) => [n, new Daemon(n, ['bench'], etcd.etcdFlag).start()]))
  const result = {crash: [] as number[], graceful: [] as number[], acrossEtcdElection: [] as number[]}
  /** Tokens of crashed leaders: their start lines never get a stop. */
  const dead = new Set<string>()
  try {
    for (let i = 0; i < electionTrials * 2; i++) {
      const kind = i % 2 === 0 ? 'crash' : 'graceful'
      const leader = await until('a leader', () => {
        const r = running(readEvents(log)).filter((e) => !dead.has(e.token))
        return r.length === 1 ? r[0] : undefined
      }, 15_000)
      await sleep(700) // let every follower settle into waiting
      const d = daemons.get(leader.node) as Daemon
      const term = await raftTerm(etcd.endpoints)
      const at = Date.now()
      if (kind === 'crash') dead.add(leader.token)
      d.signal(kind === 'crash' ? 'SIGKILL' : 'SIGTERM')
      const next = await until('the next leader', () => readEvents(log).find((e) => e.kind === 'start' && BigInt(e.token) > BigInt(leader.token)), 10_000)
      // A new etcd leader extends every lease: such a crash trial measures etcd, reported apart.
      if (kind === 'crash' && (await raftTerm(etcd.endpoints)) !== term) result.acrossEtcdElection.push(next.at - at)
      else result[kind].push(next.at - at)
      await d.wait()
      daemons.set(leader.node, new Daemon(leader.node, ['bench'], etcd.etcdFlag).start())
    }
  } finally {
    await Promise.all([...daemons.values()].map((d) => d.stop('SIGKILL')))
    await etcd.destroy()
  }
  return result
}

async function vrrpBench(dir: string): Promise<{crash: number[]; graceful: number[]}> {
  const spec = parseSpec(readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8'), 'xcluster.yaml')
  const vip = spec.network.adminVip
  const lab = new VrrpLab(spec, 'xct-vip-bench-', join(dir, 'vrrp'), ['s1', 's2'])
  const result = {crash: [] as number[], graceful: [] as number[]}
  lab.setUp()
  try {
    for (const n of ['s1', 's2']) lab.start(n)
    for (let i = 0; i < vrrpTrials * 2; i++) {
      const kind = i % 2 === 0 ? 'crash' : 'graceful'
      // s1 (priority 150) holds the VIP when healthy; s2 is the backup.
      const deadline = Date.now() + 15_000
      while ((await lab.holders(vip)).join(',') !== 's1') {
        if (Date.now() > deadline) throw new Error('VIP not on s1')
        await sleep(20)
      }
      await sleep(3000) // s2 settles as backup after s1 preempted it
      const at = Date.now()
      if (kind === 'crash') await lab.crash('s1')
      else await lab.stop('s1')
      while (!(await lab.holders(vip)).includes('s2')) {
        if (Date.now() - at > 15_000) throw new Error('VIP did not move to s2')
        await sleep(20)
      }
      result[kind].push(Date.now() - at)
      if (kind === 'crash') lab.removeLeftover('s1', vip)
      lab.start('s1')
    }
  } finally {
    lab.tearDown()
    if (process.env.XCLUSTER_KEEP_LOGS) console.log(`logs in ${join(dir, 'vrrp')}`)
  }
  return result
}

const dir = mkdtempSync(join(tmpdir(), 'xct-failover-'))
try {
  const election = electionTrials > 0 ? await electionBench(dir) : {crash: [], graceful: [], acrossEtcdElection: []}
  const vrrp = await vrrpBench(dir)
  const rows: [string, number[]][] = [
    [`election crash failover (SIGKILL, TTL ${TTL} s)`, election.crash],
    ['  the same, etcd elected a new leader meanwhile', election.acrossEtcdElection],
    ['election graceful handover (SIGTERM)', election.graceful],
    ['keepalived VRRP crash failover (SIGKILL, advert_int 1)', vrrp.crash],
    ['keepalived VRRP graceful (SIGTERM)', vrrp.graceful],
  ]
  console.log(`${'measurement'.padEnd(56)} ${'n'.padStart(3)} ${'median ms'.padStart(10)} ${'max ms'.padStart(8)} ${'min ms'.padStart(8)}`)
  if (process.env.XCLUSTER_BENCH_RAW) for (const [name, xs] of rows) console.log(`${name}: ${xs.join(' ')}`)
  for (const [name, xs] of rows) {
    const s = stats(xs)
    console.log(`${name.padEnd(56)} ${String(s.n).padStart(3)} ${s.median.toFixed(0).padStart(10)} ${s.max.toFixed(0).padStart(8)} ${s.min.toFixed(0).padStart(8)}`)
  }
} finally {
  if (!process.env.XCLUSTER_KEEP_LOGS) rmSync(dir, {recursive: true, force: true})
}
