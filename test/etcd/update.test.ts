/**
 * `xcluster update` against a real etcd and real sshd hosts (one sandbox whose filesystem records
 * every write, answering on every node's address), with real ansible-playbook through xcluster's
 * own inventory: the dry run prints the batches and checks and changes nothing; quorum, an
 * election's last candidate, a node that is not ready, bad selectors, serials and run ids are
 * refused with nothing changed; and a run whose playbook fails on the second node stops there,
 * that node drained with the reason, the first back to ready, the third untouched, until
 * --resume continues it from the failed batch.
 */
import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {UpdateResult} from '../../src/lib/actions/update.js'
import {EtcdStore, type HeldLease} from '../../src/lib/etcd/store.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import type {RunShown} from '../../src/lib/tasks/journal.js'
import {ROOT, xcluster, type CliResult} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {startSandboxHost, type SandboxHost} from '../helpers/sandbox-host.js'
import {requireTool} from '../helpers/tools.js'

const ADDRESSES = {s1: '10.0.0.2', s2: '10.0.0.3', s3: '10.0.0.4', s4: '10.0.0.11', c1: '10.0.0.51', f1: '10.0.0.71'}
const NODES = Object.keys(ADDRESSES)

/** Writes a marker per host (the proof it ran there), and fails on c1 until XCT_FIXED=1 is in the environment. */
const FAILING_PLAYBOOK = `---
- name: Update test
  hosts: all
  gather_facts: false
  tasks:
    - name: Mark the host updated
      ansible.builtin.copy:
        dest: "/tmp/xct-updated-{{ inventory_hostname }}"
        content: "{{ inventory_hostname }}\\n"
        mode: "0644"
    - name: Break on c1
      ansible.builtin.fail:
        msg: broken on c1
      when: inventory_hostname == 'c1' and lookup('ansible.builtin.env', 'XCT_FIXED') != '1'
`

let etcd: TestEtcd
let store: EtcdStore
let host: SandboxHost
let dir: string
const leases: HeldLease[] = []

/** The CLI inside the sandbox's namespaces (where the nodes' addresses answer), against the test etcd. */
const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => xcluster([...args, '--etcd', etcd.unixEndpoint!], {wrap: [...host.wrap.slice(0, -1), `--wd=${dir}`], env})

async function setNode(name: string, fields: Partial<NodeRecord>): Promise<void> {
  const n = (await store.getJson<NodeRecord>(store.keys.node(name)))!.value
  await store.put(store.keys.node(name), {...n, ...fields})
}
const record = async (name: string) => (await store.getJson<NodeRecord>(store.keys.node(name)))!.value

async function refusedUnchanged(args: string[], exit: number, message: RegExp, code?: string): Promise<CliResult> {
  const etcdBefore = await store.snapshot()
  const hostBefore = host.snapshot()
  const r = await cli(args)
  assert.equal(r.code, exit, `exit status of ${args.join(' ')}: ${r.stderr}`)
  assert.match(r.stderr, message)
  if (code) assert.match(r.stderr, new RegExp(`Error \\[${code}\\]`))
  assert.match(r.stderr, /Try this: \S/)
  assert.deepEqual(await store.snapshot(), etcdBefore, 'etcd unchanged')
  assert.deepEqual(host.snapshot(), hostBefore, 'nothing written on the hosts')
  return r
}

/** A leader and candidates for a service, as serve --elect would leave them. */
async function campaign(service: string, leader: string, candidates: string[]): Promise<HeldLease> {
  const lease = await store.grantLease(120)
  leases.push(lease)
  await store.transaction().put(store.keys.electionLeader(service), {node: leader, since: new Date().toISOString(), ttl: 120}, {lease: lease.id}).commit()
  for (const node of candidates) await store.transaction().put(store.keys.electionCandidate(service, node), {node, pid: 1, bootId: 'x', since: new Date().toISOString()}, {lease: lease.id}).commit()
  return lease
}

describe('xcluster update: plan, refusals and a rolling run against real etcd, sshd and ansible', {concurrency: false}, () => {
  before(async () => {
    requireTool('ansible-playbook', 'ansible')
    etcd = await startEtcd({unixSocket: true, dir: mkdtempSync(join('/dev/shm', 'xct-update-etcd-'))})
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    host = await startSandboxHost({tag: 'update', addresses: Object.values(ADDRESSES)})
    // Under /dev/shm: not overlaid by the sandbox, so the playbook written here is what it reads.
    dir = mkdtempSync(join('/dev/shm', 'xct-update-'))
    let spec = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8').replace('key: ~/.ssh/id_ed25519', `key: ${host.clientKeyPath}`)
    for (const [name, ip] of Object.entries(ADDRESSES)) spec = spec.replace(new RegExp(`(\\{name: ${name}, mac: "[^"]+")(, ip: [0-9.]+)?\\}`), `$1, ip: ${ip}}`)
    spec = `${spec.trimEnd()}\nservices:\n  - {name: web, start: 'true', stop: 'true', nodes: [s1, s2]}\n`
    writeFileSync(join(dir, 'xcluster.yaml'), spec)
    writeFileSync(join(dir, 'failing.yml'), FAILING_PLAYBOOK)
    const applied = await xcluster(['config', 'apply', '-f', join(dir, 'xcluster.yaml'), '--etcd', etcd.endpoint])
    assert.equal(applied.code, 0, applied.stderr)
    for (const name of NODES) {
      await setNode(name, {state: 'ready'})
      await store.put(store.keys.hostKey(name), {fingerprints: [host.hostFingerprint], pinnedAt: new Date().toISOString(), source: 'registration'})
    }
  })

  after(async () => {
    for (const lease of leases) await lease.revoke().catch(() => undefined)
    await store?.close()
    await host?.stop()
    await etcd?.stop()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('--dry-run prints the batches in order with each check and what it would do, and changes nothing in etcd or on a host', async () => {
    await campaign('dhcp', 's2', ['s1', 's2', 's3'])
    const etcdBefore = await store.snapshot()
    const hostBefore = host.snapshot()
    const r = await cli(['update', '--dry-run'])
    assert.equal(r.code, 0, r.stderr)
    // Non-core first (storage, compute, frontend), then the core nodes, the dhcp leader s2 last.
    assert.deepEqual(
      [...r.stdout.matchAll(/^Batch (\d+): (.*)$/gm)].map((m) => m[2]),
      ['s4', 'c1', 'f1', 's1', 's3', 's2'],
    )
    assert.match(
      r.stdout,
      /^Batch 1: s4\n {2}quorum: skipped \(no core node in the batch\)\n {2}candidates: skipped \(no node of the batch campaigns in an election\)\n {2}ceph: skipped \(no Ceph OSD on s4\)$/m,
    )
    assert.match(
      r.stdout,
      /^Batch 6: s2\n {2}quorum: ok \(2 of 3 core nodes stay up while s2 is drained; etcd needs 2\)\n {2}candidates: ok \(dhcp: s1, s3 can take over\)\n {2}ceph: skipped \(no storage node in the batch\)$/m,
    )
    assert.match(r.stdout, /Dry run: nothing was changed/)
    assert.match(r.stdout, /- ansible-playbook update\.yml --limit s4$/m)
    assert.match(r.stdout, /- hand over dhcp \(token \d+\) to s1$/m)
    assert.deepEqual(await store.snapshot(), etcdBefore, 'etcd unchanged')
    assert.deepEqual(host.snapshot(), hostBefore, 'nothing written on the hosts')
  })

  it('--json: the plan, each batch planned, the run planned', async () => {
    const r = await cli(['update', '--dry-run', '--nodes', 'type=core', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const result = r.json<UpdateResult>()
    assert.equal(result.dryRun, true)
    assert.deepEqual(result.plan.order, ['s1', 's3', 's2'])
    assert.deepEqual(
      result.batches.map((b) => b.outcome),
      ['planned', 'planned', 'planned'],
    )
    assert.equal(result.run.result, 'planned')
  })

  it('a batch of two of three core nodes breaks quorum: refused, the dry run still shows why, nothing changed', async () => {
    const r = await refusedUnchanged(
      ['update', '--nodes', 'type=core', '--serial', '2', '--dry-run'],
      3,
      /batch 1 \(s1, s3\): quorum: 1 of 3 core nodes stay up while s1, s3 are drained; etcd needs 2/,
      'DRAIN_BREAKS_QUORUM',
    )
    assert.match(r.stdout, /^Batch 1: s1, s3\n {2}quorum: refused/m)
    assert.match(r.stderr, /Try this: Update fewer core nodes at once: xcluster update --nodes type=core --serial 1/)
  })

  it('3 core nodes, one drained: updating another is refused for quorum (exit 3), nothing changed', async () => {
    await setNode('s3', {state: 'drained'})
    try {
      await refusedUnchanged(['update', '--nodes', 's1', '--yes'], 3, /batch 1 \(s1\): quorum: 1 of 3 core nodes stay up while s1 is drained; etcd needs 2/, 'DRAIN_BREAKS_QUORUM')
      const r = await cli(['update', '--nodes', 's1', '--yes'])
      assert.match(r.stderr, /Try this: Bring s3 back to ready first: xcluster node undrain s3/)
      // Selecting the drained node itself is refused for its state.
      await refusedUnchanged(['update', '--nodes', 'type=core', '--yes'], 3, /Only ready nodes can be updated: s3 is drained/, 'NODE_WRONG_STATE')
    } finally {
      await setNode('s3', {state: 'ready'})
    }
  })

  it('the last eligible candidate of an elected service is refused (exit 3), nothing changed', async () => {
    // web may run on s1 and s2 only, and only s1 campaigns (s3's candidacy is not eligible).
    const web = await campaign('web', 's1', ['s1', 's3'])
    try {
      await refusedUnchanged(['update', '--nodes', 's1', '--yes'], 3, /batch 1 \(s1\): candidates: .*web: no other eligible candidate \(candidates: s1, s3\)/, 'DRAIN_LEAVES_NO_CANDIDATE')
      // s2 is no candidate of web: its update is not held back by it.
      const r = await cli(['update', '--nodes', 's2', '--dry-run'])
      assert.equal(r.code, 0, r.stderr)
    } finally {
      await web.revoke()
    }
  })

  it('an unknown node, a bad selector, a bad --serial and an unknown --resume id are refused with a clear message, nothing changed', async () => {
    await refusedUnchanged(['update', '--nodes', 's1,zz9', '--yes'], 3, /Unknown node: zz9/, 'NODE_NOT_FOUND')
    await refusedUnchanged(['update', '--nodes', 'rack=3', '--yes'], 2, /--nodes "rack=3": unknown key "rack" \(keys: type, state\)/, 'USAGE')
    await refusedUnchanged(['update', '--nodes', 'type=gpu', '--yes'], 2, /unknown type "gpu"/, 'USAGE')
    await refusedUnchanged(['update', '--nodes', 'state=failed', '--yes'], 3, /selects no node/, 'NO_NODES_SELECTED')
    await refusedUnchanged(['update', '--serial', '0', '--yes'], 2, /--serial: Expected an integer greater than or equal to 1/)
    await refusedUnchanged(['update', '--serial', 'two', '--yes'], 2, /--serial: Expected an integer but received: two/)
    await refusedUnchanged(['update', '--resume', '20260101-000000-abcdef', '--yes'], 2, /No run with id 20260101-000000-abcdef/, 'RUN_NOT_FOUND')
    await refusedUnchanged(['update', '--playbook', join(dir, 'missing.yml'), '--yes'], 2, /No file found at/)
  })

  it('without --yes and no terminal to ask on: refused, nothing changed', async () => {
    await refusedUnchanged(['update', '--nodes', 's4'], 2, /Refusing without confirmation/, 'CONFIRMATION_REQUIRED')
  })

  it('a playbook failing on the second node stops the run there: the first back to ready, the second drained with the reason, the third untouched; --resume finishes it', async () => {
    const f1Before = await record('f1')
    const r = await cli(['update', '--nodes', 's4,c1,f1', '--playbook', 'failing.yml', '--yes'])
    assert.equal(r.code, 4, `${r.stderr}${r.stdout}`)
    assert.match(r.stderr, /c1 \(phase playbook\): the playbook failed on c1: failed: broken on c1/)
    const resume = /Try this: Fix the cause, then continue with: (xcluster update .* --resume (\S+))$/m.exec(r.stderr)
    assert.ok(resume, r.stderr)
    const runId = resume[2]!

    const s4 = await record('s4')
    assert.equal(s4.state, 'ready')
    assert.deepEqual(
      s4.history!.slice(-3).map((h) => h.to),
      ['draining', 'drained', 'ready'],
    )
    const c1 = await record('c1')
    assert.equal(c1.state, 'drained')
    assert.match(c1.reason ?? '', new RegExp(`update failed in playbook: the playbook failed on c1: failed: broken on c1 \\(xcluster update, run ${runId}\\)`))
    assert.deepEqual(await record('f1'), f1Before, 'f1 untouched')
    const written = Object.keys(host.snapshot())
    assert.ok(written.includes('/tmp/xct-updated-s4') && written.includes('/tmp/xct-updated-c1'), 'the playbook ran on s4 and c1')
    assert.ok(!written.includes('/tmp/xct-updated-f1'), 'and not on f1')
    const shown = (await cli(['runs', 'show', runId, '--json'])).json<RunShown>()
    assert.equal(shown.record.result, 'failed')
    assert.deepEqual(shown.record.hosts, ['s4', 'c1', 'f1'])
    assert.ok(shown.checkpoints.includes('mark-ready/s4') && !shown.checkpoints.includes('playbook/c1'), shown.checkpoints.join(' '))

    // Fixed: the resume starts at c1's batch; s4 is not drained again.
    const s4History = s4.history!.length
    const resumed = await cli(['update', '--nodes', 's4,c1,f1', '--playbook', 'failing.yml', '--yes', '--resume', runId, '--json'], {XCT_FIXED: '1'})
    assert.equal(resumed.code, 0, `${resumed.stderr}${resumed.stdout}`)
    const result = resumed.json<UpdateResult>()
    assert.deepEqual(
      result.batches.map((b) => [b.nodes.join(','), b.outcome]),
      [
        ['s4', 'done earlier'],
        ['c1', 'updated'],
        ['f1', 'updated'],
      ],
    )
    for (const name of ['s4', 'c1', 'f1']) assert.equal((await record(name)).state, 'ready', name)
    assert.equal((await record('c1')).reason, undefined)
    assert.equal((await record('s4')).history!.length, s4History, 's4 was not drained again')
    assert.equal((await cli(['runs', 'show', runId, '--json'])).json<RunShown>().record.result, 'succeeded')
  })
})
