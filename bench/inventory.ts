/**
 * A large inventory into etcd and out of it, each beside etcdctl doing the same work, in the same
 * run against the same etcd (a stock one: --max-txn-ops 128, --max-request-bytes 1.5 MiB).
 * Measured N times each, interleaved (median and p90):
 *  - `xcluster config apply -f FILE --yes` of a fresh 1,000-node spec (a new cluster each time),
 *    the built CLI as a process, end to end, beside `etcdctl txn` writing the same keys and
 *    values (those the apply left, read back) in transactions of 128 puts, one process each
 *  - the same `config apply` again: nothing to write (etcd's revision is checked not to move)
 *  - `xcluster inventory --list` of the 1,000 registered nodes beside `etcdctl get --prefix` of
 *    the cluster's keys; and the CLI's start-up as an etcd command pays it: `xcluster --version`
 *    (the floor, which does not load the etcd client) plus what loading the etcd client adds to a
 *    bare node process (`import('etcd3')` less `node -e ''`)
 * The specs come from test/helpers/large-spec.ts, as the tests' do.
 * Real etcd (Debian etcd-server) on loopback and etcdctl (etcd-client); build first.
 *
 *   npx tsx bench/inventory.ts [nodes=1000] [repeats=5]
 */
import {spawn} from 'node:child_process'
import {existsSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {availableParallelism, loadavg, tmpdir} from 'node:os'
import {join} from 'node:path'

import {EtcdStore} from '../src/lib/etcd/store.js'
import {settings} from '../src/lib/settings.js'
import {BIN, ROOT} from '../test/helpers/cli.js'
import {startEtcdRetrying} from '../test/helpers/etcd-cluster.js'
import {largeSpecNodes, largeSpecYaml} from '../test/helpers/large-spec.js'

const nodeCount = Number(process.argv[2] ?? 1000)
const repeats = Number(process.argv[3] ?? 5)
/** The goals: a whole `config apply` of 1,000 nodes, and inventory --list against etcdctl. */
const APPLY_GOAL_MS = 3000
const INVENTORY_GOAL_FACTOR = 2

if (!existsSync(join(ROOT, 'oclif.manifest.json'))) {
  console.error('oclif.manifest.json is missing: run `npm run build` first')
  process.exit(2)
}
if (!Number.isInteger(nodeCount) || nodeCount < 3 || nodeCount > 50_000 || !Number.isInteger(repeats) || repeats < 1) {
  console.error('usage: npx tsx bench/inventory.ts [nodes=1000 (3..50000)] [repeats=5]')
  process.exit(2)
}

function timed(argv: string[], options: {env?: Record<string, string>; input?: string} = {}): Promise<{ms: number; stdout: string}> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(argv[0] as string, argv.slice(1), {cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: {...process.env, NO_COLOR: '1', ...options.env}})
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d) => (err += d))
    child.on('error', reject)
    child.stdin.end(options.input ?? '')
    child.on('close', (code) => {
      const ms = performance.now() - t0
      if (code === 0) resolve({ms, stdout: Buffer.concat(out).toString()})
      else reject(new Error(`${argv.slice(0, 4).join(' ')} ... exited ${code}: ${err.slice(0, 2000)}`))
    })
  })
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return {median: s[Math.floor(s.length / 2)] ?? NaN, p90: s[Math.floor(s.length * 0.9)] ?? NaN, min: s[0] ?? NaN}
}

const dir = mkdtempSync(join(tmpdir(), 'xcb-inventory-'))
const etcd = await startEtcdRetrying()
const env = {XCLUSTER_ETCD: etcd.endpoint}
const etcdctl = (...args: string[]) => ['etcdctl', '--endpoints', etcd.endpoint, ...args]
const nodes = largeSpecNodes(nodeCount)
const stores: EtcdStore[] = []
const began = performance.now()
const progress = (what: string) => console.error(`[${((performance.now() - began) / 1000).toFixed(1)} s] ${what}`)

const measurements = {
  apply: {label: `xcluster config apply (${nodeCount} new nodes, process)`, times: [] as number[]},
  peer: {label: 'etcdctl txn, the same keys, 128 puts a process', times: [] as number[]},
  reapply: {label: 'xcluster config apply again (no changes)', times: [] as number[]},
  inventory: {label: `xcluster inventory --list (${nodeCount} nodes, process)`, times: [] as number[]},
  get: {label: 'etcdctl get --prefix <cluster> -w json', times: [] as number[]},
  version: {label: 'xcluster --version (CLI startup floor)', times: [] as number[]},
  etcd3: {label: "node: import('etcd3') (the etcd client's load)", times: [] as number[]},
  node: {label: "node -e '' (a bare process)", times: [] as number[]},
}

try {
  let keys = 0
  let bytes = 0
  let cluster = ''
  for (let i = 0; i < repeats; i++) {
    cluster = `bench${i}`
    const store = new EtcdStore({endpoints: [etcd.endpoint], cluster})
    stores.push(store)
    const file = join(dir, `${cluster}.yaml`)
    writeFileSync(file, largeSpecYaml(nodes, {cluster}))
    const apply = await timed([process.execPath, BIN, 'config', 'apply', '-f', file, '--yes', '--cluster', cluster], {env})
    measurements.apply.times.push(apply.ms)

    // The peer writes what the apply left in etcd, key for key, under another prefix.
    const written: {key: string; value: string}[] = []
    await store.readPrefixes([store.keys.prefix], (page) => written.push(...page.map((kv) => ({key: `/peer${i}${kv.key}`, value: kv.value.toString()}))))
    keys = written.length
    bytes = written.reduce((sum, w) => sum + w.key.length + w.value.length, 0)
    const txns: string[] = []
    for (let j = 0; j < written.length; j += settings.etcdMaxTxnOps) {
      txns.push(
        `\n${written
          .slice(j, j + settings.etcdMaxTxnOps)
          .map((w) => `put ${w.key} ${JSON.stringify(w.value)}\n`)
          .join('')}\n\n`,
      )
    }
    const t0 = performance.now()
    for (const input of txns) await timed(etcdctl('txn'), {input})
    measurements.peer.times.push(performance.now() - t0)

    const revision = async () => Number((await store.call('revision', (c) => c.get('/none').exec())).header.revision)
    const before = await revision()
    measurements.reapply.times.push((await timed([process.execPath, BIN, 'config', 'apply', '-f', file, '--yes', '--cluster', cluster], {env})).ms)
    if ((await revision()) !== before) throw new Error('a re-apply of the same spec wrote to etcd')
    progress(`apply ${i + 1} of ${repeats}: ${apply.ms.toFixed(0)} ms, ${keys} keys`)
  }

  // inventory --list of the last cluster (its nodes all registered), interleaved with its peers.
  const runs = {
    inventory: () => timed([process.execPath, BIN, 'inventory', '--list', '--cluster', cluster], {env}),
    get: () => timed(etcdctl('get', '--prefix', `/xcluster/${cluster}/`, '-w', 'json')),
    version: () => timed([process.execPath, BIN, '--version']),
    etcd3: () => timed([process.execPath, '--input-type=module', '-e', "await import('etcd3')"]),
    node: () => timed([process.execPath, '-e', '']),
  }
  const listed = JSON.parse((await runs.inventory()).stdout) as {_meta: {hostvars: Record<string, unknown>}}
  if (Object.keys(listed._meta.hostvars).length !== nodeCount) throw new Error(`inventory --list shows ${Object.keys(listed._meta.hostvars).length} hosts, not ${nodeCount}`)
  const raw = JSON.parse((await runs.get()).stdout) as {count: number}
  await runs.version()
  await runs.etcd3()
  for (let i = 0; i < Math.max(repeats, 5); i++) {
    for (const [name, run] of Object.entries(runs)) measurements[name as keyof typeof runs].times.push((await run()).ms)
  }

  console.log(`config apply of ${nodeCount} nodes (${keys} keys, ${(bytes / 1024).toFixed(0)} KiB) into a stock etcd, and inventory --list of them`)
  console.log(`${raw.count} keys under /xcluster/${cluster}/; ${repeats} applies, interleaved with their peers; load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} CPUs`)
  console.log()
  console.log(`${'measurement'.padEnd(52)} ${'median ms'.padStart(10)} ${'p90 ms'.padStart(8)} ${'min ms'.padStart(8)}`)
  for (const m of Object.values(measurements)) {
    const s = stats(m.times)
    console.log(`${m.label.padEnd(52)} ${s.median.toFixed(1).padStart(10)} ${s.p90.toFixed(1).padStart(8)} ${s.min.toFixed(1).padStart(8)}`)
  }
  const med = (k: keyof typeof measurements) => stats(measurements[k].times).median
  console.log(
    `config apply over etcdctl txn (median): ${(med('apply') / med('peer')).toFixed(1)}x; above the startup floor: ${(med('apply') - med('version')).toFixed(0)} ms   goal: a whole apply of ${nodeCount} nodes < ${APPLY_GOAL_MS} ms -> ${med('apply') < APPLY_GOAL_MS ? 'met' : 'NOT met'}`,
  )
  const startup = med('version') + Math.max(0, med('etcd3') - med('node'))
  const budget = INVENTORY_GOAL_FACTOR * med('get') + startup
  console.log(
    `inventory --list over etcdctl get --prefix (median): ${(med('inventory') / med('get')).toFixed(1)}x; above the start-up of an etcd command (${startup.toFixed(0)} ms: the floor and the etcd client's load): ${(med('inventory') - startup).toFixed(0)} ms   goal: within ${INVENTORY_GOAL_FACTOR}x of etcdctl plus that start-up (${budget.toFixed(0)} ms) -> ${med('inventory') <= budget ? 'met' : 'NOT met'}`,
  )
} finally {
  await Promise.all(stores.map((s) => s.close()))
  await etcd.stop()
  rmSync(dir, {recursive: true, force: true})
}
