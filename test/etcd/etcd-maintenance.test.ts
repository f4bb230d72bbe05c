/**
 * `xcluster etcd members|health|snapshot save|snapshot restore` against real etcd servers:
 * members and health on a 3-member cluster with members stopped; a snapshot saved from a
 * populated etcd, restored offline into a new data dir, and a new etcd started on it holding
 * every key and value it had at the snapshot (and nothing written after). Every refusal is
 * checked by its exit status, its message and that neither etcd nor the disk changed.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {EtcdClusterState} from '../../src/lib/etcd/maintenance.js'
import type {RestoreResult, SnapshotSaveResult} from '../../src/lib/etcd/snapshot.js'
import {EtcdStore, type HeldLease} from '../../src/lib/etcd/store.js'
import {ROOT, xcluster, type CliResult} from '../helpers/cli.js'
import {etcdLeaderIndex, startEtcdCluster, startEtcdRetrying, type EtcdCluster} from '../helpers/etcd-cluster.js'
import {freePort, startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {requireTool} from '../helpers/tools.js'

const SPEC = join(ROOT, 'templates', 'xcluster.yaml')

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')

/** Every key of the whole keyspace with its value and lease: what a restore must bring back. */
async function dump(store: EtcdStore): Promise<{kvs: Record<string, {value: string; lease: string}>; revision: number}> {
  const res = await store.call('dump', (c) => c.kv.range({key: Buffer.from([0]), range_end: Buffer.from([0])}))
  const kvs: Record<string, {value: string; lease: string}> = {}
  for (const kv of res.kvs) kvs[kv.key.toString()] = {value: kv.value.toString(), lease: String(kv.lease)}
  return {kvs, revision: Number(res.header.revision)}
}

/** Every path under `dir` with its size: proves a refused or dry command wrote nothing there. */
function listing(dir: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const name of readdirSync(dir, {recursive: true}) as string[]) out[name] = statSync(join(dir, name)).size
  return out
}

describe('etcd members and health on a 3-member cluster', () => {
  let cluster: EtcdCluster
  let victimIndex = 2
  const cli = (...args: string[]) => xcluster([...args, '--etcd', cluster.etcdFlag])

  before(async () => {
    cluster = await startEtcdCluster(3)
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('members lists every member with its ID, URLs, the leader, raft term, database size and version', async () => {
    const r = await cli('etcd', 'members', '--json')
    assert.equal(r.code, 0, r.stderr)
    const state = r.json<EtcdClusterState>()
    assert.deepEqual(state.members.map((m) => m.name).sort(), ['m0', 'm1', 'm2'])
    const leader = cluster.members[await etcdLeaderIndex(cluster)]!.name
    assert.deepEqual(
      state.members.filter((m) => m.isLeader).map((m) => m.name),
      [leader],
    )
    assert.equal(state.leader, leader)
    for (const m of state.members) {
      assert.match(m.id!, /^[0-9a-f]{1,16}$/)
      assert.equal(m.clientUrls[0], cluster.members.find((x) => x.name === m.name)!.endpoint)
      assert.match(m.peerUrls[0]!, /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.ok(m.raftTerm! >= 2, `raft term of ${m.name}: ${m.raftTerm}`)
      assert.ok(m.dbSize! > 0)
      assert.match(m.version!, /^3\.\d+\.\d+$/)
    }
    assert.equal(new Set(state.members.map((m) => m.raftTerm)).size, 1, 'one term')

    const table = await cli('etcd', 'members')
    assert.equal(table.code, 0, table.stderr)
    assert.match(table.stdout, /^ID\s+NAME\s+PEER URLS\s+CLIENT URLS\s+LEADER\s+RAFT TERM\s+DB SIZE\s+VERSION$/m)
    assert.match(table.stdout, new RegExp(`^[0-9a-f]+\\s+${leader}\\s.*\\syes\\s`, 'm'))
  })

  it('members finds every member through one endpoint', async () => {
    const r = await xcluster(['etcd', 'members', '--json', '--etcd', cluster.endpoints[0]!])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(
      r
        .json<EtcdClusterState>()
        .members.map((m) => m.name)
        .sort(),
      ['m0', 'm1', 'm2'],
    )
  })

  it('health: exit 0 with quorum and every member healthy', async () => {
    const r = await cli('etcd', 'health')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /etcd is healthy: quorum yes \(3\/3 voting members healthy\)/)
    const json = await cli('etcd', 'health', '--json')
    assert.equal(json.code, 0)
    const state = json.json<EtcdClusterState>()
    assert.equal(state.healthy, true)
    assert.equal(state.quorum, true)
    assert.deepEqual(
      state.members.map((m) => m.healthy),
      [true, true, true],
    )
  })

  it('health: one follower stopped is exit 3, named, with quorum kept', async () => {
    // A follower, and not the endpoint given: stopping the leader would put the probe inside
    // the next election, where etcd itself refuses quorum reads for a moment.
    victimIndex = (await etcdLeaderIndex(cluster)) === 2 ? 1 : 2
    const victim = cluster.members[victimIndex]!
    await victim.stop()
    const r = await xcluster(['etcd', 'health', '--etcd', cluster.endpoints[0]!])
    assert.equal(r.code, 3, r.stdout + r.stderr)
    assert.match(r.stdout, new RegExp(`etcd is UNHEALTHY: quorum yes \\(2/3 voting members healthy\\); unhealthy: ${victim.name} \\(`))
    const json = await cli('etcd', 'health', '--json')
    assert.equal(json.code, 3)
    const state = json.json<EtcdClusterState>()
    assert.equal(state.healthy, false)
    assert.equal(state.quorum, true)
    assert.deepEqual(
      state.members.filter((m) => !m.healthy).map((m) => m.name),
      [victim.name],
    )
    assert.ok(state.members.find((m) => m.name === victim.name)!.problem)

    // Members still lists it, without a status.
    const members = await cli('etcd', 'members', '--json')
    assert.equal(members.code, 0, members.stderr)
    const dead = members.json<EtcdClusterState>().members.find((m) => m.name === victim.name)!
    assert.equal(dead.raftTerm, null)
    assert.equal(dead.version, null)
  })

  it('health: two members stopped is no quorum, exit 3; back to exit 0 when they return', async () => {
    await cluster.members[3 - victimIndex]!.stop()
    const r = await cli('etcd', 'health', '--json')
    assert.equal(r.code, 3, r.stderr)
    const state = r.json<EtcdClusterState>()
    assert.equal(state.quorum, false)
    assert.equal(state.healthyVoters, 0, 'the last member cannot serve a quorum read')
    await cluster.members[1]!.start()
    await cluster.members[2]!.start()
    const deadline = Date.now() + 15_000
    let last: CliResult
    do {
      last = await cli('etcd', 'health')
      if (last.code === 0) break
      await new Promise((res) => setTimeout(res, 300))
    } while (Date.now() < deadline)
    assert.equal(last.code, 0, last.stdout + last.stderr)
  })
})

describe('etcd snapshot save and restore', () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let lease: HeldLease
  let dir: string
  let snapshotFile: string
  let atSnapshot: Awaited<ReturnType<typeof dump>>
  const cli = (...args: string[]) => xcluster([...args, '--etcd', etcd.endpoint])
  /** Offline-restore flags for a one-member cluster "test" at `peerPort`, into `dataDir`. */
  const offline = (dataDir: string, peerPort: number) => [
    '--data-dir',
    dataDir,
    '--name',
    'test',
    '--initial-cluster',
    `test=http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${peerPort}`,
  ]

  /** A refused restore: the exit status, the message, a next step, and nothing changed in etcd or on disk. */
  async function refusedUnchanged(args: string[], exit: number, message: RegExp): Promise<CliResult> {
    const etcdBefore = await dump(store)
    const diskBefore = listing(dir)
    const r = await cli('etcd', 'snapshot', 'restore', ...args)
    assert.equal(r.code, exit, `exit status: ${r.stdout}${r.stderr}`)
    assert.match(r.stderr, message)
    assert.match(r.stderr, /Try this: /)
    assert.deepEqual((await dump(store)).kvs, etcdBefore.kvs, 'etcd unchanged')
    assert.deepEqual(listing(dir), diskBefore, 'nothing written on disk')
    return r
  }

  before(async () => {
    requireTool('etcdctl', 'etcd-client')
    etcd = await startEtcdRetrying()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    dir = mkdtempSync(join(tmpdir(), 'xct-etcd-snapshot-'))
    // Nodes and MACs from the spec, as an operator registers them.
    const applied = await cli('config', 'apply', '-f', SPEC)
    assert.equal(applied.code, 0, applied.stderr)
    // Host key pins, DHCP leases, a leased election key, a key outside the cluster prefix.
    for (const name of ['s1', 's2', 's3']) await store.put(store.keys.hostKey(name), {fingerprints: [`SHA256:${name}`], pinnedAt: new Date().toISOString(), source: 'registration'})
    for (let i = 1; i <= 20; i++) {
      await store.put(store.keys.lease(`10.0.0.${200 + i}`), {ip: `10.0.0.${200 + i}`, mac: `02:00:00:00:00:${String(i).padStart(2, '0')}`, type: 'discovered', state: 'bound', grantedBy: '10.0.0.2'})
    }
    lease = await store.grantLease(600)
    await store.transaction().put(store.keys.electionLeader('web'), {node: 's1', since: new Date().toISOString(), ttl: 600}, {lease: lease.id}).commit()
    await store.put('/elsewhere/key', 'outside the cluster prefix')
  })

  after(async () => {
    await lease?.revoke()
    await store?.close()
    await etcd?.stop()
    rmSync(dir, {recursive: true, force: true})
  })

  it('save writes FILE and FILE.sha256, checked, and says what it saved', async () => {
    snapshotFile = join(dir, 'etcd.db')
    atSnapshot = await dump(store)
    const r = await cli('etcd', 'snapshot', 'save', snapshotFile, '--json')
    assert.equal(r.code, 0, r.stderr)
    const saved = r.json<SnapshotSaveResult>()
    assert.equal(saved.file, snapshotFile)
    assert.equal(saved.revision, atSnapshot.revision, 'the revision etcdctl reads is the one the keys were dumped at')
    assert.ok(saved.keys! > Object.keys(atSnapshot.kvs).length)
    assert.equal(saved.member, 'test')
    assert.deepEqual(saved.checks, {embeddedSha256: true, sidecar: 'absent', etcdctl: true})
    assert.equal(saved.sha256, sha256(snapshotFile))
    assert.equal(saved.bytes, statSync(snapshotFile).size)
    assert.equal(readFileSync(`${snapshotFile}.sha256`, 'utf8'), `${saved.sha256}  etcd.db\n`)
    assert.deepEqual(readdirSync(dir).sort(), ['etcd.db', 'etcd.db.sha256'], 'no .part left')
    // The sidecar is sha256sum's format: it checks with the standard tool.
    assert.match(execFileSync('sha256sum', ['-c', 'etcd.db.sha256'], {cwd: dir, encoding: 'utf8'}), /^etcd\.db: OK$/m)

    // Human output: the progress on stderr, one line on stdout.
    const human = await cli('etcd', 'snapshot', 'save', join(dir, 'human.db'))
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /^Saved \S+human\.db \(\d+ KiB, revision \d+, \d+ keys\) from test in [\d.]+ s; sha256 [0-9a-f]{64} in \S+human\.db\.sha256\.\n$/)
    assert.match(human.stderr, /Snapshot from test/)
    rmSync(join(dir, 'human.db'))
    rmSync(join(dir, 'human.db.sha256'))
  })

  it('save refuses to replace an existing FILE unless --force', async () => {
    const file = join(dir, 'again.db')
    assert.equal((await cli('etcd', 'snapshot', 'save', file)).code, 0)
    const first = sha256(file)
    await store.put(store.keys.hostKey('s4'), {fingerprints: ['SHA256:s4'], pinnedAt: new Date().toISOString(), source: 'registration'})
    const refused = await cli('etcd', 'snapshot', 'save', file)
    assert.equal(refused.code, 3, refused.stderr)
    assert.match(refused.stderr, /Error \[SNAPSHOT_EXISTS\]: \S+again\.db already exists; it was not replaced\./)
    assert.match(refused.stderr, /Try this: .*--force/)
    assert.equal(sha256(file), first, 'unchanged')
    const forced = await cli('etcd', 'snapshot', 'save', file, '--force', '--json')
    assert.equal(forced.code, 0, forced.stderr)
    assert.notEqual(sha256(file), first, 'replaced by a newer snapshot')
    assert.equal(readFileSync(`${file}.sha256`, 'utf8').split(' ')[0], sha256(file))
    assert.ok(forced.json<SnapshotSaveResult>().revision! > atSnapshot.revision)
    rmSync(file)
    rmSync(`${file}.sha256`)
    await store.delete(store.keys.hostKey('s4'))
  })

  it('restore without --data-dir is refused while etcd runs with quorum (exit 3), with the per-member steps', async () => {
    const r = await refusedUnchanged([snapshotFile, '--yes'], 3, /Error \[ETCD_RUNNING\]: etcd at \S+ is running with quorum \(test healthy\).*Nothing was changed\./)
    assert.match(r.stderr, /On every member: systemctl stop xcluster-serve\.service etcd-member\.service/)
    assert.match(r.stderr, /On test: xcluster etcd snapshot restore \S+etcd\.db --data-dir \/var\/lib\/xcluster\/etcd --name test --initial-cluster test=http:\/\/127\.0\.0\.1:\d+ /)
  })

  it('restore without --data-dir and no running etcd is a usage error (exit 2)', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`
    const before = listing(dir)
    const r = await xcluster(['etcd', 'snapshot', 'restore', snapshotFile, '--etcd', dead])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /Error \[USAGE\]: A restore rebuilds one member's data dir offline/)
    assert.match(r.stderr, /On each member: xcluster etcd snapshot restore/)
    assert.deepEqual(listing(dir), before)
  })

  it('restore --dry-run checks the snapshot, prints the plan and changes nothing', async () => {
    const dataDir = join(dir, 'dry')
    const etcdBefore = await dump(store)
    const diskBefore = listing(dir)
    const r = await cli('etcd', 'snapshot', 'restore', snapshotFile, ...offline(dataDir, 1), '--dry-run')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^Dry run: the snapshot checked out; nothing was changed\. The restore would:$/m)
    assert.match(r.stdout, new RegExp(`restore snapshot \\S+etcd\\.db \\(revision ${atSnapshot.revision}, \\d+ keys`))
    assert.match(r.stdout, /is running with quorum \(test\): stop etcd on every member/)
    assert.equal(existsSync(dataDir), false)
    assert.deepEqual(listing(dir), diskBefore)
    assert.deepEqual((await dump(store)).kvs, etcdBefore.kvs)
    const json = await cli('etcd', 'snapshot', 'restore', snapshotFile, ...offline(dataDir, 1), '--dry-run', '--json')
    assert.equal(json.code, 0, json.stderr)
    const plan = json.json<RestoreResult>()
    assert.equal(plan.dryRun, true)
    assert.equal(plan.restored, false)
    assert.equal(plan.snapshot.revision, atSnapshot.revision)
    assert.equal(plan.cluster.running, true)
    assert.equal(existsSync(dataDir), false)
  })

  it('a corrupted snapshot is refused, whichever check catches it, and nothing is written', async () => {
    const bad = join(dir, 'bad.db')
    const dataDir = join(dir, 'from-bad')
    const flip = () => {
      const bytes = readFileSync(snapshotFile)
      // Flip bytes inside the database (not its trailer): a flip etcdctl's own read does not notice.
      for (const at of [4096 + 100, 8192 + 7]) bytes[at] = bytes[at]! ^ 0xff
      writeFileSync(bad, bytes)
    }
    // With the original's sidecar beside it: the sidecar check refuses.
    flip()
    copyFileSync(`${snapshotFile}.sha256`, `${bad}.sha256`)
    await refusedUnchanged(
      [bad, ...offline(dataDir, 1), '--yes'],
      3,
      /Error \[SNAPSHOT_CORRUPT\]: Snapshot \S+bad\.db is corrupt: its SHA-256 is [0-9a-f]{64}, but bad\.db\.sha256 says [0-9a-f]{64}: the file changed after it was saved\. Nothing was written\./,
    )
    // Without a sidecar: the hash etcd embedded refuses.
    rmSync(`${bad}.sha256`)
    await refusedUnchanged([bad, ...offline(dataDir, 1), '--yes'], 3, /Error \[SNAPSHOT_CORRUPT\]: .*the SHA-256 etcd embedded at its end does not match its contents/)
    // Truncated mid-page: its size gives it away.
    copyFileSync(snapshotFile, bad)
    truncateSync(bad, statSync(bad).size - 1000)
    await refusedUnchanged([bad, ...offline(dataDir, 1), '--yes'], 3, /Error \[SNAPSHOT_CORRUPT\]: .*etcd's 32-byte SHA-256: it is truncated/)
    // Truncated by whole pages: the embedded hash does not match.
    copyFileSync(snapshotFile, bad)
    truncateSync(bad, statSync(bad).size - 4096)
    await refusedUnchanged([bad, ...offline(dataDir, 1), '--yes'], 3, /Error \[SNAPSHOT_CORRUPT\]: .*does not match its contents/)
    // --dry-run reports it the same way.
    flip()
    await refusedUnchanged([bad, ...offline(dataDir, 1), '--dry-run'], 3, /SNAPSHOT_CORRUPT/)
    assert.equal(existsSync(dataDir), false)
    rmSync(bad)
  })

  it('restore refuses an existing data dir and a member missing from --initial-cluster', async () => {
    const existing = join(dir, 'existing')
    mkdirSync(existing)
    await refusedUnchanged([snapshotFile, ...offline(existing, 1), '--yes'], 3, /Error \[RESTORE_DATA_DIR_EXISTS\]: --data-dir \S+existing already exists/)
    rmSync(existing, {recursive: true})
    await refusedUnchanged(
      [snapshotFile, '--data-dir', join(dir, 'x'), '--name', 'other', '--initial-cluster', 'test=http://127.0.0.1:1', '--initial-advertise-peer-urls', 'http://127.0.0.1:1', '--yes'],
      2,
      /--name other is not in --initial-cluster \(test\)/,
    )
  })

  it('round trip: restore into a new data dir, start a new etcd on it, and every key and value is back', async () => {
    const after = 'written after the snapshot'
    await store.put(store.keys.hostKey('s9'), after)
    const restoredDir = mkdtempSync(join(tmpdir(), 'xct-etcd-restored-'))
    const peer = await freePort()
    let restored: TestEtcd | undefined
    let restoredStore: EtcdStore | undefined
    try {
      const r = await cli('etcd', 'snapshot', 'restore', snapshotFile, ...offline(join(restoredDir, 'data'), peer), '--yes', '--json')
      assert.equal(r.code, 0, r.stderr)
      const result = r.json<RestoreResult>()
      assert.equal(result.restored, true)
      assert.equal(result.dryRun, false)
      assert.equal(result.snapshot.checks.sidecar, 'matched')
      assert.ok(existsSync(join(restoredDir, 'data', 'member', 'snap', 'db')))
      assert.deepEqual(readdirSync(restoredDir), ['data'], 'no staging directory left')

      // A new etcd on the restored data dir (startEtcd runs member "test" on <dir>/data).
      restored = await startEtcd({dir: restoredDir, peerPort: peer})
      restoredStore = new EtcdStore({endpoints: [restored.endpoint], cluster: 'xcluster'})
      const back = await dump(restoredStore)
      assert.deepEqual(back.kvs, atSnapshot.kvs, 'every key, value and lease as at the snapshot')
      assert.equal(back.kvs[store.keys.hostKey('s9')], undefined, 'not what was written after it')
      assert.ok(back.revision >= atSnapshot.revision)
      assert.ok(
        Object.keys(back.kvs).some((k) => k.startsWith(store.keys.nodesPrefix())),
        'nodes are back',
      )
      assert.equal((await dump(store)).kvs[store.keys.hostKey('s9')]?.value, after, 'the original etcd was left running as it was')

      // The CLI reads the restored cluster as it read the original.
      const nodesThen = await xcluster(['node', 'list', '--json', '--etcd', restored.endpoint])
      const nodesNow = await cli('node', 'list', '--json')
      assert.equal(nodesThen.code, 0, nodesThen.stderr)
      assert.deepEqual(nodesThen.json(), nodesNow.json())
      const health = await xcluster(['etcd', 'health', '--etcd', restored.endpoint, '--json'])
      assert.equal(health.code, 0, health.stderr)
      assert.deepEqual(
        health.json<EtcdClusterState>().members.map((m) => m.peerUrls),
        [[`http://127.0.0.1:${peer}`]],
        'the restored member has the peer URL it was restored with',
      )
    } finally {
      await restoredStore?.close()
      await restored?.stop()
      rmSync(restoredDir, {recursive: true, force: true})
      await store.delete(store.keys.hostKey('s9'))
    }
  })
})
