/**
 * Issue 10's `ceph bootstrap` and `ceph join`, in the lab, on the cluster test/lab/bootstrap.test.ts
 * formed (this file sorts after it): Debian's Ceph (the spec's `ceph: {backend: ceph}`) installed
 * through the cluster's package cache and formed over SSH by the CLI as an operator runs it, then
 * checked from the nodes themselves: `ceph -s` on s3, systemd, each ceph.conf, and etcd's record.
 * The spec the other lab tests run with is applied again at the end; Ceph's daemons stay.
 */
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {CephFormResult} from '../../src/lib/ceph/formation.js'
import type {CephClusterRecord} from '../../src/lib/ceph/membership.js'
import type {CephStatus} from '../../src/lib/ceph/status.js'
import {admin, clusterStore, inNode, lab, ok, onNode} from '../helpers/lab.js'

const state = lab()
const store = clusterStore(state)
const dir = mkdtempSync(join(tmpdir(), 'xct-lab-ceph-'))
const MONS = ['s1', 's2', 's3']
let specBefore: string

const record = async () => (await store.getJson<CephClusterRecord>(store.keys.cephCluster()))?.value

/** `ceph -s` as Ceph itself answers on a node. */
function cephStatusOn(node: string): {fsid: string; quorum_names: string[]; monmap: {num_mons: number; epoch: number}; mgrmap: {available: boolean; num_standbys: number}} {
  return JSON.parse(inNode(node, 'ceph -s --format json --connect-timeout 20'))
}

/** The keys Ceph holds for the cluster's clients and daemons, as read on the node: none may be printed. */
function secretsOn(node: string): string[] {
  return inNode(node, "cat /etc/ceph/ceph.client.admin.keyring /var/lib/ceph/bootstrap-osd/ceph.keyring | sed -n 's/^\\s*key = //p'")
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
}

function assertNoSecret(output: string, secrets: string[], what: string): void {
  assert.ok(secrets.length >= 2, 'the keyrings hold keys')
  for (const s of secrets) assert.ok(!output.includes(s), `${what} printed a key`)
}

/** What a refusal must leave as it was: etcd's record, the runs journaled, Ceph's monmap. */
async function unchanged(): Promise<unknown> {
  return {record: await record(), runs: (await store.listJson(store.keys.runsPrefix())).length, monmap: cephStatusOn('s1').monmap.epoch}
}

describe("ceph bootstrap and ceph join in the lab: Debian's Ceph formed over SSH on the core nodes", {concurrency: false}, () => {
  before(async () => {
    specBefore = ok(await admin(['config', 'show']), 'config show').stdout
    assert.doesNotMatch(specBefore, /^ceph:/m, 'the lab spec has no ceph section before this test')
    const withCeph = join(dir, 'ceph.yaml')
    writeFileSync(withCeph, `${specBefore.trimEnd()}\nceph:\n  backend: ceph\n`)
    ok(await admin(['config', 'apply', '-f', withCeph, '--yes']), 'config apply ceph.backend ceph')
  })

  after(async () => {
    const file = join(dir, 'before.yaml')
    writeFileSync(file, specBefore)
    ok(await admin(['config', 'apply', '-f', file, '--yes']), 'config apply the spec before')
    await store.close()
    rmSync(dir, {recursive: true, force: true})
  })

  it('--dry-run of ceph bootstrap prints the lines it would run and changes nothing (no package, no /etc/ceph, no record)', async () => {
    const r = ok(await admin(['ceph', 'bootstrap', '--dry-run']), 'ceph bootstrap --dry-run')
    for (const line of [
      'install ceph-mon ceph-mgr ceph-osd',
      'create /etc/ceph/ceph.conf',
      "ceph-authtool --create-keyring /etc/ceph/ceph.client.admin.keyring --gen-key -n client.admin --cap mon 'allow *'",
      'runuser -u ceph -- ceph-mon --mkfs -i s1 --monmap /var/lib/ceph/tmp/monmap --keyring /var/lib/ceph/tmp/ceph.mon.keyring',
      'systemctl enable --now ceph-mon@s1',
      "ceph auth get-or-create mgr.s1 mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o /var/lib/ceph/mgr/ceph-s1/keyring",
      'systemctl enable --now ceph-mgr@s1',
      'record the Ceph cluster in etcd (ceph, its fsid, monitor s1)',
    ]) {
      assert.ok(r.stdout.includes(line), `the plan names: ${line}\n${r.stdout}`)
    }
    assert.match(r.stdout, /Dry run: nothing was changed/)
    assert.equal((await onNode('s1', 'dpkg-query -W -f="${Status}" ceph-mon')).stdout.includes('install ok installed'), false, 'ceph-mon is not installed on s1')
    assert.notEqual((await onNode('s1', 'test -e /etc/ceph')).code, 0, 's1 has no /etc/ceph')
    assert.equal(await record(), undefined, 'etcd records no Ceph cluster')
  })

  it('ceph join before any bootstrap is refused with the next step, nothing changed', async () => {
    const r = await admin(['ceph', 'join', 's2'])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /Ceph was not bootstrapped/)
    assert.match(r.stderr, /Try this: .*ceph bootstrap/)
    assert.equal(await record(), undefined)
  })

  it('ceph bootstrap: ceph-mon@s1 and ceph-mgr@s1 run, the monitor is in quorum and the manager active; etcd records the fsid and s1, no key', async (t) => {
    const started = Date.now()
    const r = ok(await admin(['ceph', 'bootstrap', '--json']), 'ceph bootstrap')
    t.diagnostic(`ceph bootstrap took ${Math.round((Date.now() - started) / 1000)} s`)
    // The package download through the lab's cache, as apt logged it on s1.
    t.diagnostic(`apt on s1: ${inNode('s1', "grep -B1 -A3 'Commandline:.*ceph-mon' /var/log/apt/history.log | grep -E 'Start-Date|End-Date' | tr '\\n' ' '; true")}`)
    const result = r.json<CephFormResult>()
    const status = cephStatusOn('s1')
    assert.deepEqual(status.quorum_names, ['s1'])
    assert.equal(status.mgrmap.available, true)
    assert.equal(result.fsid, status.fsid)
    assert.deepEqual(result.mons, ['s1'])
    for (const unit of ['ceph-mon@s1', 'ceph-mgr@s1']) {
      assert.equal(inNode('s1', `systemctl is-active ${unit}`).trim(), 'active', unit)
      assert.equal(inNode('s1', `systemctl is-enabled ${unit}`).trim(), 'enabled', unit)
    }
    assert.equal(inNode('s1', 'stat -c %a /etc/ceph/ceph.client.admin.keyring').trim(), '600')
    assert.match(inNode('s1', 'cat /etc/ceph/ceph.conf'), /^mon_host = \[v2:10\.0\.0\.2:3300,v1:10\.0\.0\.2:6789\]$/m)
    const rec = (await record())!
    assert.deepEqual({backend: rec.backend, fsid: rec.fsid, mons: rec.mons}, {backend: 'ceph', fsid: status.fsid, mons: ['s1']})
    const secrets = secretsOn('s1')
    assertNoSecret(r.stdout + r.stderr, secrets, 'ceph bootstrap')
    assertNoSecret(JSON.stringify(await store.snapshot()), secrets, 'etcd')
  })

  it('--dry-run of ceph join s2 plans the monitor and manager from the cluster and changes nothing', async () => {
    const before = await unchanged()
    const r = ok(await admin(['ceph', 'join', 's2', '--dry-run']), 'ceph join s2 --dry-run')
    for (const line of [
      'install ceph-mon ceph-mgr ceph-osd',
      'create /etc/ceph/ceph.client.admin.keyring',
      'ceph mon getmap -o /var/lib/ceph/tmp/monmap',
      'ceph auth get mon. -o /var/lib/ceph/tmp/ceph.mon.keyring',
      'systemctl enable --now ceph-mon@s2',
      'update /etc/ceph/ceph.conf',
      'record s2 as a Ceph monitor in etcd',
    ]) {
      assert.ok(r.stdout.includes(line), `the plan names: ${line}\n${r.stdout}`)
    }
    assert.deepEqual(await unchanged(), before)
    assert.notEqual((await onNode('s2', 'test -e /etc/ceph/ceph.conf')).code, 0, 's2 has no ceph.conf')
    assertNoSecret(r.stdout + r.stderr, secretsOn('s1'), 'ceph join --dry-run')
  })

  it('ceph join s2, then s3: ceph -s on s3 shows three monitors in quorum and an active manager; every ceph.conf names all three', async (t) => {
    for (const node of ['s2', 's3']) {
      const started = Date.now()
      const r = ok(await admin(['ceph', 'join', node]), `ceph join ${node}`)
      t.diagnostic(`ceph join ${node} took ${Math.round((Date.now() - started) / 1000)} s`)
      assertNoSecret(r.stdout + r.stderr, secretsOn('s1'), `ceph join ${node}`)
    }
    const status = cephStatusOn('s3')
    assert.deepEqual([...status.quorum_names].sort(), MONS)
    assert.equal(status.monmap.num_mons, 3)
    assert.equal(status.mgrmap.available, true)
    assert.equal(status.mgrmap.num_standbys, 2)
    const monHost = /^mon_host = (.*)$/m
    for (const node of MONS) {
      assert.equal(inNode(node, `systemctl is-active ceph-mon@${node} ceph-mgr@${node}`).trim(), 'active\nactive', node)
      assert.equal(monHost.exec(inNode(node, 'cat /etc/ceph/ceph.conf'))?.[1], '[v2:10.0.0.2:3300,v1:10.0.0.2:6789],[v2:10.0.0.3:3300,v1:10.0.0.3:6789],[v2:10.0.0.4:3300,v1:10.0.0.4:6789]', node)
    }
    assert.deepEqual((await record())!.mons, MONS)
    // The operator's view agrees with Ceph's own.
    const seen = ok(await admin(['ceph', 'status', '--json']), 'ceph status').json<CephStatus>()
    assert.deepEqual({fsid: seen.fsid, mons: seen.mons, mgr: seen.mgr.available}, {fsid: status.fsid, mons: {total: 3, inQuorum: MONS}, mgr: true})
  })

  it('a re-run of ceph bootstrap, ceph join s2 and ceph join s3 changes nothing', async () => {
    const epoch = cephStatusOn('s1').monmap.epoch
    for (const args of [['bootstrap'], ['join', 's2'], ['join', 's3']]) {
      const r = ok(await admin(['ceph', ...args]), `ceph ${args.join(' ')} again`)
      assert.match(r.stdout, /^No changes: /m, `ceph ${args.join(' ')} again:\n${r.stdout}`)
    }
    assert.equal(cephStatusOn('s1').monmap.epoch, epoch)
  })

  it('refused with the next step and nothing changed: an unknown node, a frontend node, the bootstrap node, a second bootstrap', async () => {
    const before = await unchanged()
    const refusals: [string[], number, RegExp, RegExp][] = [
      [['join', 'nope'], 2, /Unknown node "nope"/, /node list/],
      [['join', 'f1'], 3, /f1 is a frontend node/, /core or storage node/],
      [['join', 's1'], 3, /s1 bootstrapped the Ceph cluster/, /ceph bootstrap/],
      [['bootstrap', '--node', 's2'], 3, /already bootstrapped/, /ceph status/],
    ]
    for (const [args, code, message, next] of refusals) {
      const r = await admin(['ceph', ...args])
      assert.equal(r.code, code, `ceph ${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message, args.join(' '))
      assert.match(r.stderr, new RegExp(`Try this: .*${next.source}`), args.join(' '))
    }
    assert.deepEqual(await unchanged(), before)
  })
})
