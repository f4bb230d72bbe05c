/**
 * A network partition, the case fencing exists for: three nodes (network namespaces of this
 * test's own, bridged), each with an etcd member and an `xcluster serve` daemon on its address.
 * Cutting the leader's node off the bridge leaves its daemon talking to a member without quorum:
 * it must stop its service before the majority can elect a successor, and rejoin as a follower.
 */
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {ElectionState} from '../../src/lib/election/state.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {Daemon, loggedService, readEvents, running, sleep, specBase, until, writeSpec} from '../helpers/election-harness.js'
import {startEtcdCluster, type EtcdCluster} from '../helpers/etcd-cluster.js'
import {NamespaceLan} from '../helpers/netns-lan.js'

const TTL = 2
const HOSTS = [
  {name: 's1', address: '10.0.0.2'},
  {name: 's2', address: '10.0.0.3'},
  {name: 's3', address: '10.0.0.4'},
]
const lan = new NamespaceLan('xct-elp-', HOSTS)
const wrap = (host: string) => ['ip', 'netns', 'exec', lan.namespace(host)]

let etcd: EtcdCluster
let dir: string
const daemons: Daemon[] = []
const log = () => join(dir, 'part.log')

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xct-elp-'))
  lan.setUp()
  etcd = await startEtcdCluster(
    3,
    {heartbeatMs: 50, electionMs: 500},
    HOSTS.map((h) => ({namespace: lan.namespace(h.name), address: h.address})),
  )
  const file = join(dir, 'spec.yaml')
  writeSpec(file, specBase(ROOT), loggedService('part', log(), TTL))
  const applied = await xcluster(['config', 'apply', '-f', file, '--yes'], {env: {XCLUSTER_ETCD: etcd.etcdFlag}, wrap: wrap('s1')})
  assert.equal(applied.code, 0, applied.stderr)
})

after(async () => {
  await Promise.all(daemons.map((d) => d.stop('SIGKILL')))
  await etcd?.destroy()
  lan.tearDown()
  if (process.env.XCLUSTER_KEEP_LOGS) console.log(`# logs kept in ${dir}`)
  else rmSync(dir, {recursive: true, force: true})
})

describe('election across a network partition', () => {
  it('the cut-off leader stops before the majority elects a successor, then rejoins as a follower', async () => {
    for (const h of HOSTS) daemons.push(new Daemon(h.name, ['part'], etcd.etcdFlag, join(dir, `${h.name}.err`), wrap(h.name)).start())
    const leader = await until(
      'a leader',
      () => {
        const r = running(readEvents(log()))
        return r.length === 1 ? r[0] : undefined
      },
      15_000,
    )
    await sleep(1000)
    const cutAt = Date.now()
    lan.partition(leader.node)
    const stop = await until('the cut-off leader to stop', () => readEvents(log()).find((e) => e.kind === 'stop' && e.token === leader.token), TTL * 1000 + 1000)
    const next = await until('a successor on the majority side', () => readEvents(log()).find((e) => e.kind === 'start' && BigInt(e.token) > BigInt(leader.token)), 10_000)
    console.log(`# partition: old leader stopped after ${(stop.at - cutAt).toFixed(0)} ms, successor started after ${(next.at - cutAt).toFixed(0)} ms`)
    // etcd's raft leader renews leases by itself: if the cut-off node's member led raft, it keeps
    // acknowledging keepalives until it notices it lost the quorum (one election timeout, 0.5 s
    // here), and the majority's new raft leader extends every lease by a TTL when promoted. So the
    // bound is TTL + election timeout after the cut, and never after the successor starts.
    assert.ok(stop.at - cutAt < TTL * 1000 + 1000, `the cut-off leader ran ${stop.at - cutAt} ms past the cut`)
    assert.ok(stop.at <= next.at, 'no overlap: stop before the successor starts')
    assert.notEqual(next.node, leader.node)

    // The operator on the majority side, pointed at the members it can reach.
    const majority = HOSTS.find((h) => h.name !== leader.node)?.name as string
    const reachable = HOSTS.filter((h) => h.name !== leader.node)
      .map((h) => `http://${h.address}:2379`)
      .join(',')
    // Followers whose watch or calls hit the cut-off member see the change a step later: the
    // views converge, and then check finds no disagreement.
    const convergeFrom = Date.now()
    for (;;) {
      const checked = await xcluster(['election', 'check', '--json'], {env: {XCLUSTER_ETCD: reachable}, wrap: wrap(majority)})
      if (checked.code === 0) break
      if (Date.now() - convergeFrom > 10_000) assert.fail(`views did not converge: ${checked.stdout}`)
      await sleep(200)
    }
    console.log(`# views agreed ${Date.now() - convergeFrom} ms after the successor started`)

    lan.heal(leader.node)
    const deadline = Date.now() + 10_000
    let state: ElectionState | undefined
    for (;;) {
      const res = await xcluster(['election', 'list', '--json'], {env: {XCLUSTER_ETCD: reachable}, wrap: wrap(majority)})
      state = res.json<ElectionState[]>().find((s) => s.service === 'part')
      if (state?.candidates.length === 3) break
      if (Date.now() > deadline) throw new Error(`candidates after healing: ${state?.candidates.join(',')}`)
      await sleep(200)
    }
    assert.equal(state?.leader, next.node)
    assert.equal(state?.token, next.token)
    assert.deepEqual(
      running(readEvents(log())).map((e) => e.node),
      [next.node],
    )
  })
})
