import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {parse as parseYaml} from 'yaml'

import {type XclusterError} from '../../src/lib/errors.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {MacBinding, NodeRecord} from '../../src/lib/nodes/record.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {readStoredSpec} from '../../src/lib/spec/store.js'
import type {ApplyResult} from '../../src/lib/spec/plan-text.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {requireTool} from '../helpers/tools.js'

const EXAMPLE = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8')
const etcdctl = requireTool('etcdctl', 'etcd-client')

let etcd: TestEtcd
let dir: string
let store: EtcdStore

const cli = (...args: string[]) => xcluster([...args, '--etcd', etcd.endpoint], {cwd: dir})
/** A command that never touches etcd takes no etcd flags. */
const offline = (...args: string[]) => xcluster(args, {cwd: dir})

function edit(from: string, to: string, text = EXAMPLE): string {
  assert.ok(text.includes(from), `test setup: ${JSON.stringify(from)} not in the spec`)
  return text.replace(from, to)
}

function writeSpec(name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

/** Every key under /xcluster/ with values and create/mod revisions, plus the store's revision. */
function etcdState(): unknown {
  const out = execFileSync(etcdctl, ['--endpoints', etcd.endpoint, 'get', '--prefix', '/xcluster/', '-w', 'json'], {
    encoding: 'utf8',
    env: {...process.env, ETCDCTL_API: '3'},
  })
  const res = JSON.parse(out) as {header: {revision: number}; kvs?: unknown[]}
  return {revision: res.header.revision, kvs: res.kvs ?? []}
}

const lineOf = (text: string, needle: string): number => text.split('\n').findIndex((l) => l.includes(needle)) + 1

before(async () => {
  etcd = await startEtcd()
  dir = mkdtempSync(join(tmpdir(), 'xc-config-'))
  store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
})

after(async () => {
  await store?.close()
  await etcd?.stop()
  rmSync(dir, {recursive: true, force: true})
})

describe('config apply / show, node show against a real etcd', () => {
  it('config show before any apply: exit 3, SPEC_NOT_FOUND with a next step', async () => {
    const res = await cli('config', 'show')
    assert.equal(res.code, 3)
    assert.match(res.stderr, /Error \[SPEC_NOT_FOUND\]: No cluster spec is stored for cluster "xcluster"\./)
    assert.match(res.stderr, /Try this: Store one with: xcluster config apply -f xcluster\.yaml/)
  })

  it('--dry-run prints the diff and writes nothing', async () => {
    const file = writeSpec('xcluster.yaml', EXAMPLE)
    const before = etcdState()
    const res = await cli('config', 'apply', '-f', file, '--dry-run')
    assert.equal(res.code, 0, res.stderr)
    for (const line of [
      '+ spec (first apply)',
      '+ node s1: core, mac 02:58:43:00:01:01, ip 10.0.0.2',
      '+ node s4: storage, mac 02:58:43:00:01:04, ip dhcp',
      '+ node f1: frontend, mac 02:58:43:00:03:01, ip dhcp',
      '+ mac 02:58:43:00:02:01 -> c1',
      'Dry run: nothing was written.',
    ]) {
      assert.ok(res.stdout.includes(line), `missing ${JSON.stringify(line)} in:\n${res.stdout}`)
    }
    assert.deepEqual(etcdState(), before)
    const json = (await cli('config', 'apply', '-f', file, '--dry-run', '--json')).json<ApplyResult>()
    assert.equal(json.dryRun, true)
    assert.equal(json.applied, false)
    assert.equal(json.add.length, 6)
    assert.deepEqual(etcdState(), before)
  })

  it('apply registers every node (state registered) and every MAC', async () => {
    const res = await cli('config', 'apply', '-f', join(dir, 'xcluster.yaml'), '--json')
    assert.equal(res.code, 0, res.stderr)
    const result = res.json<ApplyResult>()
    assert.equal(result.applied, true)
    assert.deepEqual(
      result.add.map((n) => n.name),
      ['s1', 's2', 's3', 's4', 'c1', 'f1'],
    )

    const nodes = (await store.listJson<NodeRecord>(store.keys.nodesPrefix())).map((r) => r.value)
    assert.deepEqual(nodes.map((n) => [n.name, n.type, n.mac, n.ip ?? null, n.state]).sort(), [
      ['c1', 'compute', '02:58:43:00:02:01', null, 'registered'],
      ['f1', 'frontend', '02:58:43:00:03:01', null, 'registered'],
      ['s1', 'core', '02:58:43:00:01:01', '10.0.0.2', 'registered'],
      ['s2', 'core', '02:58:43:00:01:02', '10.0.0.3', 'registered'],
      ['s3', 'core', '02:58:43:00:01:03', '10.0.0.4', 'registered'],
      ['s4', 'storage', '02:58:43:00:01:04', null, 'registered'],
    ])
    const macs = await store.listJson<MacBinding>(store.keys.macsPrefix())
    assert.deepEqual(macs.map((m) => [store.keys.macFromKey(m.key), m.value.node]).sort(), [
      ['02:58:43:00:01:01', 's1'],
      ['02:58:43:00:01:02', 's2'],
      ['02:58:43:00:01:03', 's3'],
      ['02:58:43:00:01:04', 's4'],
      ['02:58:43:00:02:01', 'c1'],
      ['02:58:43:00:03:01', 'f1'],
    ])
    assert.deepEqual(await readStoredSpec(store), parseSpec(EXAMPLE, 'x'))
    assert.equal((await store.getJson(store.keys.specFold())) === undefined, true, 'the fold is finished when the command returns')
  })

  it('re-applying the same file says so and leaves etcd byte-identical, revisions included', async () => {
    const before = etcdState()
    const res = await cli('config', 'apply', '-f', join(dir, 'xcluster.yaml'))
    assert.equal(res.code, 0, res.stderr)
    assert.equal(res.stdout.trim(), `No changes: the cluster already matches ${join(dir, 'xcluster.yaml')}.`)
    const json = (await cli('config', 'apply', '-f', join(dir, 'xcluster.yaml'), '--json')).json<ApplyResult>()
    assert.equal(json.changed, false)
    assert.equal(json.applied, false)
    assert.deepEqual(etcdState(), before)
  })

  const addIpToS4 = (ip: string) => edit('{name: s4, mac: "02:58:43:00:01:04"}', `{name: s4, mac: "02:58:43:00:01:04", ip: ${ip}}`)
  const badInputs: {name: string; text: string; path: string; problem: string; needle?: string}[] = [
    {name: 'malformed YAML', text: edit('  dns: [10.0.0.1]', '  dns: [10.0.0.1'), path: '(yaml)', problem: 'malformed YAML: '},
    {name: 'unknown key', text: edit('  user: root', '  user: root\n  port: 22'), path: 'ssh.port', problem: 'unknown key "port". Allowed keys here: user, key.', needle: 'port: 22'},
    {name: 'bad MAC', text: edit('"02:58:43:00:01:04"', '"02:58:43:00:01:4"'), path: 'nodes[3].mac', problem: '"02:58:43:00:01:4" is not a MAC address.', needle: '02:58:43:00:01:4"'},
    {
      name: 'overlapping ranges',
      text: edit('compute: 10.0.0.51-10.0.0.70', 'compute: 10.0.0.25-10.0.0.70'),
      path: 'network.ranges.compute',
      problem: 'the compute range 10.0.0.25-10.0.0.70 overlaps the storage range 10.0.0.11-10.0.0.30.',
      needle: 'compute: 10.0.0.25',
    },
    {
      name: 'out-of-subnet range',
      text: edit('frontend: 10.0.0.71-10.0.0.80', 'frontend: 10.0.1.71-10.0.1.80'),
      path: 'network.ranges.frontend',
      problem: 'the frontend range 10.0.1.71-10.0.1.80 is outside the subnet 10.0.0.0/24.',
      needle: 'frontend: 10.0.1.71',
    },
    {
      name: 'duplicate name',
      text: edit('name: f1,', 'name: c1,'),
      path: 'nodes[5].name',
      problem: 'duplicate node name "c1" (first used at nodes[4].name',
      needle: 'name: c1, mac: "02:58:43:00:03:01"',
    },
    {
      name: 'duplicate MAC',
      text: edit('"02:58:43:00:03:01"', '"02-58-43-00-02-01"'),
      path: 'nodes[5].mac',
      problem: 'duplicate MAC 02:58:43:00:02:01 (already used at nodes[4].mac',
      needle: '02-58-43-00-02-01',
    },
    {name: 'duplicate IP', text: addIpToS4('10.0.0.4'), path: 'nodes[3].ip', problem: 'duplicate IP 10.0.0.4 (already used at nodes[2].ip', needle: 'name: s4'},
    {
      name: 'core count 2',
      text: edit('  - {name: s3, mac: "02:58:43:00:01:03", ip: 10.0.0.4}\n', ''),
      path: 'nodes',
      problem: "there are 2 core nodes (s1, s2), but etcd's quorum needs 3 or 5.",
      needle: 'name: s1',
    },
    {
      name: 'core count 4',
      text: edit('{name: s4, mac: "02:58:43:00:01:04"}', '{name: s4, mac: "02:58:43:00:01:04", type: core}'),
      path: 'nodes',
      problem: "there are 4 core nodes (s1, s2, s3, s4), but etcd's quorum needs 3 or 5.",
      needle: 'name: s1',
    },
  ]

  for (const bad of badInputs) {
    it(`refuses ${bad.name}: exit 2, FILE:LINE:COL path and problem, etcd unchanged`, async () => {
      const file = writeSpec(`bad-${bad.name.replaceAll(' ', '-')}.yaml`, bad.text)
      const before = etcdState()
      const res = await cli('config', 'apply', '-f', file)
      assert.equal(res.code, 2, res.stderr)
      assert.match(res.stderr, new RegExp(`^Error \\[SPEC_INVALID\\]: ${file.replaceAll('.', '\\.')} is not a valid cluster spec \\(1 problem\\):`))
      const line = bad.needle ? lineOf(bad.text, bad.needle) : undefined
      const prefix = line ? `${file}:${line}:` : `${file}:`
      const problemLine = res.stderr.split('\n').find((l) => l.includes(`: ${bad.path}: `))
      assert.ok(problemLine, `no problem line for ${bad.path} in:\n${res.stderr}`)
      assert.ok(problemLine.trim().startsWith(prefix), `${problemLine} should start with ${prefix}`)
      assert.match(problemLine, /:\d+:\d+: /)
      assert.ok(problemLine.includes(`: ${bad.path}: ${bad.problem}`), `${problemLine} lacks ${bad.problem}`)
      assert.match(res.stderr, /Try this: Fix the problems listed above/)
      assert.deepEqual(etcdState(), before)
    })
  }

  it('config validate: OK summary, JSON counts, exit 2 with details for a bad file', async () => {
    const good = await offline('config', 'validate', '-f', join(dir, 'xcluster.yaml'))
    assert.equal(good.code, 0)
    assert.match(good.stdout, /^OK: .*xcluster\.yaml is a valid spec for cluster xcluster: 6 nodes \(3 core, 1 storage, 1 compute, 1 frontend\)\./)
    const json = (await offline('config', 'validate', '-f', join(dir, 'xcluster.yaml'), '--json')).json()
    assert.deepEqual(json, {valid: true, file: join(dir, 'xcluster.yaml'), nodes: {core: 3, storage: 1, compute: 1, frontend: 1}})
    const bad = await offline('config', 'validate', '-f', join(dir, 'bad-bad-MAC.yaml'), '--json')
    assert.equal(bad.code, 2)
    const error = bad.json<{error: {code: string; details: {problems: {path: string; line: number}[]}}}>().error
    assert.equal(error.code, 'SPEC_INVALID')
    assert.deepEqual(
      error.details.problems.map((p) => p.path),
      ['nodes[3].mac'],
    )
  })

  it('config show round-trips: its YAML applies with no changes; --json is the stored spec', async () => {
    const shown = await cli('config', 'show')
    assert.equal(shown.code, 0, shown.stderr)
    assert.deepEqual(parseSpec(shown.stdout, 'shown.yaml'), parseSpec(EXAMPLE, 'x'))
    const file = writeSpec('shown.yaml', shown.stdout)
    const before = etcdState()
    const res = await cli('config', 'apply', '-f', file)
    assert.match(res.stdout, /^No changes: the cluster already matches /)
    assert.deepEqual(etcdState(), before)
    assert.deepEqual((await cli('config', 'show', '--json')).json(), parseSpec(EXAMPLE, 'x'))
    assert.equal(parseYaml(shown.stdout).nodes[0].mac, '02:58:43:00:01:01')
  })

  it('node show: a table for a known node, its record as JSON; unknown is exit 3', async () => {
    const res = await cli('node', 'show', 's1')
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /^FIELD +VALUE$/m)
    assert.match(res.stdout, /^type +core$/m)
    assert.match(res.stdout, /^mac +02:58:43:00:01:01$/m)
    assert.match(res.stdout, /^ip +10\.0\.0\.2$/m)
    assert.match(res.stdout, /^state +registered$/m)
    const record = (await cli('node', 'show', 's4', '--json')).json<NodeRecord>()
    assert.deepEqual(record, (await store.getJson<NodeRecord>(store.keys.node('s4')))?.value)
    const unknown = await cli('node', 'show', 'nope')
    assert.equal(unknown.code, 3)
    assert.match(unknown.stderr, /Error \[NODE_NOT_FOUND\]: No node named "nope" in cluster "xcluster"\./)
    assert.match(unknown.stderr, /Try this: .*xcluster node list/)
  })

  it('changes: updates keep state, MAC moves update the registry, nodes not in spec are left', async () => {
    // Another component moved c1 along its lifecycle: apply must not reset that.
    const c1 = (await store.getJson<NodeRecord>(store.keys.node('c1')))!.value
    await store.put(store.keys.node('c1'), {...c1, state: 'ready'})
    let text = edit('{name: s4, mac: "02:58:43:00:01:04"}', '{name: s4, mac: "02:58:43:00:01:04", ip: 10.0.0.12}')
    text = edit('"02:58:43:00:02:01"', '"02:58:43:00:02:99"', text)
    text = edit('  - {name: f1, mac: "02:58:43:00:03:01"}\n', '', text)
    const file = writeSpec('changed.yaml', text)

    const before = etcdState()
    const dry = await cli('config', 'apply', '-f', file, '--dry-run')
    assert.equal(dry.code, 0, dry.stderr)
    for (const line of [
      '~ spec (changed)',
      '~ node s4: ip (none) -> 10.0.0.12 (state registered kept)',
      '~ node c1: mac 02:58:43:00:02:01 -> 02:58:43:00:02:99 (state ready kept)',
      '+ mac 02:58:43:00:02:99 -> c1',
      '- mac 02:58:43:00:02:01 (was c1)',
      '- node f1: not in spec, left as is (registered); apply never deletes nodes, remove it with: xcluster node remove f1',
    ]) {
      assert.ok(dry.stdout.includes(line), `missing ${JSON.stringify(line)} in:\n${dry.stdout}`)
    }
    assert.deepEqual(etcdState(), before)

    // It changes registered nodes: without a terminal to ask on, only --yes applies it.
    const unconfirmed = await cli('config', 'apply', '-f', file)
    assert.equal(unconfirmed.code, 2, unconfirmed.stderr)
    assert.match(unconfirmed.stderr, /CONFIRMATION_REQUIRED[\s\S]*Try this: Re-run with --yes/)
    assert.deepEqual(etcdState(), before)

    const res = await cli('config', 'apply', '-f', file, '--yes')
    assert.equal(res.code, 0, res.stderr)
    const after = (key: string) => store.getJson<NodeRecord>(store.keys.node(key)).then((r) => r?.value)
    assert.equal((await after('c1'))?.state, 'ready')
    assert.equal((await after('c1'))?.mac, '02:58:43:00:02:99')
    assert.equal((await after('c1'))?.createdAt, c1.createdAt)
    assert.equal((await after('s4'))?.ip, '10.0.0.12')
    assert.equal((await after('f1'))?.state, 'registered', 'f1 is kept')
    assert.equal(await store.getJson(store.keys.mac('02:58:43:00:02:01')), undefined)
    assert.equal((await store.getJson<MacBinding>(store.keys.mac('02:58:43:00:02:99')))?.value.node, 'c1')
    assert.equal((await store.getJson<MacBinding>(store.keys.mac('02:58:43:00:03:01')))?.value.node, 'f1', 'f1 keeps its MAC')

    const again = await cli('config', 'apply', '-f', file)
    assert.match(again.stdout, /^No changes: /)
    assert.match(again.stdout, /- node f1: not in spec, left as is/)
  })

  it('a concurrent change between plan and apply: APPLY_CONFLICT and nothing written', async () => {
    const spec = parseSpec(edit('{name: s4, mac: "02:58:43:00:01:04"}', '{name: s4, mac: "02:58:43:00:01:04", ip: 10.0.0.13}'), 'x')
    const plan = await planApply(store, spec)
    assert.ok(plan.changed)
    const s4 = (await store.getJson<NodeRecord>(store.keys.node('s4')))!.value
    await store.put(store.keys.node('s4'), {...s4, state: 'provisioning'})
    const before = etcdState()
    await assert.rejects(applyPlan(store, plan), (e: XclusterError) => {
      assert.equal(e.code, 'APPLY_CONFLICT')
      assert.equal(e.exit, 3)
      assert.match(e.message, /Nothing was written/)
      assert.match(e.suggestion ?? '', /Re-run config apply/)
      return true
    })
    assert.deepEqual(etcdState(), before)

    // A spec written by someone else in between conflicts too, even for a plan of new nodes only.
    const plan2 = await planApply(store, parseSpec(edit('  - {name: f1,', '  - {name: f2, mac: "02:58:43:00:03:02"}\n  - {name: f1,'), 'x'))
    await store.put(store.keys.spec(), {...spec, cluster: 'xcluster'})
    const before2 = etcdState()
    await assert.rejects(applyPlan(store, plan2), /Nothing was written/)
    assert.deepEqual(etcdState(), before2)
  })

  it('applies a plan larger than one etcd transaction allows (128 operations) in full', async () => {
    const many = Array.from({length: 70}, (_, i) => `  - {name: c${i + 10}, mac: "02:58:43:00:09:${i.toString(16).padStart(2, '0')}"}`).join('\n')
    const file = writeSpec('huge.yaml', `${EXAMPLE.trimEnd()}\n${many}\n`)
    const res = await cli('config', 'apply', '-f', file, '--yes', '--json')
    assert.equal(res.code, 0, res.stderr)
    assert.equal(res.json<ApplyResult>().add.length, 70)
    const nodes = await store.listJson<NodeRecord>(store.keys.nodesPrefix())
    assert.deepEqual(
      Array.from({length: 70}, (_, i) => `c${i + 10}`).filter((name) => !nodes.some((n) => n.value.name === name && n.value.state === 'registered')),
      [],
    )
    assert.equal((await store.listJson(store.keys.macsPrefix())).length, nodes.length)
    assert.equal((await readStoredSpec(store)).nodes.length, 76)
  })

  it('refuses a spec for another cluster than --cluster', async () => {
    const before = etcdState()
    const res = await xcluster(['config', 'apply', '-f', join(dir, 'xcluster.yaml'), '--etcd', etcd.endpoint, '--cluster', 'other'])
    assert.equal(res.code, 2)
    assert.match(res.stderr, /Error \[CLUSTER_MISMATCH\]: The spec is for cluster "xcluster" but the command targets cluster "other"\./)
    assert.deepEqual(etcdState(), before)
  })
})

describe('init', () => {
  it('writes the example, refuses to overwrite it, and the file validates', async () => {
    const initDir = mkdtempSync(join(tmpdir(), 'xc-init-'))
    try {
      const res = await xcluster(['init'], {cwd: initDir})
      assert.equal(res.code, 0, res.stderr)
      assert.equal(readFileSync(join(initDir, 'xcluster.yaml'), 'utf8'), EXAMPLE)
      writeFileSync(join(initDir, 'xcluster.yaml'), 'edited\n')
      const again = await xcluster(['init'], {cwd: initDir})
      assert.equal(again.code, 2)
      assert.match(again.stderr, /Error \[FILE_EXISTS\]: xcluster\.yaml already exists; not overwriting it\./)
      assert.match(again.stderr, /Try this: .*--force/)
      assert.equal(readFileSync(join(initDir, 'xcluster.yaml'), 'utf8'), 'edited\n')
      const forced = await xcluster(['init', '--force', '--json'], {cwd: initDir})
      assert.deepEqual(forced.json(), {file: 'xcluster.yaml', overwritten: true, dryRun: false})
      const other = await xcluster(['init', '-f', 'lab.yaml'], {cwd: initDir})
      assert.equal(other.code, 0)
      const valid = await xcluster(['config', 'validate', '-f', 'lab.yaml'], {cwd: initDir})
      assert.equal(valid.code, 0, valid.stderr)
      assert.match(valid.stdout, /^OK: lab\.yaml is a valid spec/)
    } finally {
      rmSync(initDir, {recursive: true, force: true})
    }
  })
})
