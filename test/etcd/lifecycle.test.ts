import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {XclusterError} from '../../src/lib/errors.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {canTransition, transitionNode} from '../../src/lib/nodes/lifecycle.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

describe('node lifecycle transitions in etcd', () => {
  let etcd: TestEtcd
  let store: EtcdStore

  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'life'})
    const node: NodeRecord = {name: 'c1', type: 'compute', mac: '02:58:43:00:02:01', state: 'ready', createdAt: '', updatedAt: ''}
    await store.put(store.keys.node('c1'), node)
  })
  after(async () => {
    await store.close()
    await etcd.stop()
  })

  it('follows the table', () => {
    assert.ok(canTransition('registered', 'provisioning'))
    assert.ok(canTransition('ready', 'draining'))
    assert.ok(!canTransition('ready', 'removed'))
    assert.ok(!canTransition('removed', 'ready'))
  })

  it('records each change with who, when and why', async () => {
    const n = await transitionNode(store, 'c1', 'draining', {from: ['ready'], reason: 'kernel update', by: 'alice'})
    assert.equal(n.state, 'draining')
    assert.equal(n.reason, 'kernel update')
    assert.deepEqual(
      n.history?.map((h) => [h.from, h.to, h.by]),
      [['ready', 'draining', 'alice']],
    )
  })

  it('refuses a transition from the wrong state and writes nothing', async () => {
    const before = await store.snapshot()
    await assert.rejects(transitionNode(store, 'c1', 'draining', {from: ['ready']}), (err: unknown) => {
      assert.ok(err instanceof XclusterError)
      assert.equal(err.code, 'NODE_WRONG_STATE')
      assert.equal(err.exit, 3)
      assert.match(err.message, /Node c1 is draining; it cannot become draining \(this needs it to be ready\)/)
      return true
    })
    assert.deepEqual(await store.snapshot(), before)
  })

  it('of two concurrent transitions from the same state exactly one wins', async () => {
    await transitionNode(store, 'c1', 'ready')
    const results = await Promise.allSettled([
      transitionNode(store, 'c1', 'draining', {from: ['ready'], by: 'alice'}),
      transitionNode(store, 'c1', 'draining', {from: ['ready'], by: 'bob'}),
      transitionNode(store, 'c1', 'draining', {from: ['ready'], by: 'carol'}),
    ])
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
    for (const r of results.filter((r) => r.status === 'rejected')) {
      assert.match(String((r as PromiseRejectedResult).reason.code), /NODE_CONCURRENT_CHANGE|NODE_WRONG_STATE/)
    }
    const stored = await store.getJson<NodeRecord>(store.keys.node('c1'))
    assert.equal(stored?.value.history?.filter((h) => h.to === 'draining').length, 2)
  })

  it('an unknown node is a clear error', async () => {
    await assert.rejects(transitionNode(store, 'zz9', 'ready'), /No node named zz9/)
  })
})
