/**
 * A member's machine dies (its link cut: the kernel gives up on ARP after ~3 s, as on real
 * hardware): the client must not send calls to it. Three etcd members and a client, each in a
 * network namespace of its own on a bridge; the client runs where an operator's CLI would.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

// The pool's member order, made deterministic (last endpoint first) so the frozen member is tried first.
import {ConnectionPool} from 'etcd3/lib/connection-pool.js'

import {inspectEtcdCluster} from '../../src/lib/etcd/maintenance.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {startEtcdCluster, type EtcdCluster} from '../helpers/etcd-cluster.js'
import {NamespaceLan} from '../helpers/netns-lan.js'
import {requireTool} from '../helpers/tools.js'

const ROOT = join(import.meta.dirname, '..', '..')
const lan = new NamespaceLan('xcmg-', [
  {name: 'm1', address: '10.251.0.1'},
  {name: 'm2', address: '10.251.0.2'},
  {name: 'm3', address: '10.251.0.3'},
  {name: 'cl', address: '10.251.0.10'},
])

/** Runs a command in the client's namespace; its exit code, output and wall time. */
function inClient(args: string[]): Promise<{code: number; out: string; ms: number}> {
  const started = Date.now()
  return new Promise((resolve) =>
    execFile('ip', ['netns', 'exec', lan.namespace('cl'), ...args], {cwd: ROOT, timeout: 60_000}, (err, stdout, stderr) =>
      resolve({code: err ? ((err as {code?: number}).code ?? 1) : 0, out: `${stdout}${stderr}`, ms: Date.now() - started}),
    ),
  )
}

describe("etcd client failover: a dead member's machine is not waited on", () => {
  let cluster: EtcdCluster

  before(async () => {
    requireTool('ip', 'iproute2')
    lan.setUp()
    cluster = await startEtcdCluster(
      3,
      undefined,
      ['m1', 'm2', 'm3'].map((m, i) => ({namespace: lan.namespace(m), address: `10.251.0.${i + 1}`})),
    )
  })

  after(async () => {
    await cluster?.destroy()
    lan.tearDown()
  })

  it('with m1 cut off, every call is answered by m2 or m3 without paying for m1', {timeout: 120_000}, async () => {
    lan.partition('m1')
    // The scenario is real: a connect to m1 from the client takes the kernel's ARP give-up.
    const connect = await inClient(['bash', '-c', 'exec 3<>/dev/tcp/10.251.0.1/2379'])
    assert.notEqual(connect.code, 0, 'm1 still answers a connect')
    assert.ok(connect.ms >= 2500, `a connect to the dead member failed after ${connect.ms} ms, not after ARP gave up`)

    // Twenty sequential reads in one process, three processes: none may wait on m1.
    for (let run = 0; run < 3; run++) {
      const calls = await inClient([process.execPath, '--import', 'tsx', 'test/helpers/etcd-calls.ts', cluster.etcdFlag, '20'])
      assert.equal(calls.code, 0, calls.out)
      const {took} = JSON.parse(calls.out.trim().split('\n').at(-1) as string) as {took: number[]}
      assert.equal(took.length, 20)
      assert.ok(Math.max(...took) < 1500, `a call waited on the dead member: ${took.join(', ')} ms`)
    }

    // And the operator's command, as run: it answers, and exits without waiting on m1's probe.
    const list = await inClient([process.execPath, 'bin/run.js', 'node', 'list', '--json', '--etcd', cluster.etcdFlag, '--cluster', 'gate'])
    assert.equal(list.code, 0, list.out)
    assert.deepEqual(JSON.parse(list.out), [])
    assert.ok(list.ms < connect.ms, `node list took ${list.ms} ms, as long as a connect to the dead member (${connect.ms} ms)`)
  })

  it('m1 comes back and is used again; a cluster with every member gone is reported unreachable', {timeout: 120_000}, async () => {
    lan.heal('m1')
    // The client's kernel still holds m1's failed ARP entry for a while (a connect fails at once
    // with EHOSTUNREACH): wait, as an operator would, until m1 answers a connect again. What is
    // checked is that the client then uses it, not how soon the kernel forgets.
    const deadline = Date.now() + 30_000
    while ((await inClient(['bash', '-c', 'exec 3<>/dev/tcp/10.251.0.1/2379'])).code !== 0) {
      assert.ok(Date.now() < deadline, 'm1 did not answer a connect within 30 s of its link coming back')
      await new Promise((r) => setTimeout(r, 250))
    }
    const calls = await inClient([process.execPath, '--import', 'tsx', 'test/helpers/etcd-calls.ts', '10.251.0.1:2379,10.251.0.9:2379', '5'])
    assert.equal(calls.code, 0, `m1 (back) did not answer: ${calls.out}`)
    const gone = await inClient([process.execPath, 'bin/run.js', 'node', 'list', '--json', '--etcd', '10.251.0.8:2379,10.251.0.9:2379', '--cluster', 'gate'])
    assert.notEqual(gone.code, 0)
    assert.match(gone.out, /ETCD_UNREACHABLE|unreachable/)
  })
})

describe('a member that stops answering (its process frozen): one bounded call fails, later calls skip it', () => {
  let cluster: EtcdCluster
  let frozen: number | undefined

  before(async () => {
    cluster = await startEtcdCluster(3)
  })

  after(async () => {
    if (frozen) process.kill(frozen, 'SIGCONT')
    ConnectionPool.deterministicOrder = false
    await cluster?.destroy()
  })

  it("a daemon's bounded commit that met the frozen member first fails within its bound; the next applies at once on another member", {timeout: 60_000}, async () => {
    // Freeze a follower (freezing the raft leader would add an election to the story).
    const state = await inspectEtcdCluster({endpoints: cluster.endpoints, cluster: 'gate'})
    const follower = cluster.members.find((m) => state.members.some((s) => s.endpoint === m.endpoint && !s.isLeader)) as (typeof cluster.members)[number]
    const endpoints = [...cluster.endpoints.filter((e) => e !== follower.endpoint), follower.endpoint]
    ConnectionPool.deterministicOrder = true
    const store = new EtcdStore({endpoints, cluster: 'gate'})
    try {
      await store.put(store.keys.spec(), {v: 0})
      frozen = follower.pid
      process.kill(frozen as number, 'SIGSTOP')
      // It still accepts connections (the kernel does), so it counts as up until a call times out.
      // timeoutMs bounds the whole commit, retries included: an election step's budget is the
      // daemon's clock, not etcd's (CommitOptions).
      let started = Date.now()
      await assert.rejects(store.transaction().put(store.keys.spec(), {v: 1}).commit({timeoutMs: 1000}), /DEADLINE_EXCEEDED|deadline/i)
      const boundMs = Date.now() - started
      assert.ok(boundMs >= 1000 && boundMs < 2500, `the bounded commit took ${boundMs} ms`)
      started = Date.now()
      assert.equal(await store.transaction().put(store.keys.spec(), {v: 2}).commit({timeoutMs: 1000}), true)
      assert.ok(Date.now() - started < 1000, `the next commit waited on the frozen member again (${Date.now() - started} ms)`)
      assert.deepEqual((await store.getJson(store.keys.spec()))?.value, {v: 2})
    } finally {
      await store.close()
    }
  })
})
