/**
 * `xcluster status --json` with 1,000 registered nodes and 10 elected services, beside
 * `etcdctl get --prefix` of the same keys, in the same run against the same etcd. Measured N
 * times each, interleaved (median and p90):
 *  - `xcluster status --json`, the built CLI as a process, end to end
 *  - collectStatus() in-process, on a connected store (the library call the command makes)
 *  - `GET /status` of s1's `serve --http` (the health API): the same picture from a running
 *    daemon, each request past the API's 1 s shared-read cache, so every one reads etcd
 *  - `etcdctl get --prefix /xcluster/<cluster>/ -w json`: every key of the cluster, raw
 *  - `xcluster --version`: the CLI's startup floor, and the load of the etcd client alone
 *    (`import('etcd3')`), which the floor does not pay: together, where the process's time goes
 * and the etcd requests one status call makes, counted by etcd itself (/metrics: gRPC calls by
 * method and etcd_mvcc_range_total, which also counts the reads inside transactions), at a tenth
 * of the nodes and at all of them: no read per node, only one more per page of 500 keys.
 *
 * The cluster is what a real one holds: a spec of 10 services and the nodes (test/helpers/large-spec.ts)
 * applied with `xcluster config apply` (once per checkpoint), the nodes moved through their lifecycle (most ready, some failed, drained or
 * still registered), DHCP leases granted by the lease allocator to 30 % of them, and three real
 * `xcluster serve --elect` daemons (s1, s2, s3) campaigning for all 10 services.
 * Real etcd (Debian etcd-server) on loopback and etcdctl (etcd-client); build first.
 *
 *   npx tsx bench/status.ts [nodes=1000] [repeats=10]
 */
import {spawn} from 'node:child_process'
import {existsSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {availableParallelism, loadavg, tmpdir} from 'node:os'
import {join} from 'node:path'

import {LeaseAllocator} from '../src/lib/dhcp/allocator.js'
import {listElections} from '../src/lib/election/state.js'
import {EtcdStore} from '../src/lib/etcd/store.js'
import {collectStatus, type ClusterStatus} from '../src/lib/health/index.js'
import {transitionNode} from '../src/lib/nodes/lifecycle.js'
import type {NodeState} from '../src/lib/nodes/record.js'
import {settings} from '../src/lib/settings.js'
import {BIN, ROOT, xcluster} from '../test/helpers/cli.js'
import {Daemon, daemonRunDir, sleep, until} from '../test/helpers/election-harness.js'
import {startEtcdRetrying} from '../test/helpers/etcd-cluster.js'
import {CORE_NODES, largeSpecNodes, largeSpecYaml, type GeneratedNode} from '../test/helpers/large-spec.js'

const nodeCount = Number(process.argv[2] ?? 1000)
const repeats = Number(process.argv[3] ?? 10)
const SERVICES = ['postgres', 'redis', 'minio', 'grafana', 'prometheus', 'registry', 'ldap', 'mqtt', 'gitea', 'vault']
const CORE = CORE_NODES
/** Status calls per request count: processes, library calls. */
const COUNT_CALLS = {cli: 3, lib: 5}
/**
 * Patroni's default TTL. Long enough that the daemons can be frozen while requests are counted
 * (their leases and keys stay) so that etcd's counters hold the status calls' requests alone.
 */
const TTL = 30

if (!existsSync(join(ROOT, 'oclif.manifest.json'))) {
  console.error('oclif.manifest.json is missing: run `npm run build` first')
  process.exit(2)
}
if (!Number.isInteger(nodeCount) || nodeCount < 30 || nodeCount > 2000 || !Number.isInteger(repeats) || repeats < 1) {
  console.error('usage: npx tsx bench/status.ts [nodes=1000 (30..2000)] [repeats=10]')
  process.exit(2)
}

interface BenchNode extends GeneratedNode {
  /** What the bench makes of it after the apply. */
  state: NodeState
  leased: boolean
}

/** The generated nodes: the 3 core ones ready with fixed IPs, the rest mostly ready, some failed, drained or still registered, 30 % leased. */
function benchNodes(total: number): BenchNode[] {
  return largeSpecNodes(total).map((n, i) => {
    if (i < CORE.length) return {...n, state: 'ready', leased: false}
    const state: NodeState = i % 50 === 7 ? 'failed' : i % 70 === 11 ? 'drained' : i % 40 === 13 ? 'registered' : 'ready'
    return {...n, state, leased: i % 10 >= 7}
  })
}

const servicesYaml = SERVICES.map((s, i) => `  - {name: ${s}, ttl: ${TTL}, start: 'true', stop: 'true', nodes: [${CORE.join(', ')}], vip: 10.68.0.${240 + i}}\n`).join('')

/** Runs `fn` over `items`, at most `limit` at once. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({length: Math.min(limit, items.length)}, async () => {
      while (next < items.length) await fn(items[next++] as T)
    }),
  )
}

/** Moves freshly applied (`registered`) nodes to the state the bench gives them, as node add/drain would. */
async function lifecycle(store: EtcdStore, nodes: BenchNode[]): Promise<void> {
  const paths: Record<NodeState, NodeState[]> = {
    registered: [],
    discovered: [],
    provisioning: ['provisioning'],
    ready: ['provisioning', 'ready'],
    draining: ['provisioning', 'ready', 'draining'],
    drained: ['provisioning', 'ready', 'draining', 'drained'],
    failed: ['provisioning', 'failed'],
    removed: ['removed'],
  }
  await eachLimited(nodes, 32, async (n) => {
    for (const to of paths[n.state]) {
      const reason = to === 'failed' ? 'bench: disk gone' : to === 'draining' || to === 'drained' ? 'bench: maintenance' : undefined
      await transitionNode(store, n.name, to, {by: 'bench', ...(reason ? {reason} : {})})
    }
  })
}

/** A lease for each node, as the DHCP server grants one: the allocator's offer, then its commit (one etcd transaction). */
async function lease(store: EtcdStore, nodes: BenchNode[]): Promise<void> {
  const allocator = new LeaseAllocator(store, {serverId: '10.68.0.2', unknown: 'ignore'})
  await allocator.start()
  try {
    await until('the allocator to see the new nodes', () => nodes.every((n) => allocator.identify(n.mac)), 10_000)
    for (const n of nodes) {
      const offer = await allocator.offer({mac: n.mac})
      if (!offer) throw new Error(`no DHCP offer for ${n.name}`)
      const granted = await allocator.commit({mac: n.mac}, offer.ip)
      if (!granted?.ok) throw new Error(`no lease for ${n.name}: ${granted?.reason}`)
    }
  } finally {
    await allocator.stop()
  }
}

function timed(argv: string[], env: Record<string, string> = {}): Promise<{ms: number; stdout: string}> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(argv[0] as string, argv.slice(1), {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, NO_COLOR: '1', ...env}})
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d) => (err += d))
    child.on('error', reject)
    child.on('close', (code) => {
      const ms = performance.now() - t0
      if (code === 0) resolve({ms, stdout: Buffer.concat(out).toString()})
      else reject(new Error(`${argv.join(' ')} exited ${code}: ${err}`))
    })
  })
}

type Counters = Map<string, number>

/** etcd's own counters: gRPC calls handled, by method, and `mvcc range` (ranges inside transactions too). */
async function counters(endpoint: string): Promise<Counters> {
  const text = await (await fetch(`${endpoint}/metrics`)).text()
  const c: Counters = new Map()
  for (const m of text.matchAll(/^grpc_server_handled_total\{[^}]*grpc_method="(\w+)"[^}]*\} (\d+)/gm)) c.set(m[1] as string, (c.get(m[1] as string) ?? 0) + Number(m[2]))
  c.set('mvcc range', Number(/^etcd_mvcc_range_total (\d+)/m.exec(text)?.[1]))
  return c
}

const minus = (a: Counters, b: Counters): Counters => new Map([...a].map(([k, v]) => [k, v - (b.get(k) ?? 0)]))

/** Requests per call of `fn`, over `calls` calls back to back. */
async function requestsPerCall(endpoint: string, calls: number, fn: () => Promise<unknown>): Promise<Counters> {
  const before = await counters(endpoint)
  for (let i = 0; i < calls; i++) await fn()
  return new Map([...minus(await counters(endpoint), before)].map(([k, v]) => [k, v / calls]))
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return {median: s[Math.floor(s.length / 2)] ?? NaN, p90: s[Math.floor(s.length * 0.9)] ?? NaN, min: s[0] ?? NaN}
}

const dir = mkdtempSync(join(tmpdir(), 'xcb-status-'))
const etcd = await startEtcdRetrying()
const store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
const env = {XCLUSTER_ETCD: etcd.endpoint}
const daemons: Daemon[] = []
const all = benchNodes(nodeCount)
const checkpoints = [Math.max(CORE.length, Math.round(nodeCount / 10)), nodeCount]
const counted: {nodes: number; leases: number; keys: number; cli: Counters; lib: Counters}[] = []

const began = performance.now()
const progress = (what: string) => console.error(`[${((performance.now() - began) / 1000).toFixed(1)} s] ${what}`)
const keysUnderPrefix = async (): Promise<number> =>
  Number(JSON.parse((await timed(['etcdctl', '--endpoints', etcd.endpoint, 'get', '--prefix', store.keys.prefix, '--keys-only', '-w', 'json'])).stdout).count)

try {
  // One apply per checkpoint, stopping at each to count requests there.
  let applied = 0
  for (const checkpoint of checkpoints) {
    const before = applied
    applied = checkpoint
    const file = join(dir, 'xcluster.yaml')
    writeFileSync(file, largeSpecYaml(all.slice(0, applied), {services: servicesYaml}))
    const r = await xcluster(['config', 'apply', '-f', file, '--yes'], {env})
    if (r.code !== 0) throw new Error(`config apply of ${applied} nodes failed: ${r.stderr}`)
    if (daemons.length === 0) {
      // s1 also serves the health API, for the /status timing.
      for (const n of CORE) daemons.push(new Daemon(n, SERVICES, etcd.endpoint, join(dir, `serve-${n}.log`), [], {}, n === 's1' ? ['--http', '127.0.0.1:0'] : []).start())
    }
    progress(`${applied} nodes applied`)
    const added = all.slice(before, applied)
    await lifecycle(store, added)
    await lease(
      store,
      added.filter((n) => n.leased),
    )
    progress('nodes moved through their lifecycle, leases granted')
    await until(
      'a leader for every service',
      async () => {
        const elections = await listElections(store, undefined)
        return elections.filter((e) => e.leader).length === SERVICES.length && elections.every((e) => e.candidates.length === CORE.length)
      },
      30_000,
      200,
    )
    await sleep(1000) // the daemons settle into following
    const status = await collectStatus(store)
    if (status.nodes.total !== applied || status.services.filter((s) => s.leader).length !== SERVICES.length) {
      throw new Error(`status sees ${status.nodes.total} nodes and ${status.services.filter((s) => s.leader).length} leaders`)
    }
    progress(`counting requests at ${applied} nodes`)
    const keys = await keysUnderPrefix()
    for (const d of daemons) d.signal('SIGSTOP')
    try {
      const quiet = await requestsPerCall(etcd.endpoint, 1, () => sleep(1000))
      const cli = await requestsPerCall(etcd.endpoint, COUNT_CALLS.cli, () => timed([process.execPath, BIN, 'status', '--json'], env))
      const lib = await requestsPerCall(etcd.endpoint, COUNT_CALLS.lib, () => collectStatus(store))
      const background = [...quiet.values()].reduce((sum, v) => sum + v, 0)
      if (background !== 0) throw new Error(`etcd served ${background} requests in a second with the daemons frozen: the counts would not be the status calls' alone`)
      counted.push({nodes: applied, leases: status.dhcp.reduce((sum, p) => sum + p.used, 0), keys, cli, lib})
    } finally {
      for (const d of daemons) d.signal('SIGCONT')
    }
  }

  // The timings, at all the nodes: one of each per round, so drift on a shared machine hits all six alike.
  const measurements = {
    status: {label: 'xcluster status --json (process, end to end)', times: [] as number[]},
    lib: {label: 'collectStatus() in-process, connected store', times: [] as number[]},
    api: {label: 'GET /status of serve --http (past its cache)', times: [] as number[]},
    etcdctl: {label: `etcdctl get --prefix ${store.keys.prefix} -w json`, times: [] as number[]},
    version: {label: 'xcluster --version (CLI startup floor)', times: [] as number[]},
    etcd3: {label: "node: import('etcd3') (the etcd client's load)", times: [] as number[]},
  }
  const listening = await until('the health API of s1 to listen', () => daemons[0]!.events.find((e) => e.event === 'http-listening'), 15_000)
  const statusUrl = `http://127.0.0.1:${String(listening.port)}/status`
  const runs = {
    status: () => timed([process.execPath, BIN, 'status', '--json'], env),
    api: async () => {
      await sleep(settings.health.http.cacheMs + 50) // past the shared read: this request reads etcd
      const t0 = performance.now()
      const res = await fetch(statusUrl)
      const body = await res.text()
      if (!res.ok) throw new Error(`GET /status: ${res.status} ${body.slice(0, 500)}`)
      return {ms: performance.now() - t0, stdout: body}
    },
    lib: async () => {
      const t0 = performance.now()
      await collectStatus(store)
      return {ms: performance.now() - t0, stdout: ''}
    },
    etcdctl: () => timed(['etcdctl', '--endpoints', etcd.endpoint, 'get', '--prefix', store.keys.prefix, '-w', 'json']),
    version: () => timed([process.execPath, BIN, '--version']),
    // The floor does not load the etcd client (grpc-js and its protobuf definitions); status does.
    etcd3: () => timed([process.execPath, '--input-type=module', '-e', "await import('etcd3')"]),
  }
  progress('timing')
  const shown = JSON.parse((await runs.status()).stdout) as ClusterStatus // warm-up, and the check that it sees them all
  const raw = JSON.parse((await runs.etcdctl()).stdout) as {count: number}
  await runs.lib()
  const served = JSON.parse((await runs.api()).stdout) as ClusterStatus
  if (served.nodes.total !== nodeCount) throw new Error(`GET /status shows ${served.nodes.total} nodes, not ${nodeCount}`)
  await runs.version()
  await runs.etcd3()
  if (shown.nodes.total !== nodeCount) throw new Error(`status --json shows ${shown.nodes.total} nodes, not ${nodeCount}`)
  for (let i = 0; i < repeats; i++) {
    for (const [name, run] of Object.entries(runs)) measurements[name as keyof typeof runs].times.push((await run()).ms)
  }

  const final = counted.at(-1)!
  const byState = Object.entries(shown.nodes.byState)
    .map(([s, n]) => `${n} ${s}`)
    .join(', ')
  console.log(`status of ${nodeCount} nodes (${byState}), ${final.leases} DHCP leases, ${SERVICES.length} services led by 3 serve daemons`)
  console.log(
    `${raw.count} keys under ${store.keys.prefix}; ${shown.problems.length} problems listed; ${repeats} runs of each, interleaved; load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} CPUs`,
  )
  console.log()
  console.log(`${'measurement'.padEnd(50)} ${'median ms'.padStart(10)} ${'p90 ms'.padStart(8)} ${'min ms'.padStart(8)}`)
  for (const m of Object.values(measurements)) {
    const s = stats(m.times)
    console.log(`${m.label.padEnd(50)} ${s.median.toFixed(1).padStart(10)} ${s.p90.toFixed(1).padStart(8)} ${s.min.toFixed(1).padStart(8)}`)
  }
  const med = (k: keyof typeof measurements) => stats(measurements[k].times).median
  console.log(`status --json over etcdctl get --prefix (median): ${(med('status') / med('etcdctl')).toFixed(1)}x; status above the startup floor: ${(med('status') - med('version')).toFixed(0)} ms`)
  console.log(`GET /status over etcdctl get --prefix (median): ${(med('api') / med('etcdctl')).toFixed(1)}x (one assessment, as collectStatus: the same reads, counted below)`)
  console.log()

  // Requests per status call, by kind, at each node count: the columns present anywhere.
  const methods = [...new Set(counted.flatMap((c) => [...c.cli, ...c.lib].filter(([k, v]) => k !== 'mvcc range' && Math.round(v) !== 0).map(([k]) => k)))].sort((a, b) =>
    a === 'Range' ? -1 : b === 'Range' ? 1 : a.localeCompare(b),
  )
  const n = (v: number | undefined) => {
    const x = v ?? 0
    return Number.isInteger(x) ? String(x) : x.toFixed(1)
  }
  const total = (c: Counters) => [...c].filter(([k]) => k !== 'mvcc range').reduce((sum, [, v]) => sum + v, 0)
  const cols = ['nodes', 'leases', 'keys', 'caller', ...methods, 'all', 'mvcc range']
  const widths = cols.map((c) => Math.max(c.length, c === 'caller' ? 13 : 5))
  const line = (cells: string[]) => cells.map((c, i) => (i === 3 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ')
  console.log(`etcd requests per status call (etcd's /metrics, ${COUNT_CALLS.cli} processes and ${COUNT_CALLS.lib} library calls with the daemons frozen; page size ${settings.etcdPageSize} keys)`)
  console.log(line(cols))
  for (const c of counted) {
    for (const [caller, counts] of [
      ['status --json', c.cli],
      ['collectStatus', c.lib],
    ] as const) {
      console.log(line([String(c.nodes), String(c.leases), String(c.keys), caller, ...methods.map((m) => n(counts.get(m))), n(total(counts)), n(counts.get('mvcc range'))]))
    }
  }
  // Paged reads may add one request per page of nodes/ and dhcp/leases/: that and no more.
  const pagesOf = (keys: number) => Math.max(1, Math.ceil(keys / settings.etcdPageSize)) // an empty prefix is one read too
  const pages = (c: (typeof counted)[number]) => pagesOf(c.nodes) + pagesOf(c.leases)
  const [few, many] = [counted[0]!, final]
  const growth = Math.max(total(many.cli) - total(few.cli), total(many.lib) - total(few.lib))
  const extraPages = pages(many) - pages(few)
  console.log(
    `requests per status call: ${n(total(few.lib))} at ${few.nodes} nodes, ${n(total(many.lib))} at ${many.nodes}: +${n(growth)} for ${many.nodes - few.nodes} more nodes, ${extraPages} more ${settings.etcdPageSize}-key page(s) of nodes and leases   goal: no read per node -> ${growth <= extraPages ? 'met' : 'NOT met'}`,
  )
} finally {
  await Promise.all(daemons.map((d) => d.stop('SIGTERM').catch(() => d.stop('SIGKILL'))))
  await store.close()
  await etcd.stop()
  rmSync(daemonRunDir(), {recursive: true, force: true})
  if (!process.env.XCLUSTER_KEEP_LOGS) rmSync(dir, {recursive: true, force: true})
  else console.log(`logs in ${dir}`)
}
