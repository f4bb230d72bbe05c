/**
 * Leader election against a real 3-member etcd cluster and real daemons: three
 * `xcluster serve --elect` processes (the built CLI) whose guarded service is a pair of
 * start/stop commands that log (token, time). Faults are real signals to real processes.
 */
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {EtcdStore} from '../../src/lib/etcd/store.js'
import {guardedWrite} from '../../src/lib/election/fence.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {Daemon, loggedService, onStableEtcd, readEvents, running, sleep, specBase, until, writeSpec} from '../helpers/election-harness.js'
import {startEtcdCluster, waitHealthy, type EtcdCluster} from '../helpers/etcd-cluster.js'

const TTL = 2
const NODES = ['s1', 's2', 's3']
const SERVICES = ['kill', 'pause', 'term', 'member', 'quorum', 'ops']

let etcd: EtcdCluster
let dir: string
let store: EtcdStore
const daemons: Daemon[] = []
const log = (service: string) => join(dir, `${service}.log`)

function startDaemons(service: string): Daemon[] {
  const group = NODES.map((n) => new Daemon(n, [service], etcd.etcdFlag, join(dir, `${service}-${n}.err`)).start())
  daemons.push(...group)
  return group
}

/** Waits for exactly one running service and returns it with its daemon. */
async function leaderOf(service: string, group: Daemon[]) {
  const event = await until(`a leader for ${service}`, () => {
    const r = running(readEvents(log(service)))
    return r.length === 1 ? r[0] : undefined
  })
  return {event, daemon: group.find((d) => d.node === event.node) as Daemon}
}

async function etcdLeader(): Promise<number> {
  for (const [i, m] of etcd.members.entries()) {
    if (!m.running) continue
    const res = await fetch(`${m.endpoint}/v3/maintenance/status`, {method: 'POST', body: '{}'}).catch(() => undefined)
    if (!res?.ok) continue
    const body = (await res.json()) as {leader: string; header: {member_id: string}}
    if (body.leader === body.header.member_id) return i
  }
  throw new Error('no etcd leader')
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xct-election-'))
  etcd = await startEtcdCluster(3)
  const file = join(dir, 'spec.yaml')
  writeSpec(file, specBase(ROOT), SERVICES.map((s) => loggedService(s, log(s), TTL)).join(''))
  const applied = await xcluster(['config', 'apply', '-f', file, '--yes'], {env: {XCLUSTER_ETCD: etcd.etcdFlag}})
  assert.equal(applied.code, 0, applied.stderr)
  store = new EtcdStore({endpoints: etcd.endpoints, cluster: 'xcluster'})
})

after(async () => {
  await Promise.all(daemons.map((d) => d.stop('SIGKILL')))
  await store?.close()
  await etcd?.destroy()
  rmSync(dir, {recursive: true, force: true})
})

describe('election with real daemons and a 3-member etcd', {concurrency: false}, () => {
  it('SIGKILL of the leader: a new leader acts within TTL + 0.5 s, with a larger token', async () => {
    const group = startDaemons('kill')
    const dead = new Set<string>()
    const trial = async () => {
      const first = await until('a leader', () => {
        const r = running(readEvents(log('kill'))).filter((e) => !dead.has(e.token))
        return r.length === 1 ? r[0] : undefined
      })
      await sleep(300)
      const killedAt = Date.now()
      group.find((d) => d.node === first.node)!.signal('SIGKILL')
      dead.add(first.token)
      const next = await until('a new leader', () => readEvents(log('kill')).find((e) => e.kind === 'start' && BigInt(e.token) > BigInt(first.token)), 5000)
      console.log(`# crash failover: ${(next.at - killedAt).toFixed(0)} ms (TTL ${TTL} s)`)
      return {first, next, failoverMs: next.at - killedAt}
    }
    const {first, next, failoverMs} = await onStableEtcd(etcd.endpoints, trial, async ({first: killed}) => {
      const i = group.findIndex((d) => d.node === killed.node)
      group[i] = new Daemon(killed.node, ['kill'], etcd.etcdFlag, join(dir, `kill-${killed.node}-again.err`)).start()
      daemons.push(group[i]!)
    })
    assert.ok(failoverMs <= TTL * 1000 + 500, `failover took ${failoverMs} ms`)
    assert.ok(failoverMs > 0)
    assert.notEqual(next.node, first.node)
    assert.ok(BigInt(next.token) > BigInt(first.token), 'tokens grow')
  })

  it('SIGSTOP past the TTL, then SIGCONT: the old leader stops its service and its guarded writes are refused', async () => {
    const group = startDaemons('pause')
    const first = await leaderOf('pause', group)
    await sleep(300)
    const frozenAt = Date.now()
    first.daemon.signal('SIGSTOP')
    const next = await until('a successor', () => readEvents(log('pause')).find((e) => e.kind === 'start' && e.node !== first.event.node), 5000)
    assert.ok(next.at - frozenAt <= TTL * 1000 + 500)
    await sleep(500)
    const wokeAt = Date.now()
    first.daemon.signal('SIGCONT')
    const stop = await until('the woken leader to stop its service', () =>
      readEvents(log('pause')).find((e) => e.kind === 'stop' && e.node === first.event.node && e.token === first.event.token),
    )
    assert.ok(stop.at >= wokeAt - 5, 'it stopped only after waking')
    // It never acted again: no start after the freeze, and the successor still leads alone.
    await sleep(500)
    const events = readEvents(log('pause'))
    assert.deepEqual(events.filter((e) => e.node === first.event.node && e.kind === 'start').map((e) => e.token), [first.event.token])
    assert.deepEqual(running(events).map((e) => e.node), [next.node])
    const demoted = first.daemon.events.find((e) => e.event === 'demoted')
    assert.ok(demoted, 'the daemon logged its demotion')
    // A write guarded by its token is refused by etcd, and writes nothing.
    const key = `${store.keys.electionPrefix('pause')}probe`
    assert.equal(await guardedWrite(store, 'pause', first.event.token, [{kind: 'put', key, value: 'stale'}]), false)
    assert.equal(await store.getJson(key), undefined)
    assert.equal(await guardedWrite(store, 'pause', next.token, [{kind: 'put', key, value: 'fresh'}]), true)
  })

  it('SIGTERM of the leader: it resigns and a peer takes over in under 200 ms', async () => {
    const group = startDaemons('term')
    const first = await leaderOf('term', group)
    await sleep(500)
    const signalledAt = Date.now()
    first.daemon.signal('SIGTERM')
    const next = await until('a new leader', () => readEvents(log('term')).find((e) => e.kind === 'start' && e.node !== first.event.node), 3000)
    const stop = readEvents(log('term')).find((e) => e.kind === 'stop' && e.node === first.event.node) as {at: number}
    console.log(`# graceful handover: ${(next.at - signalledAt).toFixed(0)} ms from SIGTERM, ${(next.at - stop.at).toFixed(0)} ms from the old stop`)
    assert.ok(stop.at <= next.at, 'the old leader stopped before the new one started')
    assert.ok(next.at - signalledAt < 200, `handover took ${next.at - signalledAt} ms`)
    await first.daemon.wait()
    assert.equal(first.daemon.proc.exitCode, 0)
  })

  it('loss of one etcd member (the raft leader): the leader keeps leading, handovers still work', async () => {
    const group = startDaemons('member')
    const first = await leaderOf('member', group)
    await sleep(300)
    const victim = etcd.members[await etcdLeader()]
    await victim.stop('SIGKILL')
    await sleep(TTL * 1000 * 2)
    const events = readEvents(log('member'))
    assert.deepEqual(events.map((e) => `${e.kind} ${e.node}`), [`start ${first.event.node}`], 'no leadership change')
    first.daemon.signal('SIGTERM')
    const next = await until('a new leader', () => readEvents(log('member')).find((e) => e.kind === 'start' && e.node !== first.event.node), 3000)
    assert.ok(BigInt(next.token) > BigInt(first.event.token))
    await victim.start()
    await waitHealthy(etcd.endpoints)
  })

  it('loss of quorum: the leader demotes itself within the TTL; nobody leads until quorum returns', async () => {
    await waitHealthy(etcd.endpoints)
    const group = startDaemons('quorum')
    const first = await leaderOf('quorum', group)
    await sleep(500)
    const lostAt = Date.now()
    const [a, b] = etcd.members.slice(0, 2)
    await Promise.all([a.stop('SIGKILL'), b.stop('SIGKILL')])
    const stop = await until('the leader to demote', () => readEvents(log('quorum')).find((e) => e.kind === 'stop'), TTL * 1000 + 1500)
    console.log(`# quorum lost: leader stopped its service after ${(stop.at - lostAt).toFixed(0)} ms`)
    // If the surviving member led raft it keeps renewing leases until it notices the lost quorum
    // (one election timeout, 500 ms here): the TTL counts from the last renewal. The daemon's own
    // account says whether it stopped before its lease could expire.
    assert.ok(stop.at - lostAt < TTL * 1000 + 500, `demoted after ${stop.at - lostAt} ms`)
    // The daemon logs `demoted` once its stop command returned: wait for the line to arrive.
    const demoted = await until('the demoted event', () => first.daemon.events.find((e) => e.event === 'demoted'), 3000)
    assert.equal(demoted.late, false, `stopped after the lease could expire: ${JSON.stringify(demoted)}`)
    await sleep(TTL * 1000 * 2)
    assert.deepEqual(running(readEvents(log('quorum'))), [], 'nobody leads without quorum')
    const back = readEvents(log('quorum')).length
    await Promise.all([a.start(), b.start()])
    await waitHealthy(etcd.endpoints)
    const again = await until('a leader after quorum returns', () => running(readEvents(log('quorum')))[0], 10_000)
    assert.ok(readEvents(log('quorum')).length > back)
    assert.ok(BigInt(again.token) > BigInt(first.event.token))
  })
})
