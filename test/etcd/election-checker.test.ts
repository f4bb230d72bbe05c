/**
 * The fencing checker: at least 200 randomized fault trials against real daemons
 * (`xcluster serve --elect`) and a real 3-member etcd, where each leadership runs a real
 * long-running service process (test/helpers/service-instance.mjs). What is checked is what a
 * user of the service would see, measured outside the daemons: each instance process's own
 * first instant and its death (the kernel closing its socket to the InstanceMonitor). No two
 * instances of a service may ever be alive at once, a token never goes back (a leader may restart its
 * service within its term, never beside the earlier instance), and every write an
 * instance makes with a token that no longer leads is refused by etcd.
 *
 * Faults, chosen at random: the leader's serve killed (SIGKILL, as the OOM killer does), crashed
 * (SIGABRT), killed with its instance at once (a cgroup-wide OOM kill), stopped (SIGTERM), frozen
 * past its TTL (SIGSTOP for 1.2-2.7 TTLs, then SIGCONT), cut off from
 * etcd by a network partition (the last group talks to etcd through relays the test can cut);
 * a follower killed or frozen; transfers and resignations. Only trials that injected a fault count. Underneath, etcd members crash and
 * restart, sometimes two at once (quorum loss). A frozen or partitioned serve cannot stop its
 * instance itself: its guardian must, before any successor can start. To fit the suite, six
 * groups (one service, three daemons each) run their trials in parallel with a 2 s TTL. (1 s,
 * etcd's lease floor with 500 ms elections, left no group a leader for a minute on a 2-core
 * machine where a Node process takes ~0.2 s to start and eighteen serve daemons share the
 * cores: elected leaders were demoted before their instance had started, main included.)
 */
import assert from 'node:assert/strict'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {requestHandover} from '../../src/lib/election/handover.js'
import {guardedWrite} from '../../src/lib/election/fence.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {Daemon, sleep, specBase, until, writeSpec} from '../helpers/election-harness.js'
import {startEtcdCluster, waitHealthy, type EtcdCluster} from '../helpers/etcd-cluster.js'
import {describeOverlap, InstanceMonitor, instanceServiceYaml, monoMs, type InstanceLife} from '../helpers/instance-monitor.js'
import {proxiesFor, type PartitionProxy} from '../helpers/partition-proxy.js'

const TRIALS = Number(process.env.XCLUSTER_CHECKER_TRIALS ?? 200)
const GROUPS = 6
const TTL = 2
const NODES = ['s1', 's2', 's3']
const FAULTS = ['kill-leader', 'crash-leader', 'oom-group', 'term-leader', 'pause-leader', 'partition-leader', 'pause-follower', 'kill-follower', 'transfer', 'resign'] as const
type Fault = (typeof FAULTS)[number]

let etcd: EtcdCluster
let dir: string
let store: EtcdStore
let monitor: InstanceMonitor

interface Group {
  service: string
  daemons: Map<string, Daemon>
  /** The last group reaches etcd through relays the test can cut (one set per node). */
  proxies?: Map<string, PartitionProxy[]>
  faults: Partial<Record<Fault, number>>
  failovers: Partial<Record<Fault, number[]>>
}

/** How long each SIGTERMed leader took to exit (its stop, resign and lease revoke included). */
const termExits: number[] = []

const random = (n: number): number => Math.floor(Math.random() * n)
const pick = <T>(xs: readonly T[]): T => xs[random(xs.length)] as T

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xct-election-checker-'))
  monitor = await new InstanceMonitor(dir).start()
  etcd = await startEtcdCluster(3)
  store = new EtcdStore({endpoints: etcd.endpoints, cluster: 'xcluster'})
  const file = join(dir, 'spec.yaml')
  const services = Array.from({length: GROUPS}, (_, g) => `chk${g}`)
  writeSpec(
    file,
    specBase(ROOT),
    services.map((s) => instanceServiceYaml(s, TTL, monitor, {writes: {prefix: `${store.keys.electionPrefix(s)}probe/`, leaderKey: store.keys.electionLeader(s)}})).join(''),
  )
  const applied = await xcluster(['config', 'apply', '-f', file, '--yes'], {env: {XCLUSTER_ETCD: etcd.etcdFlag}})
  assert.equal(applied.code, 0, applied.stderr)
})

after(async () => {
  // A failed trial must not leave serve daemons behind to load the machine for the next files.
  await Daemon.killAll()
  await store?.close()
  await etcd?.destroy()
  await monitor?.close()
  if (process.env.XCLUSTER_KEEP_LOGS) console.log(`# logs kept in ${dir}`)
  else rmSync(dir, {recursive: true, force: true})
})

function startDaemon(group: Group, node: string): Daemon {
  const proxies = group.proxies?.get(node)
  const endpoints = proxies ? proxies.map((p) => p.endpoint).join(',') : etcd.etcdFlag
  const d = new Daemon(node, [group.service], endpoints, join(dir, `${group.service}-${node}.err`)).start()
  group.daemons.set(node, d)
  return d
}

async function restart(group: Group, node: string): Promise<void> {
  await sleep(random(800))
  startDaemon(group, node)
}

/** The last lines of a file, on one line; `-` when there is none. */
const tail = (file: string): string => (existsSync(file) ? JSON.stringify(readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ')) : '-')

/** The one live instance of the group's service, once there is exactly one. */
const leaderNow = (group: Group): InstanceLife | undefined => monitor.only(group.service)

/** One fault, injected while the group has one leader; false when there was none to act on. */
async function trial(group: Group, fault: Fault): Promise<boolean> {
  // Generous: with etcd members crashing underneath (quorum lost now and then), a group goes 10-15 s
  // without a leader on this 2-core machine; what the trials check is safety, not that bound.
  const leader = await until(`a live instance of ${group.service}`, () => leaderNow(group), 60_000, 20).catch((err: Error) => {
    // Say what there was instead: none alive (and why the daemons think so), or several (an overlap).
    const alive = monitor.alive(group.service).map((l) => `${l.node}/${l.token}/pid ${l.pid}`)
    const daemons = [...group.daemons.values()].map((d) => `${d.node}${d.alive ? '' : ' (exited)'}: ${JSON.stringify(d.events.slice(-4).map((e) => e.event))}`)
    // What the instances themselves printed (a failed start, a monitor they could not reach).
    const outputs = NODES.map((n) => `${n}: ${tail(join(dir, `${group.service}-${n}.out`))}`)
    throw new Error(`${err.message}; alive: [${alive.join(', ')}]; daemons: ${daemons.join('; ')}; instance output: ${outputs.join('; ')}`)
  })
  await sleep(100 + random(400))
  if (leaderNow(group)?.token !== leader.token) return false
  const leaderDaemon = group.daemons.get(leader.node) as Daemon
  const followers = NODES.filter((n) => n !== leader.node)
  if (fault === 'partition-leader' && !group.proxies) fault = 'pause-leader'
  group.faults[fault] = (group.faults[fault] ?? 0) + 1
  const at = monoMs()
  const successor = async () => {
    const next = await until('a successor', () => monitor.lives.find((l) => l.service === group.service && BigInt(l.token) > BigInt(leader.token)), 20_000, 20).catch(() => undefined)
    if (next) (group.failovers[fault] ??= []).push(next.start - at)
  }
  switch (fault) {
    case 'kill-leader':
    case 'crash-leader':
    case 'term-leader': {
      const stopAt = monoMs()
      await leaderDaemon.stop(fault === 'kill-leader' ? 'SIGKILL' : fault === 'crash-leader' ? 'SIGABRT' : 'SIGTERM')
      if (fault === 'term-leader') termExits.push(monoMs() - stopAt)
      await successor()
      await restart(group, leader.node)
      break
    }
    case 'oom-group': {
      // A cgroup-wide OOM kill (memory.oom.group): serve, its guardian and the instance at once.
      try {
        process.kill(leader.pid, 'SIGKILL')
      } catch {
        // already gone: the kill below still takes serve and its guardian
      }
      await leaderDaemon.stop('SIGKILL')
      await successor()
      await restart(group, leader.node)
      break
    }
    case 'pause-leader':
    case 'pause-follower': {
      const node = fault === 'pause-leader' ? leader.node : pick(followers)
      const d = group.daemons.get(node) as Daemon
      d.signal('SIGSTOP')
      // A frozen leader stays frozen past its TTL: its guardian must have killed the instance.
      await sleep(fault === 'pause-leader' ? TTL * 1000 + 200 + random(TTL * 1500) : 200 + random(TTL * 2500))
      d.signal('SIGCONT')
      if (fault === 'pause-leader') await successor()
      await sleep(300)
      break
    }
    case 'partition-leader': {
      const proxies = group.proxies?.get(leader.node) ?? []
      for (const p of proxies) p.partition()
      await sleep(500 + random(TTL * 2500))
      for (const p of proxies) p.heal()
      await successor()
      await sleep(300)
      break
    }
    case 'kill-follower': {
      const node = pick(followers)
      await (group.daemons.get(node) as Daemon).stop('SIGKILL')
      await restart(group, node)
      break
    }
    case 'transfer':
    case 'resign': {
      await requestHandover(store, group.service, fault === 'transfer' ? pick(followers) : null, 5000).catch(() => undefined)
      await successor()
      break
    }
  }
  // The old leadership's token is dead once a newer one exists: etcd must refuse it.
  const newer = monitor.lives.some((l) => l.service === group.service && BigInt(l.token) > BigInt(leader.token))
  if (newer) {
    const refused = !(await guardedWrite(store, group.service, leader.token, [{kind: 'put', key: `${store.keys.electionPrefix(group.service)}stale-probe`, value: leader.token}]).catch(() => false))
    assert.ok(refused, `${group.service}: a write guarded by the old token ${leader.token} was accepted`)
  }
  return true
}

/** Crashes etcd members under the trials: one at a time mostly, sometimes two (quorum loss). */
async function etcdChaos(stop: () => boolean, counts: {member: number; quorum: number}): Promise<void> {
  let round = 0
  while (!stop()) {
    await sleep(1500 + random(2000))
    if (stop()) break
    round++
    const victims = round % 5 === 0 ? [0, 1, 2].sort(() => Math.random() - 0.5).slice(0, 2) : [random(3)]
    await Promise.all(victims.map((i) => etcd.members[i]?.stop('SIGKILL')))
    if (victims.length === 2) counts.quorum++
    else counts.member++
    await sleep(500 + random(1500))
    await Promise.all(victims.map((i) => etcd.members[i]?.start()))
    await waitHealthy(etcd.endpoints, 15_000)
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN

describe('fencing checker', () => {
  it(`over ${TRIALS} randomized fault trials, no two live service instances ever overlap, tokens never go back, stale writes are refused`, {timeout: 900_000}, async () => {
    const groups: Group[] = []
    for (let g = 0; g < GROUPS; g++) {
      const group: Group = {service: `chk${g}`, daemons: new Map(), faults: {}, failovers: {}}
      if (g === GROUPS - 1) group.proxies = new Map(await Promise.all(NODES.map(async (n) => [n, await proxiesFor(etcd.endpoints)] as const)))
      for (const n of NODES) startDaemon(group, n)
      groups.push(group)
    }
    let done = 0
    const started = Date.now()
    const counts = {member: 0, quorum: 0}
    const chaos = etcdChaos(() => done >= TRIALS, counts)
    let failed: unknown
    try {
      // Every group's loop ends (the first failure ends them all) before the daemons are stopped:
      // a trial still running would restart a daemon after the cleanup.
      const outcomes = await Promise.allSettled(
        groups.map(async (group) => {
          // The proxied group partitions its leader every third trial: left to chance, one group in
          // six would sometimes try none in a run.
          try {
            for (let n = 0; done < TRIALS && failed === undefined; n++) {
              if (await trial(group, group.proxies && n % 3 === 0 ? 'partition-leader' : pick(FAULTS))) done++
            }
          } catch (err) {
            failed ??= err
            throw err
          }
        }),
      )
      const rejected = outcomes.find((o) => o.status === 'rejected')
      if (rejected) throw failed ?? rejected.reason
    } finally {
      done = Math.max(done, TRIALS)
      await chaos
      for (const g of groups) for (const ps of g.proxies?.values() ?? []) for (const p of ps) p.heal()
      await waitHealthy(etcd.endpoints, 15_000)
      await Promise.all(groups.flatMap((g) => [...g.daemons.values()].map((d) => d.stop('SIGTERM').catch(() => d.stop('SIGKILL')))))
      for (const g of groups) for (const ps of g.proxies?.values() ?? []) for (const p of ps) await p.close()
    }

    let lives = 0
    for (const group of groups) {
      const list = monitor.lives.filter((l) => l.service === group.service).sort((a, b) => a.start - b.start)
      lives += list.length
      for (const [i, cur] of list.entries()) {
        const next = list[i + 1]
        if (!next) continue
        // A leader may start its service again within its term (it stopped it when it could not
        // prove its lease, then found its key still under its live lease): same node, same token,
        // never beside the earlier instance. Any other successor holds a newer token.
        const sameTerm = next.token === cur.token && next.node === cur.node && cur.end !== undefined && cur.end <= next.start
        assert.ok(
          BigInt(next.token) > BigInt(cur.token) || sameTerm,
          `${group.service}: token ${next.token} (${next.node}) started after ${cur.token} (${cur.node})${cur.end === undefined || cur.end > next.start ? ' while it was alive' : ''}`,
        )
      }
      const overlaps = monitor.overlaps(group.service)
      assert.deepEqual(overlaps.map(describeOverlap), [], `${group.service}: live instances overlapped`)
      assert.deepEqual(monitor.staleWrites(group.service), [], `${group.service}: a write with a deposed token was applied`)
    }
    const refused = groups.reduce((n, g) => n + monitor.refusedWrites(g.service), 0)
    const applied = monitor.writes.filter((w) => w.applied).length
    const seconds = ((Date.now() - started) / 1000).toFixed(0)
    console.log(
      `# checker: ${done} fault trials + ${counts.member} etcd member crashes + ${counts.quorum} quorum losses in ${seconds} s; ${lives} service instances, no two alive at once; ${applied} guarded writes applied in token order, ${refused} refused`,
    )
    const faults: Record<string, number> = {}
    for (const g of groups) for (const [f, n] of Object.entries(g.faults)) faults[f] = (faults[f] ?? 0) + n
    console.log(
      `#   faults: ${Object.entries(faults)
        .map(([f, n]) => `${f} ${n}`)
        .join(', ')}`,
    )
    const byFault: Record<string, number[]> = {}
    for (const g of groups) for (const [f, xs] of Object.entries(g.failovers)) (byFault[f] ??= []).push(...xs)
    for (const [f, xs] of Object.entries(byFault)) console.log(`#   ${f}: next instance after median ${median(xs).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms (n=${xs.length})`)
    if (termExits.length) console.log(`#   a SIGTERMed leader exited after median ${median(termExits).toFixed(0)} ms, max ${Math.max(...termExits).toFixed(0)} ms`)
    assert.ok(done >= TRIALS)
    assert.ok(lives >= TRIALS / 3, `only ${lives} service instances`)
    assert.ok((faults['partition-leader'] ?? 0) > 0, 'no partition was tried')
  })
})
