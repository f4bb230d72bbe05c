/**
 * Moving a cluster's state from the admin host's etcd (plain, as before bootstrap) into the
 * cluster's etcd (TLS, RBAC, written as the operator), between two real etcd servers. What was
 * written is observed on the target: its keys and values, and its revision (one per transaction).
 */
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, beforeEach, describe, it} from 'node:test'

import {identity} from '../../src/lib/certs/identities.js'
import {configureAccess} from '../../src/lib/etcd/access.js'
import {digest, migrateClusterState} from '../../src/lib/etcd/migrate.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {XclusterError} from '../../src/lib/errors.js'
import {settings} from '../../src/lib/settings.js'
import {startEtcdRetrying} from '../helpers/etcd-cluster.js'
import type {TestEtcd} from '../helpers/etcd.js'
import {createTestPki, type TestPki} from '../helpers/pki.js'

const KEYS = 300
const BIG = 600 * 1024

let dir: string
let pki: TestPki
let source: TestEtcd
let target: TestEtcd
let from: EtcdStore
let to: EtcdStore
let root: EtcdStore

const refusedWith = (code: string) => (e: unknown) => e instanceof XclusterError && e.code === code && Boolean(e.suggestion)

/** The target's whole keyspace (read as root) and its current revision. */
async function targetState(): Promise<{kvs: Record<string, string>; revision: number}> {
  const res = await root.call('dump', (c) => c.kv.range({key: Buffer.from([0]), range_end: Buffer.from([0])}))
  const kvs: Record<string, string> = {}
  for (const kv of res.kvs) kvs[kv.key.toString()] = kv.value.toString()
  return {kvs, revision: Number(res.header.revision)}
}

/** The source's keys under the cluster prefix that are not leased (what must arrive), read raw. */
async function sourceUnleased(): Promise<Record<string, string>> {
  const res = await from.call('dump', (c) => c.kv.range({key: Buffer.from([0]), range_end: Buffer.from([0])}))
  const kvs: Record<string, string> = {}
  for (const kv of res.kvs) if (kv.key.toString().startsWith('/xcluster/xcluster/') && String(kv.lease) === '0') kvs[kv.key.toString()] = kv.value.toString()
  return kvs
}

async function clearTarget(): Promise<void> {
  await root.call('clear', (c) => c.delete().all().exec())
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xct-migrate-'))
  pki = await createTestPki(join(dir, 'pki'))
  source = await startEtcdRetrying()
  target = await startEtcdRetrying({tls: pki})
  from = new EtcdStore({endpoints: [source.endpoint], cluster: 'xcluster'})
  const rootFiles = await pki.client(identity.root)
  root = new EtcdStore({endpoints: [target.endpoint], cluster: 'xcluster', ca: pki.caFile, cert: rootFiles.certFile, key: rootFiles.keyFile})
  await configureAccess(root, {admins: [identity.admin], serve: [identity.serve('s1')]})
  const adminFiles = await pki.client(identity.admin)
  to = new EtcdStore({endpoints: [target.endpoint], cluster: 'xcluster', ca: pki.caFile, cert: adminFiles.certFile, key: adminFiles.keyFile})

  // The admin etcd as bootstrap finds it: spec, nodes, runs... (300 keys), two large values,
  // a live election seat under a lease, and keys that are not this cluster's.
  const k = from.keys
  await from.put(k.spec(), {cluster: 'xcluster', note: 'ü ✓'})
  for (let i = 0; i < KEYS - 3; i++) await from.put(k.node(`c${i}`), {name: `c${i}`, state: 'ready'})
  await from.put(k.run('big-1'), {log: 'x'.repeat(BIG)})
  await from.put(k.run('big-2'), {log: 'y'.repeat(BIG)})
  const lease = from.client.lease(30, {autoKeepAlive: false})
  await lease.grant()
  await lease.put(k.electionLeader('dhcp')).value('{"node":"s1"}')
  await from.put('/xcluster/other/spec', {cluster: 'other'})
  await from.put('/unrelated', 'x')
})

after(async () => {
  for (const s of [from, to, root]) await s?.close()
  await source?.stop()
  await target?.stop()
  rmSync(dir, {recursive: true, force: true})
})

describe('migrateClusterState between two real etcds', {concurrency: false}, () => {
  beforeEach(clearTarget)

  it('a dry run reports the copy and writes nothing', async () => {
    const before = await targetState()
    const report = await migrateClusterState(from, to, {dryRun: true})
    assert.equal(report.dryRun, true)
    assert.equal(report.copied, KEYS)
    assert.equal(report.skippedLeased, 1)
    assert.deepEqual(await targetState(), before)
  })

  it('copies every unleased key of the cluster, in bounded transactions, and the two sides match', async () => {
    const before = await targetState()
    const report = await migrateClusterState(from, to)
    const after = await targetState()
    const expected = await sourceUnleased()
    assert.equal(Object.keys(expected).length, KEYS)
    assert.deepEqual(after.kvs, expected, "exactly the cluster's unleased keys, byte for byte")
    assert.ok(!('/xcluster/other/spec' in after.kvs) && !('/unrelated' in after.kvs), 'nothing outside the prefix')
    assert.equal(after.kvs[from.keys.electionLeader('dhcp')], undefined, 'the live election seat stays behind')
    assert.deepEqual({copied: report.copied, alreadyPresent: report.alreadyPresent, skippedLeased: report.skippedLeased}, {copied: KEYS, alreadyPresent: 0, skippedLeased: 1})
    // In key order: 297 nodes, then runs/big-1 and runs/big-2 (600 KiB each), then the spec.
    // By count that is 128 + 128 + 44 keys; the two large values cannot share a transaction
    // under the 1 MiB bound, so the third splits once more.
    assert.equal(settings.etcdMaxTxnOps, 128)
    assert.equal(settings.etcdMigrateBatchBytes, 1024 * 1024)
    assert.equal(report.batches, 4)
    assert.equal(after.revision - before.revision, report.batches, 'etcd saw one transaction per batch')
    assert.deepEqual(report.source, report.target)
    assert.deepEqual(report.target, digest(Object.entries(after.kvs).map(([key, value]) => ({key, value: Buffer.from(value)}))), 'the digest is of what the target holds')
    assert.doesNotMatch(JSON.stringify(report), /"state"|xxxx|ü/, 'the report carries no values')
  })

  it('a re-run finds everything in place and writes nothing', async () => {
    await migrateClusterState(from, to)
    const before = await targetState()
    const report = await migrateClusterState(from, to)
    assert.deepEqual({copied: report.copied, alreadyPresent: report.alreadyPresent, batches: report.batches}, {copied: 0, alreadyPresent: KEYS, batches: 0})
    assert.deepEqual(await targetState(), before, 'not even a revision')
  })

  it('completes a copy that was cut short', async () => {
    await migrateClusterState(from, to)
    await root.call('cut', (c) => c.delete().prefix(to.keys.nodesPrefix()).exec())
    const report = await migrateClusterState(from, to)
    assert.equal(report.copied, KEYS - 3)
    assert.equal(report.alreadyPresent, 3)
    assert.deepEqual((await targetState()).kvs, await sourceUnleased())
  })

  it('refuses a target holding other data for the cluster, and writes nothing', async () => {
    await migrateClusterState(from, to)
    await to.put(to.keys.node('c7'), {name: 'c7', state: 'failed'})
    await root.call('cut', (c) => c.delete().key(to.keys.spec()).exec())
    const before = await targetState()
    await assert.rejects(migrateClusterState(from, to), (e: unknown) => refusedWith('MIGRATION_TARGET_DIFFERS')(e) && /nodes\/c7/.test((e as Error).message))
    assert.deepEqual(await targetState(), before, 'not even the missing spec was copied')

    await clearTarget()
    await to.put(to.keys.hostKey('s9'), {fingerprints: ['SHA256:x']})
    const extra = await targetState()
    await assert.rejects(migrateClusterState(from, to), refusedWith('MIGRATION_TARGET_DIFFERS'), 'a key the source lacks')
    assert.deepEqual(await targetState(), extra)
  })

  it("refuses to copy into another cluster's prefix, and needs write access on the target", async () => {
    const otherCluster = new EtcdStore({
      endpoints: [target.endpoint],
      cluster: 'other',
      ca: pki.caFile,
      cert: (await pki.client(identity.admin)).certFile,
      key: (await pki.client(identity.admin)).keyFile,
    })
    const serveFiles = await pki.client(identity.serve('s1'))
    const serve = new EtcdStore({endpoints: [target.endpoint], cluster: 'xcluster', ca: pki.caFile, cert: serveFiles.certFile, key: serveFiles.keyFile})
    try {
      await assert.rejects(migrateClusterState(from, otherCluster), refusedWith('USAGE'))
      await assert.rejects(migrateClusterState(from, serve), refusedWith('ETCD_PERMISSION_DENIED'))
      assert.deepEqual((await targetState()).kvs, {}, 'nothing written')
    } finally {
      await otherCluster.close()
      await serve.close()
    }
  })
})
