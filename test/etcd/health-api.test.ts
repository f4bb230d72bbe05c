/**
 * `xcluster serve --http`: the health API of real serve daemons (the built CLI) against real
 * etcd. /leader/SERVICE follows the campaigns, /health follows the cluster, /metrics is parsed by
 * Prometheus' own promtool, and a burst of probes is one etcd read.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {request} from 'node:https'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {after, before, describe, it} from 'node:test'

import {createCa, issueCertificate} from '../../src/lib/certs/authority.js'
import {nodeTlsFiles} from '../../src/lib/certs/paths.js'
import {saveIssuedCertificate} from '../../src/lib/certs/store.js'
import type {Lease} from '../../src/lib/dhcp/lease.js'
import type {LeaderRecord, ViewRecord} from '../../src/lib/election/records.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {settings} from '../../src/lib/settings.js'
import type {ClusterStatus, HealthReport, LocalLeadership, ServiceStatus} from '../../src/lib/health/index.js'
import type {NodeRecord, NodeSummary} from '../../src/lib/nodes/record.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {startEtcdRetrying} from '../helpers/etcd-cluster.js'
import type {TestEtcd} from '../helpers/etcd.js'
import {Daemon, specBase, until, writeSpec} from '../helpers/election-harness.js'
import {createTestPki, type TestPki} from '../helpers/pki.js'
import {requireTool} from '../helpers/tools.js'
import {FAILED_RUN} from '../helpers/runs.js'

const NODES = ['s1', 's2', 's3', 's4', 'c1', 'f1']
const ELECTED = ['s1', 's2', 's3']
const SERVICES = "  - {name: web, ttl: 2, start: 'true', stop: 'true', nodes: [s1, s2, s3]}\n"

let dir: string
let etcd: TestEtcd
let store: EtcdStore
let pki: TestPki
const daemons = new Map<string, {daemon: Daemon; port: number}>()

/** A real `xcluster serve`, with the harness's arguments and then `extra`. */
async function startServe(node: string, services: string[], extra: string[]): Promise<{daemon: Daemon; port: number}> {
  const daemon = new Daemon(node, services, etcd.endpoint, join(dir, `${node}.log`), [], {}, extra).start()
  const listening = await until(
    `${node}'s health API to listen`,
    () => daemon.events.find((e) => e.event === 'http-listening') ?? (!daemon.alive && new Error(`serve ${node} exited: ${readLog(node)}`)),
    15_000,
  )
  if (listening instanceof Error) throw listening
  return {daemon, port: Number(listening.port)}
}

const readLog = (node: string): string => (existsSync(join(dir, `${node}.log`)) ? readFileSync(join(dir, `${node}.log`), 'utf8') : '')

async function startElected(node: string): Promise<void> {
  daemons.set(node, await startServe(node, ['web'], ['--http', '127.0.0.1:0']))
}

interface Reply {
  status: number
  text: string
  headers: Headers
}

async function http(port: number, path: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, init)
  return {status: res.status, text: await res.text(), headers: res.headers}
}

const port = (node: string): number => daemons.get(node)!.port
const leaderStatus = async (node: string): Promise<number> => (await http(port(node), '/leader/web')).status

/** etcd's word on who leads web, and with which token. */
async function etcdLeader(): Promise<{node: string; token: string} | undefined> {
  const kv = await store.getJson<LeaderRecord>(store.keys.electionLeader('web'))
  return kv ? {node: kv.value.node, token: kv.createRevision} : undefined
}

/** Ranges etcd has served so far (its own counter, transactions' reads included). */
async function rangesServed(): Promise<number> {
  const text = await (await fetch(`${etcd.endpoint}/metrics`)).text()
  const n = Number(/^etcd_mvcc_range_total (\d+)/m.exec(text)?.[1])
  assert.ok(Number.isFinite(n), 'etcd reports etcd_mvcc_range_total')
  return n
}

async function patchNode(name: string, patch: Partial<NodeRecord>): Promise<void> {
  const n = await store.getJson<NodeRecord>(store.keys.node(name))
  const next: NodeRecord = {...n!.value, ...patch}
  if (patch.reason === undefined) delete next.reason
  await store.put(store.keys.node(name), next)
}

/** Samples by `name{label="v",...}` (labels sorted), from text promtool accepted. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    assert.ok(m, `not a sample line: ${line}`)
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => `${k}="${v}"`).sort()
    out.set(`${m[1]}{${labels.join(',')}}`, Number(m[3]))
  }
  return out
}

/** /metrics, checked by `promtool check metrics` (exit 0, no lint finding), as samples. */
async function scrape(node: string): Promise<Map<string, number>> {
  const res = await http(port(node), '/metrics')
  assert.equal(res.status, 200, res.text)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  const promtool = requireTool('promtool', 'prometheus')
  try {
    const out = execFileSync(promtool, ['check', 'metrics'], {input: res.text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe']})
    assert.equal(out.trim(), '', `promtool: ${out}`)
  } catch (err) {
    const e = err as {status?: number; stdout?: string; stderr?: string}
    assert.fail(`promtool check metrics exited ${e.status}: ${e.stdout}${e.stderr}\n--- metrics ---\n${res.text}`)
  }
  return samples(res.text)
}

const lease = (ip: string, i: number, state: Lease['state'] = 'bound'): Lease => ({
  ip,
  mac: `02:58:43:00:09:${i.toString(16).padStart(2, '0')}`,
  type: 'compute',
  state,
  expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  grantedBy: '10.0.0.2',
})

const failedRun = FAILED_RUN

/** The one elected daemon whose /leader/web is 200, once the others all say 503. */
async function soleLeader(candidates: string[], timeoutMs = 15_000): Promise<string> {
  return until(
    'exactly one 200 from /leader/web',
    async () => {
      const codes = await Promise.all(candidates.map(async (n) => [n, await leaderStatus(n)] as const))
      const leaders = codes.filter(([, c]) => c === 200)
      return leaders.length === 1 && codes.every(([, c]) => c === 200 || c === 503) ? leaders[0]![0] : undefined
    },
    timeoutMs,
    50,
  )
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xct-health-api-'))
  // Without --http-cert a core node serves its own server certificate: this host must have none,
  // or every daemon here would speak HTTPS.
  assert.ok(!existsSync(nodeTlsFiles.serverCert), `${nodeTlsFiles.serverCert} exists on this host: serve --http would use it`)
  etcd = await startEtcdRetrying()
  store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
  pki = await createTestPki(join(dir, 'pki'))
  const file = join(dir, 'spec.yaml')
  writeSpec(file, specBase(ROOT), SERVICES)
  const applied = await xcluster(['config', 'apply', '-f', file, '--yes', '--etcd', etcd.endpoint])
  assert.equal(applied.code, 0, applied.stderr)
  for (const n of NODES) await patchNode(n, {state: 'ready'})
  for (const [i, ip] of ['10.0.0.51', '10.0.0.52', '10.0.0.53'].entries()) await store.put(store.keys.lease(ip), lease(ip, i))
  await store.put(store.keys.lease('10.0.0.54'), lease('10.0.0.54', 4, 'declined'))
  await store.put(store.keys.run(failedRun.id), failedRun)
  for (const n of ELECTED) await startElected(n)
})

after(async () => {
  for (const {daemon} of daemons.values()) await daemon.stop('SIGKILL').catch(() => undefined)
  await store?.close()
  await etcd?.stop()
  rmSync(dir, {recursive: true, force: true})
})

describe('serve --http', {concurrency: false}, () => {
  it('/leader/web is 200 on exactly the leader and 503 on the others, and flips when the leader is SIGKILLed', async () => {
    const first = await soleLeader(ELECTED)
    assert.equal((await etcdLeader())?.node, first, 'the 200 is where etcd says the leader is')
    const leading = JSON.parse((await http(port(first), '/leader/web')).text) as LocalLeadership
    assert.deepEqual({leader: leading.leader, phase: leading.phase, node: leading.node, token: leading.token}, {leader: true, phase: 'leader', node: first, token: (await etcdLeader())?.token})
    const others = ELECTED.filter((n) => n !== first)
    for (const n of others) {
      // A follower learns who leads at its next step: 503 all along, and soon naming the leader.
      await until(
        `${n} to name ${first} as leader`,
        async () => {
          const res = await http(port(n), '/leader/web')
          assert.equal(res.status, 503, `${n}: ${res.text}`)
          const body = JSON.parse(res.text) as LocalLeadership
          assert.deepEqual({leader: body.leader, phase: body.phase}, {leader: false, phase: 'follower'})
          return body.seenLeader === first
        },
        3000,
        50,
      )
    }
    // HEAD is answered like GET, without a body: what a load balancer's probe may send.
    const head = await http(port(first), '/leader/web', {method: 'HEAD'})
    assert.deepEqual([head.status, head.text], [200, ''])

    const changesBefore = (await scrape(others[0]!)).get('xcluster_service_leader_changes_total{service="web"}')
    assert.ok(changesBefore !== undefined && changesBefore >= 1, `leader changes before the kill: ${changesBefore}`)

    daemons.get(first)!.daemon.signal('SIGKILL')
    await daemons.get(first)!.daemon.wait()
    const killedAt = Date.now()
    const second = await soleLeader(others, 15_000)
    console.log(`# /leader/web moved from ${first} to ${second} ${Date.now() - killedAt} ms after SIGKILL`)
    assert.notEqual(second, first)
    assert.equal((await etcdLeader())?.node, second)
    // The metrics of a surviving serve count the new leadership.
    await until('the leadership change in /metrics', async () => ((await scrape(others[0]!)).get('xcluster_service_leader_changes_total{service="web"}') ?? 0) >= changesBefore + 1, 5000, 200)

    // Back to three daemons: the restarted one follows.
    await startElected(first)
    await until(`${first} to follow`, async () => (await http(port(first), '/leader/web')).status === 503 && JSON.parse((await http(port(first), '/leader/web')).text).phase === 'follower')
    assert.equal(await soleLeader(ELECTED), second)
  })

  it('/health is 200, then 503 when a node is set to failed, then 200 again', async () => {
    const node = ELECTED[0]!
    const healthy = await until('/health 200', async () => {
      const res = await http(port(node), '/health')
      return res.status === 200 ? res : undefined
    })
    const report = JSON.parse(healthy.text) as HealthReport
    assert.equal(report.status, 'ok', JSON.stringify(report.checks.filter((c) => c.status !== 'ok')))
    assert.ok(report.checks.some((c) => c.name === 'election:web' && c.status === 'ok'))

    await patchNode('c1', {state: 'failed', reason: 'disk gone'})
    try {
      const sick = await until(
        '/health 503',
        async () => {
          const res = await http(port(node), '/health')
          return res.status === 503 ? res : undefined
        },
        5000,
        100,
      )
      const failed = JSON.parse(sick.text) as HealthReport
      assert.equal(failed.status, 'fail')
      assert.deepEqual(
        failed.checks.filter((c) => c.status === 'fail').map((c) => [c.name, c.observed]),
        [['node:c1', 'compute node failed (disk gone)']],
      )
      // Every serve sees it, not just the one asked first.
      for (const n of ELECTED) await until(`${n}'s /health 503`, async () => (await http(port(n), '/health')).status === 503, 5000, 100)
      const metrics = await scrape(node)
      assert.equal(metrics.get('xcluster_nodes{state="failed"}'), 1)
      assert.equal(metrics.get('xcluster_health_problems{status="fail"}'), 1)
    } finally {
      await patchNode('c1', {state: 'ready'})
    }
    await until('/health 200 again', async () => (await http(port(node), '/health')).status === 200, 5000, 100)
  })

  it('/metrics passes promtool and carries the nodes, the leader and its token, DHCP pools, runs, etcd and days left of certificates', async () => {
    const leader = await soleLeader(ELECTED)
    const probe = await issueCertificate(await createCa({cluster: store.keys.cluster}), {commonName: 'probe', sans: ['probe.example.org'], profile: 'server', days: 10})
    await saveIssuedCertificate(store, 'probe', probe)
    // A read shared by the last test's requests may still be served: what is asked now is after it.
    await new Promise((r) => setTimeout(r, settings.health.http.cacheMs + 100))
    const {token} = (await etcdLeader())!
    const m = await scrape(ELECTED.find((n) => n !== leader)!)
    const expect: Record<string, number> = {
      'xcluster_etcd_reachable{}': 1,
      'xcluster_etcd_quorum{}': 1,
      'xcluster_etcd_member_healthy{member="test"}': 1,
      'xcluster_nodes{state="ready"}': NODES.length,
      'xcluster_nodes{state="failed"}': 0,
      [`xcluster_service_leader{node="${leader}",service="web"}`]: 1,
      'xcluster_service_has_leader{service="web"}': 1,
      'xcluster_service_fencing_token{service="web"}': Number(token),
      'xcluster_service_candidates{service="web"}': ELECTED.length,
      'xcluster_dhcp_pool_leased_addresses{range="compute"}': 4,
      'xcluster_dhcp_pool_capacity_addresses{range="compute"}': 20,
      'xcluster_dhcp_pool_usage_ratio{range="compute"}': 0.2,
      'xcluster_dhcp_leases{state="bound"}': 3,
      'xcluster_dhcp_leases{state="declined"}': 1,
      'xcluster_runs{result="failed"}': 1,
      'xcluster_runs{result="succeeded"}': 0,
    }
    for (const [sample, value] of Object.entries(expect)) assert.equal(m.get(sample), value, `${sample} (have ${[...m.keys()].filter((k) => k.startsWith(sample.split('{')[0]!)).join(' ')})`)
    assert.equal(m.get('xcluster_cert_not_after_timestamp_seconds{name="probe"}'), Date.parse(probe.notAfter) / 1000)
    const left = (m.get('xcluster_cert_remaining_seconds{name="probe"}') ?? 0) / 86_400
    assert.ok(left > 9.9 && left <= 10, `days left ${left}`)
    assert.equal(m.get('xcluster_cert_revoked{}'), 0)
    // Exactly one leader sample for the service: the others are absent, not 0.
    assert.deepEqual(
      [...m.keys()].filter((k) => k.startsWith('xcluster_service_leader{')),
      [`xcluster_service_leader{node="${leader}",service="web"}`],
    )
    const text = (await http(port(leader), '/metrics')).text
    assert.match(text, /^# TYPE xcluster_service_leader_changes_total counter$/m)
    assert.match(text, /^# TYPE xcluster_nodes gauge$/m)
  })

  it('a split brain (a rogue view that claims web) shows in /health, /status and /metrics, and clears with it', async () => {
    const leader = await soleLeader(ELECTED)
    const node = ELECTED.find((n) => n !== leader)!
    // s4 runs no serve for web, so nothing republishes over its rogue view.
    const rogue: ViewRecord = {node: 's4', believesLeader: true, active: true, leader: 's4', token: '1', since: null, updatedAt: new Date().toISOString()}
    await store.put(store.keys.electionView('web', 's4'), rogue)
    try {
      const sick = await until('/health 503 for the split brain', async () => {
        const res = await http(port(node), '/health')
        return res.status === 503 && res
      })
      const web = (JSON.parse(sick.text) as HealthReport).checks.find((c) => c.name === 'election:web')
      assert.equal(web?.status, 'fail')
      assert.match(web?.observed ?? '', /^split brain: .*\[multiple-leaders\] .*s4/)
      const status = JSON.parse((await http(port(node), '/status')).text) as ClusterStatus
      assert.deepEqual(
        status.splitBrain.map((b) => b.service),
        ['web'],
      )
      assert.ok(
        status.splitBrain[0]!.observed.some((o) => o.startsWith('[multiple-leaders]')),
        status.splitBrain[0]!.observed.join('; '),
      )
      assert.equal((await scrape(node)).get('xcluster_service_split_brain{service="web"}'), 1)
    } finally {
      await store.delete(store.keys.electionView('web', 's4'))
    }
    await until('/health 200 once the views agree', async () => (await http(port(node), '/health')).status === 200, 5000, 100)
    await new Promise((r) => setTimeout(r, settings.health.http.cacheMs + 100))
    assert.equal((await scrape(node)).get('xcluster_service_split_brain{service="web"}'), 0)
    assert.deepEqual((JSON.parse((await http(port(node), '/status')).text) as ClusterStatus).splitBrain, [])
  })

  it('/status, /nodes and /leaders: the JSON of status, node list and the elections', async () => {
    const leader = await soleLeader(ELECTED)
    const node = ELECTED[1]!
    const status = JSON.parse((await http(port(node), '/status')).text) as ClusterStatus
    assert.equal(status.cluster, 'xcluster')
    assert.deepEqual(status.nodes, {total: NODES.length, byState: {ready: NODES.length}})
    assert.deepEqual(
      status.failedRuns.map((r) => r.id),
      [failedRun.id],
    )
    const nodes = JSON.parse((await http(port(node), '/nodes')).text) as NodeSummary[]
    assert.deepEqual(nodes.map((n) => [n.name, n.state]).sort(), NODES.map((n) => [n, 'ready']).sort())
    assert.equal(nodes.find((n) => n.name === 's1')?.ip, '10.0.0.2')
    const leaders = JSON.parse((await http(port(node), '/leaders')).text) as ServiceStatus[]
    assert.deepEqual(
      leaders.map((s) => [s.service, s.leader, s.token]),
      [['web', leader, (await etcdLeader())!.token]],
    )
  })

  it('only reads: 405 for POST, PUT and DELETE; 404 for an unknown path or service', async () => {
    const p = port(ELECTED[0]!)
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const res = await http(p, '/health', {method, body: method === 'DELETE' ? null : '{}'})
      assert.equal(res.status, 405, `${method}: ${res.text}`)
      assert.equal(res.headers.get('allow'), 'GET, HEAD')
      assert.equal(JSON.parse(res.text).error.code, 'METHOD_NOT_ALLOWED')
    }
    const posted = await http(p, '/leader/web', {method: 'POST'})
    assert.equal(posted.status, 405)
    for (const path of ['/nope', '/leader', '/leader/', '/health/extra', '/leader/web/x', '/dashboard/', '/dashboard/../package.json']) {
      const res = await http(p, path)
      assert.equal(res.status, 404, `${path}: ${res.text}`)
      assert.equal(JSON.parse(res.text).error.code, 'NOT_FOUND')
    }
    const unknown = await http(p, '/leader/nonesuch')
    assert.equal(unknown.status, 404)
    assert.equal(JSON.parse(unknown.text).error.code, 'SERVICE_UNKNOWN')
  })

  it('a burst of 50 /health probes is one etcd read; /leader probes read nothing', async () => {
    const p = port(ELECTED[0]!)
    /**
     * etcd ranges served while `fn` runs (after the API's cache has expired), less the campaigns'
     * own steady reads (each steps every ttl/4) at the rate measured while idle.
     */
    let idleRate = 0
    const rangesDuring = async (fn: () => Promise<unknown>): Promise<{ranges: number; net: number; ms: number}> => {
      await new Promise((r) => setTimeout(r, 1200))
      const before = await rangesServed()
      const t0 = performance.now()
      await fn()
      const ms = performance.now() - t0
      const ranges = (await rangesServed()) - before
      return {ranges, net: ranges - idleRate * ms, ms}
    }
    const idle = await rangesDuring(() => new Promise((r) => setTimeout(r, 2000)))
    idleRate = idle.ranges / idle.ms
    const one = await rangesDuring(() => http(p, '/health'))
    const burst = await rangesDuring(() => Promise.all(Array.from({length: 50}, () => http(p, '/health'))))
    let probes = 0
    const leader = await rangesDuring(async () => {
      const end = performance.now() + 2000
      while (performance.now() < end) {
        await Promise.all(Array.from({length: 20}, () => http(p, '/leader/web')))
        probes += 20
      }
    })
    const show = (r: {ranges: number; ms: number}) => `${r.ranges} ranges in ${Math.round(r.ms)} ms`
    console.log(`# etcd: idle ${show(idle)}; one /health ${show(one)}; 50 /health at once ${show(burst)}; ${probes} /leader ${show(leader)}`)
    assert.ok(one.net >= 5, `one /health read costs several ranges (${one.net.toFixed(1)} beyond the campaigns'): the count must be able to tell`)
    assert.ok(burst.net <= 2 * one.net + 6, `50 concurrent /health: ${burst.net.toFixed(1)} ranges, one alone: ${one.net.toFixed(1)}`)
    assert.ok(probes >= 100, `only ${probes} /leader probes in 2 s`)
    assert.ok(leader.net <= 8, `${probes} /leader probes: ${leader.net.toFixed(1)} ranges beyond the campaigns' (idle ${show(idle)})`)
  })

  it('HTTPS with --http-cert/--http-key; a serve with only --http answers 503 for a service it does not run', async () => {
    const tls = await pki.member({name: 's4', ip: '127.0.0.1'})
    const s4 = await startServe('s4', [], ['--http', '127.0.0.1:0', '--http-cert', tls.serverCertFile, '--http-key', tls.serverKeyFile])
    daemons.set('s4', s4)
    assert.equal(s4.daemon.events.find((e) => e.event === 'http-listening')?.tls, true)
    const get = (path: string) =>
      new Promise<{status: number; text: string}>((resolve, reject) => {
        const req = request(`https://127.0.0.1:${s4.port}${path}`, {ca: readFileSync(pki.caFile)}, (res) => {
          let text = ''
          res.on('data', (d) => (text += d))
          res.on('end', () => resolve({status: res.statusCode ?? 0, text}))
        })
        req.on('error', reject)
        req.end()
      })
    await until('/health 200 over HTTPS', async () => (await get('/health')).status === 200, 5000, 100)
    const web = await get('/leader/web')
    assert.equal(web.status, 503, web.text)
    assert.equal((JSON.parse(web.text) as LocalLeadership).phase, 'not-campaigning')
    // Plain HTTP to it fails: it is HTTPS only.
    await assert.rejects(http(s4.port, '/health'))
    // Verified against the cluster CA: a client trusting another CA refuses it.
    const other = await createTestPki(join(dir, 'other-pki'))
    await assert.rejects(
      new Promise((resolve, reject) => {
        const req = request(`https://127.0.0.1:${s4.port}/health`, {ca: readFileSync(other.caFile)}, resolve)
        req.on('error', reject)
        req.end()
      }),
      /self[- ]signed|unable to verify|certificate/i,
    )
  })

  it('refuses a bad --http address (usage, exit 2) and one in use (exit 1, with the next step)', async () => {
    const bad = await xcluster(['serve', '--node', 's9', '--http', 'nonsense', '--etcd', etcd.endpoint])
    assert.equal(bad.code, 2, bad.stderr)
    assert.match(bad.stderr, /"nonsense" is not an address to listen on/)
    const taken = await xcluster(['serve', '--node', 's9', '--http', `127.0.0.1:${port(ELECTED[0]!)}`, '--etcd', etcd.endpoint])
    assert.equal(taken.code, 1, taken.stderr)
    assert.match(taken.stderr, /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/)
    assert.match(taken.stderr, /choose another --http address/)
  })

  it('SIGTERM: serve stops, resigns and closes the API', async () => {
    const leader = await soleLeader(ELECTED)
    const {daemon, port: p} = daemons.get(leader)!
    await daemon.stop('SIGTERM')
    assert.equal(daemon.proc.exitCode, 0, readLog(leader))
    await assert.rejects(http(p, '/health'))
    const next = await soleLeader(
      ELECTED.filter((n) => n !== leader),
      5000,
    )
    assert.notEqual(next, leader)
  })
})
