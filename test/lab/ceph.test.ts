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
import type {OsdDisk} from '../../src/lib/ceph/disks.js'
import type {DiskAddResult} from '../../src/lib/ceph/disk-add.js'
import {admin, clusterStore, inNode, lab, ok, onNode, waitUntil} from '../helpers/lab.js'

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

/** Ceph's own verdict and its checks, as `ceph health` answers on a node. */
function healthOn(node: string): {status: string; checks: Record<string, {summary: {message: string}}>} {
  return JSON.parse(inNode(node, 'ceph health --format json --connect-timeout 20'))
}

async function waitForHealthOk(what: string): Promise<void> {
  await waitUntil(
    () => healthOn('s1').status === 'HEALTH_OK',
    180_000,
    () => `${what}: ${JSON.stringify(healthOn('s1'))}\n${inNode('s1', 'ceph -s')}`,
  )
}

const nodeState = async (name = 's3') => ok(await admin(['node', 'show', name, '--json']), `node show ${name}`).json<{state: string}>()

/**
 * The xcluster commands a refusal's "Try this" line names, as printed; those with a placeholder
 * (NODE, DEVICE) are templates, not commands, and are left out.
 */
function suggestedCommands(stderr: string): string[][] {
  const lines = [...stderr.matchAll(/Try this: ([^\]\n]*)/g)].map((m) => m[1]!)
  return lines.flatMap((line) => [...line.matchAll(/xcluster ((?:[A-Za-z0-9-][\w./=-]* ?)+)/g)].map((m) => m[1]!.trim().split(' ')).filter((argv) => argv.every((a) => !/^[A-Z]+$/.test(a))))
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
    const suggested: string[][] = []
    for (const [args, code, message, next] of refusals) {
      const r = await admin(['ceph', ...args])
      assert.equal(r.code, code, `ceph ${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message, args.join(' '))
      assert.match(r.stderr, new RegExp(`Try this: .*${next.source}`), args.join(' '))
      suggested.push(...suggestedCommands(r.stderr))
    }
    assert.deepEqual(await unchanged(), before)
    // Every command a refusal suggests runs as printed (here each reads, or re-checks and changes nothing).
    assert.ok(suggested.length >= 3, JSON.stringify(suggested))
    for (const argv of suggested) assert.doesNotMatch(ok(await admin(argv), `suggested: xcluster ${argv.join(' ')}`).stdout, /change\(s\) on/)
  })

  it('--dry-run of ceph disk add s1 loop,4G prints the OSD script and changes nothing; bad specs, no room: refused, nothing changed', async () => {
    const r = ok(await admin(['ceph', 'disk', 'add', 's1', 'loop,4G', '--dry-run']), 'ceph disk add --dry-run')
    assert.match(r.stdout, /ceph-osd --cluster ceph --osd-objectstore bluestore --mkfs -i "\$id" .* --bluestore-block-create true --bluestore-block-size 4294967296 /)
    assert.match(r.stdout, /systemctl enable --now "ceph-osd@\$id"/)
    assert.match(r.stdout, /Dry run: nothing was changed/)
    assert.equal(inNode('s1', 'ceph osd ls --connect-timeout 20').trim(), '', 'no OSD')
    const bad = await admin(['ceph', 'disk', 'add', 's1', 'loop,4X'])
    assert.equal(bad.code, 2, bad.stderr)
    assert.match(bad.stderr, /"loop,4X" is not a loop spec/)
    const huge = await admin(['ceph', 'disk', 'add', 's1', 'loop,900T'])
    assert.notEqual(huge.code, 0, huge.stderr)
    assert.match(huge.stderr, /s1 has .* free in \/var\/lib\/ceph\/osd; 1 OSD file\(s\) of 900T need 900 TiB/)
    assert.equal(inNode('s1', 'ceph osd ls --connect-timeout 20').trim(), '', 'no OSD')
    assert.equal(inNode('s1', 'ls /var/lib/ceph/osd').trim(), '', 'no OSD directory')
  })

  it('ceph disk add loop,4G on s1, s2 and s3: an OSD each, in a 4 GiB file, run by systemd, up and in; disk list shows them; no key printed', async (t) => {
    const secrets = secretsOn('s1')
    for (const [i, node] of MONS.entries()) {
      const started = Date.now()
      const r = ok(await admin(['ceph', 'disk', 'add', node, 'loop,4G', '--json']), `ceph disk add ${node}`)
      t.diagnostic(`ceph disk add ${node} loop,4G took ${Math.round((Date.now() - started) / 1000)} s`)
      assertNoSecret(r.stdout + r.stderr, secrets, 'ceph disk add')
      assert.deepEqual(r.json<DiskAddResult>().osds, [i])
      assert.equal(inNode(node, `systemctl is-active ceph-osd@${i}; systemctl is-enabled ceph-osd@${i}`).trim(), 'active\nenabled', node)
      // The bytes on the node's disk: a 4 GiB file, sparse, owned by ceph.
      assert.equal(inNode(node, `stat -c '%s %U' /var/lib/ceph/osd/ceph-${i}/block`).trim(), `${4 * 1024 ** 3} ceph`, node)
    }
    await waitUntil(
      () => {
        const stat = JSON.parse(inNode('s3', 'ceph osd stat --format json --connect-timeout 20'))
        return stat.num_osds === 3 && stat.num_up_osds === 3 && stat.num_in_osds === 3
      },
      120_000,
      () => inNode('s3', 'ceph osd tree'),
    )
    const disks = ok(await admin(['ceph', 'disk', 'list', '--json']), 'ceph disk list').json<OsdDisk[]>()
    assert.deepEqual(
      disks.map((d) => ({osd: d.osd, host: d.host, objectstore: d.objectstore, up: d.up, in: d.in, gib: Math.round(d.sizeBytes / 1024 ** 3)})),
      MONS.map((host, osd) => ({osd, host, objectstore: 'bluestore', up: true, in: true, gib: 4})),
    )
    assertNoSecret(JSON.stringify(await store.snapshot()), secrets, 'etcd')
  })

  it('a pool and an RBD image with exclusive-lock, data written to it; a pool larger than the OSDs and a name clash refused, nothing changed; HEALTH_OK', async () => {
    ok(await admin(['ceph', 'pool', 'create', 'rbd', '--size', '2', '--min-size', '1', '--application', 'rbd']), 'ceph pool create rbd')
    const tooBig = await admin(['ceph', 'pool', 'create', 'wide', '--size', '4'])
    assert.notEqual(tooBig.code, 0, tooBig.stderr)
    assert.match(tooBig.stderr, /Pool wide: size 4 needs 4 OSDs up, but only 3 of 3 are up; nothing was changed/)
    assert.doesNotMatch(inNode('s1', 'ceph osd pool ls'), /^wide$/m)
    ok(await admin(['ceph', 'image', 'create', 'rbd/pg', '--size', '1G']), 'ceph image create rbd/pg')
    const clash = await admin(['ceph', 'image', 'create', 'rbd/pg', '--size', '2G'])
    assert.notEqual(clash.code, 0, clash.stderr)
    assert.match(clash.stderr, /An image named rbd\/pg exists already; nothing was changed/)
    const info = ok(await admin(['ceph', 'image', 'info', 'rbd/pg', '--json']), 'ceph image info').json<{sizeBytes: number; features: string[]}>()
    assert.equal(info.sizeBytes, 1024 ** 3, 'the clash did not resize it')
    assert.ok(info.features.includes('exclusive-lock'), info.features.join(' '))
    // Data on the image, so a drain has placement groups with objects to move.
    inNode('s1', 'rbd bench --io-type write --io-size 4M --io-total 64M rbd/pg >/dev/null')
    // The lab's nodes share the host's disk, which may be fuller than Ceph's 30% free warning
    // allows; that is a fact of the lab machine, not of the cluster xcluster formed.
    inNode('s1', 'ceph config set mon mon_data_avail_warn 5')
    await waitForHealthOk('after the pool and the image')
  })

  it('node drain s3 refuses while a pool would lose a replica, its suggestion runs as printed; then drain moves the PGs off s3 and Ceph is HEALTH_OK; undrain takes s3 back in', async () => {
    // Each pool that would keep fewer replicas than it asks for (the mgr's own pool asks for 3) is
    // named in a refusal, with nothing changed; its suggestion, run as printed, lowers it.
    let refusals = 0
    for (;;) {
      const refused = await admin(['node', 'drain', 's3', '--dry-run'])
      if (refused.code === 0) break
      refusals++
      assert.ok(refusals <= 3, refused.stderr)
      assert.match(refused.stderr, /Draining s3 would put Ceph data at risk: without its OSDs \(2\), pool \S+ /)
      assert.equal((await nodeState()).state, 'ready')
      assert.equal(JSON.parse(inNode('s1', 'ceph osd dump --format json')).osds.find((o: {osd: number}) => o.osd === 2).in, 1, 'osd.2 is still in')
      const lower = suggestedCommands(refused.stderr).find((argv) => argv.slice(0, 3).join(' ') === 'ceph pool set')
      assert.ok(lower, refused.stderr)
      ok(await admin(lower), lower.join(' '))
    }
    assert.ok(refusals >= 1, 'the mgr pool of size 3 was refused once')

    const drained = ok(await admin(['node', 'drain', 's3', '--json']), 'node drain s3').json<{holdings: {osds: number[]}}>()
    assert.deepEqual(drained.holdings.osds, [2])
    // Ceph's own view: osd.2 out, holding no placement group, every PG active+clean on s1 and s2.
    const df = JSON.parse(inNode('s1', 'ceph osd df --format json')) as {nodes: {id: number; pgs: number; reweight: number}[]}
    assert.deepEqual(
      df.nodes.filter((n) => n.id === 2).map((n) => ({pgs: n.pgs, reweight: n.reweight})),
      [{pgs: 0, reweight: 0}],
    )
    assert.ok(df.nodes.filter((n) => n.id !== 2).every((n) => n.pgs > 0))
    await waitForHealthOk('after draining s3')

    ok(await admin(['node', 'undrain', 's3']), 'node undrain s3')
    assert.equal(JSON.parse(inNode('s1', 'ceph osd dump --format json')).osds.find((o: {osd: number}) => o.osd === 2).in, 1, 'osd.2 is in again')
    // Right after `osd in` Ceph still reports the old, clean mapping (HEALTH_OK, osd.2 empty) until
    // peering catches up: wait for osd.2 to hold PGs again, then for HEALTH_OK.
    const pgsOfOsd2 = () => (JSON.parse(inNode('s1', 'ceph osd df --format json')) as {nodes: {id: number; pgs: number}[]}).nodes.find((n) => n.id === 2)!.pgs
    await waitUntil(
      () => pgsOfOsd2() > 0,
      120_000,
      () => `osd.2 holds no PG after the undrain: ${inNode('s1', 'ceph osd df')}`,
    )
    await waitForHealthOk('after undraining s3')
  })

  it('ceph leave s3: --dry-run changes nothing; then mon.s3 is out of the monmap, its units and stores gone, every ceph.conf names s1 and s2, its OSD stays up; two to one refused; ceph join s3 brings it back', async () => {
    const before = await unchanged()
    const plan = ok(await admin(['ceph', 'leave', 's3', '--dry-run']), 'ceph leave s3 --dry-run')
    for (const line of ['ceph mon remove s3', 'systemctl disable --now ceph-mon@s3 ceph-mgr@s3', 'ceph auth del mgr.s3', 'update /etc/ceph/ceph.conf', 'remove s3 from the Ceph monitors in etcd']) {
      assert.ok(plan.stdout.includes(line), `the plan names: ${line}\n${plan.stdout}`)
    }
    assert.deepEqual(await unchanged(), before)
    assert.equal(cephStatusOn('s1').monmap.num_mons, 3)

    ok(await admin(['ceph', 'leave', 's3', '--yes']), 'ceph leave s3')
    const status = cephStatusOn('s1')
    assert.deepEqual([...status.quorum_names].sort(), ['s1', 's2'])
    assert.equal(status.monmap.num_mons, 2)
    assert.deepEqual((await record())!.mons, ['s1', 's2'])
    assert.equal(inNode('s3', 'systemctl is-active ceph-mon@s3 ceph-mgr@s3 || true').trim(), 'inactive\ninactive')
    assert.equal(inNode('s3', 'systemctl is-enabled ceph-mon@s3 ceph-mgr@s3 || true').trim(), 'disabled\ndisabled')
    assert.notEqual((await onNode('s3', 'test -e /var/lib/ceph/mon/ceph-s3')).code, 0, "mon.s3's store is gone")
    for (const node of MONS) assert.match(inNode(node, 'cat /etc/ceph/ceph.conf'), /^mon_host = \[v2:10\.0\.0\.2:3300,v1:10\.0\.0\.2:6789\],\[v2:10\.0\.0\.3:3300,v1:10\.0\.0\.3:6789\]$/m, node)
    // s3 keeps its OSD, which finds the monitors that remain.
    assert.equal(inNode('s3', 'systemctl is-active ceph-osd@2').trim(), 'active')
    await waitForHealthOk('after ceph leave s3')

    const refused = await admin(['ceph', 'leave', 's2', '--yes'])
    assert.equal(refused.code, 3, refused.stderr)
    assert.match(refused.stderr, /Taking s2 out would leave one Ceph monitor \(s1\)/)
    assert.deepEqual((await record())!.mons, ['s1', 's2'])

    ok(await admin(['ceph', 'join', 's3']), 'ceph join s3 again')
    assert.deepEqual([...cephStatusOn('s3').quorum_names].sort(), MONS)
    assert.deepEqual((await record())!.mons, MONS)
    await waitForHealthOk('after ceph join s3 again')
  })
})
