import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {readCephCluster, recordBootstrap, recordMon, recordMonLeft} from '../../src/lib/ceph/membership.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

// The Ceph cluster record (keys.cephCluster) against a real etcd: monitors join and leave in
// guarded transactions, and a write racing another is read again, never lost.
const FSID = '8d0e5c52-1f4e-4c34-9d4e-000000000001'

describe('the Ceph record: monitors join and leave', () => {
  let etcd: TestEtcd
  let store: EtcdStore
  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'cephrecord'})
  })
  after(async () => {
    await store.close()
    await etcd.stop()
  })

  it('a leave takes the node out and keeps the others in order; a second leave writes nothing', async () => {
    assert.equal(await recordBootstrap(store, 'ceph', FSID, 's1'), true)
    assert.equal(await recordMon(store, 's2'), true)
    assert.equal(await recordMon(store, 's3'), true)
    const before = await store.getJson(store.keys.cephCluster())
    assert.equal(await recordMonLeft(store, 's2'), true)
    const left = await readCephCluster(store)
    assert.deepEqual(left?.mons, ['s1', 's3'])
    assert.equal(left?.fsid, FSID)
    assert.equal(left?.bootstrappedAt, (before?.value as {bootstrappedAt: string}).bootstrappedAt)
    const revision = (await store.getJson(store.keys.cephCluster()))?.modRevision
    assert.equal(await recordMonLeft(store, 's2'), false)
    assert.equal((await store.getJson(store.keys.cephCluster()))?.modRevision, revision, 'nothing written')
  })

  it('a leave and a join at once: both land', async () => {
    await Promise.all([recordMonLeft(store, 's3'), recordMon(store, 's4')])
    assert.deepEqual((await readCephCluster(store))?.mons, ['s1', 's4'])
  })

  it('no record: refused loudly', async () => {
    await store.delete(store.keys.cephCluster())
    await assert.rejects(recordMonLeft(store, 's1'), /record vanished/)
  })
})
