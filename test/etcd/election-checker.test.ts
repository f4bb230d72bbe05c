/**
 * The fencing checker: at least 200 randomized fault trials against real daemons
 * (`xcluster serve --elect`) and a real 3-member etcd, recording every (token, start, stop)
 * interval in which a daemon ran its guarded service, then asserting that no two intervals
 * overlap and that tokens only grow.
 *
 * To fit the suite, six independent groups (one service, three daemons each) run their trials
 * in parallel with a 1 s TTL (etcd's lease floor with 500 ms elections), while etcd members are
 * crashed and restarted underneath them, sometimes two at once (quorum loss).
 *
 * A frozen process (SIGSTOP) cannot act, so a freeze after which the daemon demoted itself
 * ends that leader's interval at the moment it froze; a daemon that is still a safe leader after
 * a short freeze keeps its interval. A SIGKILL ends it at the kill (the node died with its service).
 */
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {guardedWrite} from '../../src/lib/election/fence.js'
import {requestHandover} from '../../src/lib/election/status.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {Daemon, loggedService, readEvents, running, sleep, specBase, until, writeSpec, type ServiceEvent} from '../helpers/election-harness.js'
import {startEtcdCluster, waitHealthy, type EtcdCluster} from '../helpers/etcd-cluster.js'

const TRIALS = Number(process.env.XCLUSTER_CHECKER_TRIALS ?? 200)
const GROUPS = 6
const NODES = ['s1', 's2', 's3']
const FAULTS = ['kill-leader', 'term-leader', 'pause-leader', 'pause-follower', 'kill-follower', 'transfer', 'resign'] as const
type Fault = (typeof FAULTS)[number]

let etcd: EtcdCluster
let dir: string
let store: EtcdStore

interface Freeze {
  node: string
  from: number
  to: number
}

interface Group {
  service: string
  log: string
  daemons: Map<string, Daemon>
  /** Every daemon ever started, for the demotion events of woken leaders. */
  all: Daemon[]
  crashes: {node: string; at: number}[]
  freezes: Freeze[]
  failovers: Partial<Record<Fault, number[]>>
}

const random = (n: number): number => Math.floor(Math.random() * n)
const pick = <T>(xs: readonly T[]): T => xs[random(xs.length)] as T

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xct-election-checker-'))
  etcd = await startEtcdCluster(3)
  const file = join(dir, 'spec.yaml')
  writeSpec(file, specBase(ROOT), Array.from({length: GROUPS}, (_, g) => loggedService(`chk${g}`, join(dir, `chk${g}.log`), 1)).join(''))
  const applied = await xcluster(['config', 'apply', '-f', file, '--yes'], {env: {XCLUSTER_ETCD: etcd.etcdFlag}})
  assert.equal(applied.code, 0, applied.stderr)
  store = new EtcdStore({endpoints: etcd.endpoints, cluster: 'xcluster'})
})

after(async () => {
  await store?.close()
  await etcd?.destroy()
  if (process.env.XCLUSTER_KEEP_LOGS) console.log(`# logs kept in ${dir}`)
  else rmSync(dir, {recursive: true, force: true})
})

/** The intervals of activity per (node, token), cut at crashes and at freezes that ended in a demotion. */
function intervals(group: Group): {node: string; token: string; start: number; end: number}[] {
  const events = readEvents(group.log)
  const out = []
  for (const s of events.filter((e) => e.kind === 'start')) {
    const stop = events.find((e) => e.kind === 'stop' && e.node === s.node && e.token === s.token && e.at >= s.at)
    let end = stop?.at ?? Infinity
    for (const c of group.crashes) if (c.node === s.node && c.at >= s.at && c.at < end) end = c.at
    for (const f of group.freezes) {
      if (f.node !== s.node || f.from < s.at || f.from >= end) continue
      const demotedAfterWake = group.all.some((d) => d.node === s.node && d.events.some((e) => e.event === 'demoted' && e.token === s.token && e.receivedAt >= f.to))
      if (demotedAfterWake) end = f.from
    }
    out.push({node: s.node, token: s.token, start: s.at, end})
  }
  return out.sort((a, b) => a.start - b.start)
}

/** The one service running now; a start whose node crashed later is not running. */
function leaderNow(group: Group): ServiceEvent | undefined {
  const r = running(readEvents(group.log)).filter((s) => !group.crashes.some((c) => c.node === s.node && c.at >= s.at))
  return r.length === 1 ? r[0] : undefined
}

async function restart(group: Group, node: string): Promise<void> {
  await sleep(random(800))
  const d = new Daemon(node, [group.service], etcd.etcdFlag, join(dir, `${group.service}-${node}.err`)).start()
  group.daemons.set(node, d)
  group.all.push(d)
}

async function trial(group: Group, fault: Fault): Promise<void> {
  const leader = await until(`a leader of ${group.service}`, () => leaderNow(group), 20_000, 20)
  await sleep(100 + random(400))
  const current = leaderNow(group)
  if (!current || current.token !== leader.token) return
  const leaderDaemon = group.daemons.get(leader.node) as Daemon
  const followers = NODES.filter((n) => n !== leader.node)
  const at = Date.now()
  const record = () => {
    const next = readEvents(group.log).find((e) => e.kind === 'start' && BigInt(e.token) > BigInt(leader.token))
    if (next) (group.failovers[fault] ??= []).push(next.at - at)
  }
  switch (fault) {
    case 'kill-leader': {
      group.crashes.push({node: leader.node, at: Date.now()})
      await leaderDaemon.stop('SIGKILL')
      await until('a successor', () => leaderNow(group)?.token !== leader.token && leaderNow(group), 20_000, 20).catch(() => undefined)
      record()
      await restart(group, leader.node)
      break
    }
    case 'term-leader': {
      await leaderDaemon.stop('SIGTERM')
      await until('a successor', () => leaderNow(group)?.token !== leader.token && leaderNow(group), 20_000, 20).catch(() => undefined)
      record()
      await restart(group, leader.node)
      break
    }
    case 'pause-leader':
    case 'pause-follower': {
      const node = fault === 'pause-leader' ? leader.node : pick(followers)
      const d = group.daemons.get(node) as Daemon
      const from = Date.now()
      d.signal('SIGSTOP')
      await sleep(200 + random(2300))
      const to = Date.now()
      d.signal('SIGCONT')
      group.freezes.push({node, from, to})
      await sleep(300)
      break
    }
    case 'kill-follower': {
      const node = pick(followers)
      group.crashes.push({node, at: Date.now()})
      await (group.daemons.get(node) as Daemon).stop('SIGKILL')
      await restart(group, node)
      break
    }
    case 'transfer':
    case 'resign': {
      await requestHandover(store, group.service, fault === 'transfer' ? pick(followers) : null, 5000).catch(() => undefined)
      record()
      break
    }
  }
  // The old leadership's token is dead once a newer one exists: etcd must refuse it.
  const newer = readEvents(group.log).some((e) => BigInt(e.token) > BigInt(leader.token))
  if (newer) {
    const refused = !(await guardedWrite(store, group.service, leader.token, [{kind: 'put', key: `${store.keys.electionPrefix(group.service)}probe`, value: leader.token}]).catch(() => false))
    assert.ok(refused, `${group.service}: a write guarded by the old token ${leader.token} was accepted`)
  }
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
  it(`over ${TRIALS} randomized fault trials, no two service intervals overlap and tokens only grow`, {timeout: 600_000}, async () => {
    const groups: Group[] = Array.from({length: GROUPS}, (_, g) => {
      const service = `chk${g}`
      const daemons = new Map(NODES.map((n) => [n, new Daemon(n, [service], etcd.etcdFlag, join(dir, `${service}-${n}.err`)).start()]))
      return {service, log: join(dir, `${service}.log`), daemons, all: [...daemons.values()], crashes: [], freezes: [], failovers: {}}
    })
    let done = 0
    const started = Date.now()
    const counts = {member: 0, quorum: 0}
    const chaos = etcdChaos(() => done >= TRIALS, counts)
    try {
      await Promise.all(
        groups.map(async (group) => {
          while (done < TRIALS) {
            await trial(group, pick(FAULTS))
            done++
          }
        }),
      )
    } finally {
      done = Math.max(done, TRIALS)
      await chaos
      await waitHealthy(etcd.endpoints, 15_000)
      await Promise.all(groups.flatMap((g) => [...g.daemons.values()].map((d) => d.stop('SIGTERM'))))
    }

    let total = 0
    for (const group of groups) {
      const list = intervals(group)
      total += list.length
      for (const [i, cur] of list.entries()) {
        assert.ok(Number.isFinite(cur.end), `${group.service}: ${cur.node} token ${cur.token} never stopped`)
        const next = list[i + 1]
        if (!next) continue
        assert.ok(BigInt(next.token) > BigInt(cur.token), `${group.service}: token ${next.token} (${next.node}) after ${cur.token} (${cur.node})`)
        assert.ok(cur.end <= next.start, `${group.service}: ${cur.node} (token ${cur.token}) ran until ${cur.end.toFixed(1)}, ${next.node} (token ${next.token}) started at ${next.start.toFixed(1)}: overlap ${(cur.end - next.start).toFixed(1)} ms`)
      }
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(0)
    console.log(`# checker: ${done} daemon fault trials + ${counts.member} etcd member crashes + ${counts.quorum} quorum losses in ${seconds} s; ${total} leadership intervals, no overlap, tokens strictly growing`)
    const byFault: Record<string, number[]> = {}
    for (const g of groups) for (const [f, xs] of Object.entries(g.failovers)) (byFault[f] ??= []).push(...xs)
    for (const [f, xs] of Object.entries(byFault)) console.log(`#   ${f}: next leader after median ${median(xs).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms (n=${xs.length})`)
    assert.ok(done >= TRIALS)
    assert.ok(total >= TRIALS / 3, `only ${total} leadership intervals`)
  })
})
