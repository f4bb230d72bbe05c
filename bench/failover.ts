/**
 * Failover times of the election daemon beside keepalived's VRRP failover, in the same run.
 * Each election trial ends when the next leader's service is *acting*: the first instant of its
 * real service process (test/helpers/service-instance.mjs, measured by the InstanceMonitor, as
 * the election tests and the fencing checker measure it).
 *  - election crash failover: SIGKILL (as the OOM killer does) or SIGABRT (a crash) of the
 *    leader's `xcluster serve`: its guardian kills the instance and revokes the lease
 *  - election freeze: SIGSTOP of the leader's serve: its guardian kills the instance at the
 *    deadline; the successor waits for the lease to expire (the TTL)
 *  - election graceful handover: SIGTERM of the leader's serve
 *  - VRRP crash / graceful: SIGKILL / SIGTERM of the VIP holder's keepalived -> the VIP is on a
 *    peer, with advert_int 1 (xcluster's default) and 0.1 (VRRPv3)
 * Real etcd (3 members, the raft timings xcluster deploys), real daemons (the built CLI), real
 * keepalived in namespaces of its own (xct-vip-bench-*). Needs root, etcd-server, etcd-client
 * and keepalived; build first.
 *
 *   npx tsx bench/failover.ts [election trials per fault=10] [vrrp trials per kind=5]
 */
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {EtcdStore} from '../src/lib/etcd/store.js'
import {settings} from '../src/lib/settings.js'
import {parseSpec} from '../src/lib/spec/parse.js'
import {ROOT, xcluster} from '../test/helpers/cli.js'
import {Daemon, sleep, specBase, until, writeSpec} from '../test/helpers/election-harness.js'
import {raftTerm, startEtcdCluster} from '../test/helpers/etcd-cluster.js'
import {InstanceMonitor, instanceServiceYaml, monoMs} from '../test/helpers/instance-monitor.js'
import {VrrpLab} from '../test/helpers/keepalived.js'

const electionTrials = Number(process.argv[2] ?? 10)
const vrrpTrials = Number(process.argv[3] ?? 5)
const TTL = settings.election.defaultTtlSeconds
const NODES = ['s1', 's2', 's3']

if (!existsSync(join(ROOT, 'oclif.manifest.json'))) {
  console.error('oclif.manifest.json is missing: run `npm run build` first')
  process.exit(2)
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return {n: s.length, median: s[Math.floor(s.length / 2)] ?? NaN, max: s[s.length - 1] ?? NaN, min: s[0] ?? NaN}
}

type ElectionFault = 'SIGKILL' | 'SIGABRT' | 'SIGSTOP' | 'SIGTERM'

async function electionBench(dir: string): Promise<Record<ElectionFault | 'acrossEtcdElection', number[]>> {
  const etcd = await startEtcdCluster(3, {heartbeatMs: settings.etcdMember.heartbeatMs, electionMs: settings.etcdMember.electionMs})
  const monitor = await new InstanceMonitor(dir).start()
  const file = join(dir, 'spec.yaml')
  writeSpec(file, specBase(ROOT), instanceServiceYaml('bench', TTL, monitor))
  const applied = await xcluster(['config', 'apply', '-f', file, '--yes'], {env: {XCLUSTER_ETCD: etcd.etcdFlag}})
  if (applied.code !== 0) throw new Error(applied.stderr)
  const store = new EtcdStore({endpoints: etcd.endpoints, cluster: 'xcluster'})
  const daemons = new Map(NODES.map((n) => [n, new Daemon(n, ['bench'], etcd.etcdFlag).start()]))
  const result: Record<ElectionFault | 'acrossEtcdElection', number[]> = {SIGKILL: [], SIGABRT: [], SIGSTOP: [], SIGTERM: [], acrossEtcdElection: []}
  const faults: ElectionFault[] = ['SIGKILL', 'SIGABRT', 'SIGSTOP', 'SIGTERM']
  try {
    for (let i = 0; i < electionTrials * faults.length; i++) {
      const fault = faults[i % faults.length] as ElectionFault
      const leader = await until('a leader', () => monitor.only('bench'), 15_000)
      await sleep(700) // let every follower settle into waiting
      const d = daemons.get(leader.node) as Daemon
      const term = await raftTerm(etcd.endpoints)
      const at = monoMs()
      d.signal(fault)
      const next = await until('the next leader acting', () => monitor.startedAfter('bench', at), 10_000)
      // A new etcd leader extends every lease: such a trial measures etcd, reported apart.
      if (fault !== 'SIGTERM' && (await raftTerm(etcd.endpoints)) !== term) result.acrossEtcdElection.push(next.start - at)
      else result[fault].push(next.start - at)
      if (fault === 'SIGSTOP') d.signal('SIGCONT')
      await d.stop('SIGKILL')
      await sleep(300)
      daemons.set(leader.node, new Daemon(leader.node, ['bench'], etcd.etcdFlag).start())
    }
    const overlaps = monitor.overlaps('bench')
    if (overlaps.length > 0) throw new Error(`instances overlapped: ${JSON.stringify(overlaps)}`)
  } finally {
    await Promise.all([...daemons.values()].map((d) => d.stop('SIGKILL')))
    await store.close()
    await etcd.destroy()
    await monitor.close()
  }
  return result
}

async function vrrpBench(dir: string, advertInt: number): Promise<{crash: number[]; graceful: number[]}> {
  const spec = parseSpec(readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8'), 'xcluster.yaml')
  const vip = spec.network.adminVip
  const lab = new VrrpLab(spec, 'xct-vip-bench-', join(dir, `vrrp-${advertInt}`), ['s1', 's2'], {advertInt})
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
      const at = monoMs()
      if (kind === 'crash') await lab.crash('s1')
      else await lab.stop('s1')
      while (!(await lab.holders(vip)).includes('s2')) {
        if (monoMs() - at > 15_000) throw new Error('VIP did not move to s2')
        await sleep(5)
      }
      result[kind].push(monoMs() - at)
      if (kind === 'crash') lab.removeLeftover('s1', vip)
      lab.start('s1')
    }
  } finally {
    lab.tearDown()
  }
  return result
}

const dir = mkdtempSync(join(tmpdir(), 'xct-failover-'))
try {
  const election = electionTrials > 0 ? await electionBench(dir) : {SIGKILL: [], SIGABRT: [], SIGSTOP: [], SIGTERM: [], acrossEtcdElection: []}
  const vrrp1 = await vrrpBench(dir, 1)
  const vrrpFast = await vrrpBench(dir, 0.1)
  const rows: [string, number[]][] = [
    ['election crash failover (SIGKILL of serve)', election.SIGKILL],
    ['election crash failover (SIGABRT of serve)', election.SIGABRT],
    ['  either, etcd elected a new leader meanwhile', election.acrossEtcdElection],
    [`election freeze (SIGSTOP of serve, TTL ${TTL} s)`, election.SIGSTOP],
    ['election graceful handover (SIGTERM of serve)', election.SIGTERM],
    ['keepalived VRRP crash failover (SIGKILL, advert_int 1)', vrrp1.crash],
    ['keepalived VRRP graceful (SIGTERM, advert_int 1)', vrrp1.graceful],
    ['keepalived VRRP crash failover (SIGKILL, advert_int 0.1)', vrrpFast.crash],
    ['keepalived VRRP graceful (SIGTERM, advert_int 0.1)', vrrpFast.graceful],
  ]
  console.log(`${'measurement (until the next leader acts)'.padEnd(58)} ${'n'.padStart(3)} ${'median ms'.padStart(10)} ${'max ms'.padStart(8)} ${'min ms'.padStart(8)}`)
  if (process.env.XCLUSTER_BENCH_RAW) for (const [name, xs] of rows) console.log(`${name}: ${xs.map((x) => x.toFixed(0)).join(' ')}`)
  for (const [name, xs] of rows) {
    const s = stats(xs)
    console.log(`${name.padEnd(58)} ${String(s.n).padStart(3)} ${s.median.toFixed(0).padStart(10)} ${s.max.toFixed(0).padStart(8)} ${s.min.toFixed(0).padStart(8)}`)
  }
} finally {
  if (!process.env.XCLUSTER_KEEP_LOGS) rmSync(dir, {recursive: true, force: true})
  else console.log(`logs in ${dir}`)
}
