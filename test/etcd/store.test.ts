import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {EtcdStore} from '../../src/lib/etcd/store.js'
import {XclusterError} from '../../src/lib/errors.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

describe('EtcdStore against a real etcd', () => {
  let etcd: TestEtcd
  let store: EtcdStore

  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'storetest'})
  })
  after(async () => {
    await store.close()
    await etcd.stop()
  })

  it('reads back JSON with revisions', async () => {
    await store.put(store.keys.node('s1'), {name: 's1'})
    const got = await store.getJson<{name: string}>(store.keys.node('s1'))
    assert.equal(got?.value.name, 's1')
    assert.ok(Number(got?.createRevision) > 0)
    assert.equal(await store.getJson(store.keys.node('nope')), undefined)
  })

  it('a create-only transaction applies nothing when the key exists', async () => {
    const before = await store.snapshot()
    const ok = await store.transaction().ifAbsent(store.keys.node('s1')).put(store.keys.node('s1'), {name: 'other'}).put(store.keys.node('s9'), {name: 's9'}).commit()
    assert.equal(ok, false)
    assert.deepEqual(await store.snapshot(), before, 'no operation of a failed transaction may land')
  })

  it('a transaction guarded by a stale revision fails', async () => {
    const read = await store.getJson(store.keys.node('s1'))
    await store.put(store.keys.node('s1'), {name: 's1', changed: true})
    const ok = await store.transaction().ifUnchanged(store.keys.node('s1'), read!.modRevision).delete(store.keys.node('s1')).commit()
    assert.equal(ok, false)
    assert.ok(await store.getJson(store.keys.node('s1')))
  })

  it('a transaction whose compares hold applies every operation', async () => {
    const ok = await store
      .transaction()
      .ifAbsent(store.keys.node('c1'))
      .ifAbsent(store.keys.mac('02:58:43:00:02:01'))
      .put(store.keys.node('c1'), {name: 'c1'})
      .put(store.keys.mac('02:58:43:00:02:01'), 'c1')
      .commit()
    assert.equal(ok, true)
    const listed = await store.listJson(store.keys.nodesPrefix())
    assert.deepEqual(
      listed.map((l) => l.key),
      [store.keys.node('c1'), store.keys.node('s1')],
    )
  })

  it('rides out an etcd restart (UNAVAILABLE) by retrying', async () => {
    await etcd.stop({keepData: true})
    const restarted = (async () => {
      await new Promise((r) => setTimeout(r, 700))
      etcd = await startEtcd({dir: etcd.dir, clientPort: etcd.clientPort, peerPort: etcd.peerPort})
    })()
    const got = await store.getJson<{name: string}>(store.keys.node('c1'))
    await restarted
    assert.equal(got?.value.name, 'c1')
  })

  it('reports an unreachable etcd as one clear error naming the endpoints', async () => {
    const dead = new EtcdStore({endpoints: ['http://127.0.0.1:9'], cluster: 'storetest'})
    await assert.rejects(dead.getJson(dead.keys.spec()), (err: unknown) => {
      assert.ok(err instanceof XclusterError)
      assert.equal(err.code, 'ETCD_UNREACHABLE')
      assert.equal(err.exit, 3)
      assert.match(err.message, /127\.0\.0\.1:9/)
      return true
    })
    await dead.close()
  })
})
