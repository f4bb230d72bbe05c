import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {LeaseAllocator} from '../../src/lib/dhcp/allocator.js'
import {XclusterError} from '../../src/lib/errors.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {transitionNode} from '../../src/lib/nodes/lifecycle.js'
import type {MacBinding, NodeRecord, NodeSummary} from '../../src/lib/nodes/record.js'
import {NodeRegistry} from '../../src/lib/nodes/registry.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {ApplyClaim} from '../../src/lib/spec/claim.js'
import {specSha256} from '../../src/lib/spec/generation.js'
import {typeFromName} from '../../src/lib/spec/node-type.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {readStoredSpec} from '../../src/lib/spec/store.js'
import {readClusterView} from '../../src/lib/spec/view.js'
import {BIN, ROOT, xcluster} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {largeSpecNodes, largeSpecYaml, type GeneratedNode} from '../helpers/large-spec.js'

/**
 * config apply of 1,000 and 5,000 nodes on a stock etcd (--max-txn-ops 128, --max-request-bytes
 * 1.5 MiB: the test etcd runs with etcd's defaults), all-or-nothing for every reader: a reader
 * sees the old spec with its nodes or the new one with its nodes, an apply killed at any point
 * leaves one of them and the next apply (or node writer) finishes the job, two applies at once
 * leave one winner and a refusal that changed nothing.
 */

let etcd: TestEtcd
let dir: string
let store: EtcdStore

const cli = (...args: string[]) => xcluster([...args, '--etcd', etcd.endpoint], {cwd: dir})

function specFile(name: string, nodes: GeneratedNode[]): string {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, largeSpecYaml(nodes))
  return file
}

const revision = async (): Promise<number> => Number((await store.call('revision', (c) => c.get('/none').exec())).header.revision)

/** What a reader sees now: resolved nodes, MAC bindings and the spec, at one revision. */
async function seen(): Promise<{nodes: NodeRecord[]; macs: Map<string, string>; specNodes: number; folding: boolean}> {
  const view = await readClusterView(store, {spec: 'always', nodes: 'all', macs: true})
  return {nodes: view.nodes, macs: new Map([...view.resolved.macs].map(([mac, r]) => [mac, r.value.node])), specNodes: view.spec?.nodes.length ?? 0, folding: view.folding}
}

/** What etcd itself holds under nodes/ and macs/, and the spec family's keys. */
async function stored(): Promise<{nodes: number; macs: number; familyKeys: string[]}> {
  const [nodes, macs] = await Promise.all([store.listJson<NodeRecord>(store.keys.nodesPrefix()), store.listJson<MacBinding>(store.keys.macsPrefix())])
  const family = await store.call('family', (c) => c.getAll().prefix(store.keys.specFamilyPrefix()).keys())
  return {nodes: nodes.length, macs: macs.length, familyKeys: family.sort()}
}

/** Every resolved record and binding is what `nodes` (the spec) says, and the node count is exactly theirs plus `others`. */
function assertMatches(view: Awaited<ReturnType<typeof seen>>, nodes: GeneratedNode[], others = 0): void {
  assert.equal(view.specNodes, nodes.length)
  assert.equal(view.nodes.length, nodes.length + others)
  const byName = new Map(view.nodes.map((n) => [n.name, n]))
  for (const n of nodes) {
    const record = byName.get(n.name)
    assert.ok(record, `node ${n.name} missing`)
    assert.equal(record.mac, n.mac)
    assert.equal(record.ip ?? null, n.ip ?? null)
    assert.equal(view.macs.get(n.mac), n.name)
  }
}

/** A `config apply` process the test can pause and kill. */
function applyProcess(file: string): {child: ChildProcess; done: Promise<{code: number | null; signal: string | null; stdout: string; stderr: string}>} {
  const child = spawn(process.execPath, [BIN, 'config', 'apply', '-f', file, '--yes', '--etcd', etcd.endpoint], {cwd: ROOT, env: {...process.env, NO_COLOR: '1'}, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => (stdout += d))
  child.stderr!.on('data', (d) => (stderr += d))
  const done = new Promise<{code: number | null; signal: string | null; stdout: string; stderr: string}>((resolve) => child.on('close', (code, signal) => resolve({code, signal, stdout, stderr})))
  return {child, done}
}

/**
 * Resolves once `check` holds, asking etcd every 2 ms: cheaper to notice than a watch whose events
 * carry the spec's parts, so a process can be stopped within milliseconds of a step.
 */
async function when(check: () => Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

const present = (key: string) => async (): Promise<boolean> => (await store.call('poll', (c) => c.get(key).string())) !== null

/** Keys changed since `revision`, to say what moved when nothing should have. */
async function changedSince(revision: number): Promise<string[]> {
  const res = await store.call('changes', (c) => c.getAll().prefix('/').exec())
  return res.kvs.filter((kv) => Number(kv.mod_revision) > revision).map((kv) => kv.key.toString())
}

const ONE_K = largeSpecNodes(1000)
const FIVE_K = largeSpecNodes(5000)

before(async () => {
  etcd = await startEtcd()
  dir = mkdtempSync(join(tmpdir(), 'xc-apply-scale-'))
  store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
})

after(async () => {
  await store?.close()
  await etcd?.stop()
  rmSync(dir, {recursive: true, force: true})
})

describe('config apply of thousands of nodes on a stock etcd', () => {
  it('applies 1,000 nodes as one process, and re-applying writes nothing (the revision does not move)', async () => {
    const file = specFile('1k', ONE_K)
    const t0 = performance.now()
    const res = await cli('config', 'apply', '-f', file, '--yes', '--json')
    const ms = performance.now() - t0
    assert.equal(res.code, 0, res.stderr)
    assert.equal(res.json<{add: unknown[]}>().add.length, 1000)
    console.log(`# config apply of 1,000 nodes: ${ms.toFixed(0)} ms as a whole process`)
    const view = await seen()
    assertMatches(view, ONE_K)
    assert.equal(view.folding, false)
    assert.ok(view.nodes.every((n) => n.state === 'registered'))
    const keys = await stored()
    assert.equal(keys.nodes, 1000)
    assert.equal(keys.macs, 1000)
    // The pointer and this generation's parts: no claim, no fold marker, nothing staged left.
    assert.deepEqual(
      keys.familyKeys.filter((k) => !k.startsWith(store.keys.specPartsPrefix())),
      [store.keys.spec()],
    )
    assert.deepEqual(await readStoredSpec(store), parseSpec(largeSpecYaml(ONE_K), 'x'))

    const before = await revision()
    const again = await cli('config', 'apply', '-f', file, '--yes')
    assert.equal(again.code, 0, again.stderr)
    assert.equal(again.stdout.trim(), `No changes: the cluster already matches ${file}.`)
    assert.equal(await revision(), before)
  })

  it('a reader polling throughout a 5,000-node apply sees exactly the old nodes or the new ones, and node states are kept', async () => {
    // Some of the 1,000 move on in their lifecycle: the apply must keep their state and history.
    await transitionNode(store, 'c1', 'provisioning', {by: 'test'})
    await transitionNode(store, 'c1', 'ready', {by: 'test'})
    await transitionNode(store, 's2', 'provisioning', {by: 'test'})
    await transitionNode(store, 'c2', 'failed', {by: 'test', reason: 'disk gone'})
    const kept = new Map((await new NodeRegistry(store).list()).filter((n) => ['c1', 's2', 'c2'].includes(n.name)).map((n) => [n.name, n]))

    const counts = new Map<string, number>()
    let polling = true
    let midFold = 0
    const poll = (async () => {
      while (polling) {
        const view = await seen()
        if (view.specNodes === 1000) assertMatches(view, ONE_K)
        else assertMatches(view, FIVE_K)
        if (view.folding) midFold++
        const key = `${view.specNodes} spec nodes, ${view.nodes.length} nodes, ${view.macs.size} MACs`
        counts.set(key, (counts.get(key) ?? 0) + 1)
      }
    })()
    // Paused as the fold starts, so readers are proven to see the new nodes before they are all written.
    const apply = applyProcess(specFile('5k', FIVE_K))
    await when(present(store.keys.specFold()), 'the fold')
    apply.child.kill('SIGSTOP')
    try {
      const view = await seen()
      assert.equal(view.folding, true)
      assertMatches(view, FIVE_K)
      assert.ok((await stored()).nodes < 5000, 'paused mid-fold: not every record is written yet')
    } finally {
      // Briefly: a process stopped for longer than its etcd calls' deadline finds them failed when it resumes.
      apply.child.kill('SIGCONT')
    }
    const res = await apply.done
    polling = false
    await poll
    assert.equal(res.code, 0, res.stderr)
    assert.ok(midFold > 0, 'a reader polled while the fold ran')
    assert.deepEqual(
      [...counts.keys()].sort(),
      ['1000 spec nodes, 1000 nodes, 1000 MACs', '5000 spec nodes, 5000 nodes, 5000 MACs'].filter((k) => counts.has(k)),
    )
    assert.ok(counts.has('5000 spec nodes, 5000 nodes, 5000 MACs'))

    const after = await stored()
    assert.equal(after.nodes, 5000)
    assert.equal(after.macs, 5000)
    for (const [name, before] of kept) assert.deepEqual((await new NodeRegistry(store).get(name))!, before, `${name} kept its state and history`)
    assert.equal((await new NodeRegistry(store).get('c4000'))?.state, 'registered')
  })

  it('an apply killed mid-fold leaves readers on the whole new spec, and the next apply finishes the fold', async () => {
    // 3,000 more nodes, and 200 of the 5,000 moved to fixed addresses.
    const nodes = largeSpecNodes(8000).map((n, i) => (i >= 100 && i < 300 && !n.ip ? {...n, ip: `10.68.20.${i - 99}`} : n))
    const apply = applyProcess(specFile('8k', nodes))
    await when(present(store.keys.specFold()), 'the fold')
    apply.child.kill('SIGKILL')
    const killed = await apply.done
    assert.equal(killed.signal, 'SIGKILL')

    const view = await seen()
    assert.equal(view.folding, true, 'killed mid-fold')
    assertMatches(view, nodes)
    assert.ok((await stored()).nodes < 8000, 'not every record was written')
    const listed = (await cli('node', 'list', '--json')).json<NodeSummary[]>()
    assert.equal(listed.length, 8000)
    assert.equal(listed.find((n) => n.name === nodes.at(-1)!.name)?.state, 'registered')

    const res = await cli('config', 'apply', '-f', join(dir, '8k.yaml'), '--yes')
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /No changes: the cluster already matches/)
    assert.match(res.stdout, /Finished writing the node records of an earlier apply that stopped midway\./)
    const done = await seen()
    assert.equal(done.folding, false)
    assertMatches(done, nodes)
    const keys = await stored()
    assert.equal(keys.nodes, 8000)
    assert.equal(keys.macs, 8000)
    const rev = await revision()
    assert.equal((await cli('config', 'apply', '-f', join(dir, '8k.yaml'), '--yes')).code, 0)
    assert.equal(await revision(), rev, 'and then a re-apply writes nothing')
  })

  it('a node that exists only in the overlay of a killed apply can be moved on: the writer finishes the fold first', async () => {
    const nodes = largeSpecNodes(10_000)
    const apply = applyProcess(specFile('10k', nodes))
    await when(present(store.keys.specFold()), 'the fold')
    apply.child.kill('SIGKILL')
    await apply.done
    const last = nodes.at(-1)!.name
    assert.equal(await store.getJson(store.keys.node(last)), undefined, 'the last new node is not written yet')
    assert.equal((await new NodeRegistry(store).get(last))?.state, 'registered', 'but readers see it')
    // So does the DHCP server's cache: the MAC is known, with its node's type.
    const allocator = new LeaseAllocator(store, {serverId: '10.68.0.2', unknown: 'ignore'})
    await allocator.start()
    try {
      assert.deepEqual(allocator.identify(nodes.at(-1)!.mac), {type: 'compute', node: last})
      assert.equal(allocator.identify('02:5f:00:00:00:00'), undefined)
    } finally {
      await allocator.stop()
    }

    const moved = await transitionNode(store, last, 'provisioning', {by: 'test'})
    assert.equal(moved.state, 'provisioning')
    const view = await seen()
    assert.equal(view.folding, false)
    assertMatches(view, nodes)
    assert.equal((await store.getJson<NodeRecord>(store.keys.node(last)))?.value.state, 'provisioning')
  })

  it('an apply killed after staging its parts leaves readers on the old spec; the next apply cleans up and completes', async () => {
    // 40,000 nodes: four staging transactions of about 1 MiB, so the process is stopped between them.
    const huge = largeSpecNodes(40_000)
    const current = (await store.getJson<{generation: string}>(store.keys.spec()))!.value.generation
    const partsNow = async () => store.call('parts', (c) => c.getAll().prefix(store.keys.specPartsPrefix()).count())
    const before = await partsNow()
    const apply = applyProcess(specFile('40k', huge))
    await when(async () => (await partsNow()) > before, 'staged parts')
    apply.child.kill('SIGSTOP')
    const family = await store.call('family', (c) => c.getAll().prefix(store.keys.specPartsPrefix()).exec())
    const leased = family.kvs.filter((kv) => String(kv.lease) !== '0')
    apply.child.kill('SIGKILL')
    await apply.done
    assert.ok(leased.length > 0, 'parts were staged under the claim')
    assert.ok(leased.every((kv) => !kv.key.toString().startsWith(store.keys.specGenerationPrefix(current))))
    const view = await seen()
    assert.equal(view.folding, false)
    assert.equal(view.specNodes, 10_000)
    assert.equal(view.nodes.length, 10_000)

    const next = [...largeSpecNodes(10_000), {name: 'c99999', mac: '02:59:00:00:00:00'}]
    const res = await cli('config', 'apply', '-f', specFile('10kplus', next), '--yes')
    assert.equal(res.code, 0, res.stderr)
    const after = await seen()
    assertMatches(after, next)
    const keys = await stored()
    const pointer = (await store.getJson<{generation: string}>(store.keys.spec()))!.value
    assert.deepEqual(
      keys.familyKeys.filter((k) => k !== store.keys.spec() && !k.startsWith(store.keys.specGenerationPrefix(pointer.generation))),
      [],
      "the dead apply's claim and staged parts are gone",
    )
  })

  it('two applies at once: one wins, the other gets APPLY_CONFLICT and changes nothing', async () => {
    const base = (await readStoredSpec(store)).nodes.length
    const spec = (extra: GeneratedNode[]) => [...largeSpecNodes(10_000), {name: 'c99999', mac: '02:59:00:00:00:00'}, ...extra]
    const a = parseSpec(largeSpecYaml(spec([{name: 'c99998', mac: '02:5a:00:00:00:01'}])), 'a.yaml')
    const b = parseSpec(largeSpecYaml(spec([{name: 'c99997', mac: '02:5b:00:00:00:02'}])), 'b.yaml')
    assert.equal(base, 10_001)
    const [planA, planB] = await Promise.all([planApply(store, a), planApply(store, b)])
    const results = await Promise.allSettled([applyPlan(store, planA), applyPlan(store, planB)])
    const failed = results.filter((r) => r.status === 'rejected')
    assert.equal(failed.length, 1, JSON.stringify(results.map((r) => r.status)))
    assert.equal((failed[0]!.reason as XclusterError).code, 'APPLY_CONFLICT')
    const winner = results[0]!.status === 'fulfilled' ? a : b
    const loser = winner === a ? b : a
    assert.equal(specSha256(await readStoredSpec(store)), specSha256(winner))
    const names = new Set((await new NodeRegistry(store).list()).map((n) => n.name))
    assert.ok(names.has(winner.nodes.at(-1)!.name) && !names.has(loser.nodes.at(-1)!.name))
    assert.equal((await store.getJson(store.keys.mac(loser.nodes.at(-1)!.mac))) === undefined, true)

    // As processes: while an apply holds the claim (this test process, alive), another is refused and etcd does not move.
    const claim = await ApplyClaim.take(
      store,
      'test',
      (txn) => txn,
      () => new XclusterError('claim refused', {code: 'TEST'}),
    )
    let refused: Awaited<ReturnType<typeof cli>>
    const rev = await revision()
    try {
      refused = await cli('config', 'apply', '-f', specFile('d', spec([{name: 'c99995', mac: '02:5d:00:00:00:04'}])), '--yes')
      assert.deepEqual(await changedSince(rev), [])
    } finally {
      await claim.release()
    }
    assert.equal(refused.code, 3, refused.stderr)
    assert.match(refused.stderr, /Error \[APPLY_CONFLICT\]: Another config apply is running: by .* on .* \(pid \d+\) since .*\. Nothing was written\./)
    assert.match(refused.stderr, /Try this: Wait for it to finish, then re-run config apply \(if that process died, its claim ends within 10 s\)\./)
    const again = await cli('config', 'apply', '-f', join(dir, 'd.yaml'), '--yes')
    assert.equal(again.code, 0, again.stderr)
    assert.equal((await new NodeRegistry(store).get('c99995'))?.state, 'registered')
  })

  it('refuses a spec too large even for parts with SPEC_TOO_LARGE, writing nothing', async () => {
    // Too many nodes: 150,000 (about 9 MiB of JSON; parsing that much YAML takes a CLI half a minute, so in-process).
    const small = parseSpec(largeSpecYaml(largeSpecNodes(10)), 'x')
    const many = {...small, nodes: largeSpecNodes(150_000).map((n) => ({...n, type: typeFromName(n.name)!}))}
    const rev = await revision()
    await assert.rejects(planApply(store, many), (e: XclusterError) => {
      assert.equal(e.code, 'SPEC_TOO_LARGE')
      assert.equal(e.exit, 3)
      assert.match(e.message, /^The spec is \d+\.\d MiB of JSON \(150000 nodes\); xcluster stores at most 8\.0 MiB\.$/)
      assert.match(e.suggestion ?? '', /Split the machines into several clusters/)
      return true
    })
    // What is not nodes must fit one part (256 KiB): a service's start command of 300 KB does not.
    const file = join(dir, 'fat.yaml')
    writeFileSync(file, largeSpecYaml(ONE_K, {services: `  - {name: fat, start: '${'x'.repeat(300_000)}', stop: 'true', nodes: [s1, s2, s3]}\n`}))
    for (const flags of [['--dry-run'], ['--yes']]) {
      const res = await cli('config', 'apply', '-f', file, ...flags)
      assert.equal(res.code, 3, res.stderr)
      assert.match(res.stderr, /Error \[SPEC_TOO_LARGE\]: What the spec holds besides its nodes is 29\d KiB of JSON; xcluster stores at most 256 KiB of it\./)
      assert.match(res.stderr, /Try this: Shorten what is not nodes \(services, packages, pxe\)/)
    }
    assert.deepEqual(await changedSince(rev), [])
    assert.equal(await revision(), rev)
  })
})
