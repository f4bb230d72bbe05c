import assert from 'node:assert/strict'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {ROOT, xcluster, type CliResult} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

// Node commands' bad input against a real etcd: each is refused with a clear message and exit
// status before anything is written (the SSH side is proven in test/lab/node-lifecycle).
const SPEC = join(ROOT, 'templates', 'xcluster.yaml')

let etcd: TestEtcd
let store: EtcdStore
const cli = (...args: string[]) => xcluster([...args, '--etcd', etcd.endpoint])

async function refusedUnchanged(args: string[], exit: number, message: RegExp): Promise<CliResult> {
  const before = await store.snapshot()
  const r = await cli(...args)
  assert.equal(r.code, exit, `exit status of ${args.join(' ')}: ${r.stderr}`)
  assert.match(r.stderr, message)
  assert.match(r.stderr, /Try this: /)
  assert.deepEqual(await store.snapshot(), before, 'etcd unchanged')
  return r
}

async function setState(name: string, state: NodeRecord['state']): Promise<void> {
  const n = await store.getJson<NodeRecord>(store.keys.node(name))
  await store.put(store.keys.node(name), {...n!.value, state})
}

describe('node commands refuse bad input and change nothing', () => {
  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    const applied = await cli('config', 'apply', '-f', SPEC)
    assert.equal(applied.code, 0, applied.stderr)
  })
  after(async () => {
    await store.close()
    await etcd.stop()
  })

  it('an unknown node', async () => {
    await refusedUnchanged(['node', 'add', 'zz9'], 3, /Error \[NODE_NOT_FOUND\]: Unknown node: zz9/)
  })

  it('a bad MAC', async () => {
    await refusedUnchanged(['node', 'add', 'c9', '--mac', 'zz:zz'], 2, /--mac "zz:zz" is not a MAC address/)
  })

  it('a MAC that belongs to another node', async () => {
    await refusedUnchanged(['node', 'add', 'c9', '--mac', '02:58:43:00:01:01'], 2, /MAC 02:58:43:00:01:01 already belongs to node s1/)
  })

  it('an address in the discovery range, or outside the subnet', async () => {
    await refusedUnchanged(['node', 'add', 'c9', '--mac', '02:58:43:00:02:09', '--ip', '10.0.0.220'], 2, /lies in the discovery range 10\.0\.0\.200-10\.0\.0\.250/)
    await refusedUnchanged(['node', 'add', 'c9', '--mac', '02:58:43:00:02:09', '--ip', '192.168.1.5'], 2, /not a host address in the cluster subnet 10\.0\.0\.0\/24/)
  })

  it('a name whose type cannot be told', async () => {
    await refusedUnchanged(['node', 'add', 'x9', '--mac', '02:58:43:00:02:09'], 2, /Cannot tell the type of node "x9"/)
  })

  it('--mac with several names', async () => {
    await refusedUnchanged(['node', 'add', 'c8', 'c9', '--mac', '02:58:43:00:02:09'], 2, /--mac registers one node/)
  })

  it('registers once, re-registers as a no-op, and refuses a clash', async () => {
    const r = await cli('node', 'add', 'c9', '--mac', '02:58:43:00:02:09', '--no-provision', '--json')
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.json<{registered: string[]}>().registered, ['c9'])
    const again = await cli('node', 'add', 'c9', '--mac', '02:58:43:00:02:09', '--no-provision', '--json')
    assert.deepEqual(again.json<{registered: string[]}>().registered, [])
    assert.equal((await store.getJson<{node: string}>(store.keys.mac('02:58:43:00:02:09')))?.value.node, 'c9')
    await refusedUnchanged(['node', 'add', 'c9', '--mac', '02:58:43:00:02:0a', '--no-provision'], 2, /Node c9 is already registered with MAC 02:58:43:00:02:09/)
  })

  it('wrong lifecycle states', async () => {
    await refusedUnchanged(['node', 'undrain', 's1'], 3, /Node s1 is registered; only a drained \(or draining\) node can be undrained/)
    await refusedUnchanged(['node', 'drain', 's4'], 3, /Node s4 is registered; only a ready \(or half-drained\) node can be drained/)
    await refusedUnchanged(['node', 'remove', 's4', '--yes'], 3, /Node s4 is registered, not drained/)
  })

  it('remove checks first, then asks, and without a terminal needs --yes', async () => {
    await refusedUnchanged(['node', 'remove', 's4'], 3, /NODE_NOT_DRAINED/)
    await refusedUnchanged(['node', 'remove', 's4', '--force'], 2, /CONFIRMATION_REQUIRED[\s\S]*Re-run with --yes/)
  })

  it('a drain that would cost etcd its quorum', async () => {
    for (const n of ['s1', 's2', 's3']) await setState(n, 'ready')
    await setState('s2', 'drained')
    const r = await refusedUnchanged(['node', 'drain', 's1'], 3, /Draining core node s1 would leave 1 of 3 core nodes up; etcd needs 2 for quorum/)
    assert.match(r.stderr, /node undrain/)
  })

  it('remove refuses a node the Ceph record lists as a monitor, unless --force', async () => {
    // s2 is drained (the test before): only its monitor stands in the way.
    const fsid = '8d0e5c52-1f4e-4c34-9d4e-000000000001'
    await store.put(store.keys.cephCluster(), {backend: 'ceph', fsid, mons: ['s1', 's2', 's3'], bootstrappedAt: '', updatedAt: ''})
    try {
      const r = await refusedUnchanged(['node', 'remove', 's2', '--yes'], 3, /NODE_RUNS_CEPH_MONITOR[\s\S]*s2 runs a Ceph monitor; take it out of Ceph first/)
      assert.match(r.stderr, /Try this: xcluster ceph leave s2/)
      const before = await store.snapshot()
      const forced = await cli('node', 'remove', 's2', '--force', '--dry-run', '--json')
      assert.equal(forced.code, 0, forced.stderr)
      assert.deepEqual(await store.snapshot(), before, 'a dry run changes nothing')
    } finally {
      await store.delete(store.keys.cephCluster())
    }
  })

  it('remove --force frees the MAC and keeps the record with its history', async () => {
    const r = await cli('node', 'remove', 'c9', '--force', '--yes', '--json')
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.json(), {node: 'c9', previousState: 'registered', forced: true, dryRun: false})
    assert.equal(await store.getJson(store.keys.mac('02:58:43:00:02:09')), undefined)
    const record = await store.getJson<NodeRecord>(store.keys.node('c9'))
    assert.equal(record?.value.state, 'removed')
    assert.deepEqual(
      record?.value.history?.map((h) => [h.from, h.to, h.reason]),
      [['registered', 'removed', 'forced']],
    )
    await refusedUnchanged(['node', 'remove', 'c9', '--yes'], 3, /already removed/)
    // The name and the MAC can be registered again.
    const again = await cli('node', 'add', 'c9', '--mac', '02:58:43:00:02:09', '--no-provision', '--json')
    assert.equal(again.code, 0, again.stderr)
  })

  it('an unknown run id', async () => {
    await refusedUnchanged(['runs', 'show', '20260101-000000-abcdef'], 3, /No run with id 20260101-000000-abcdef/)
    await refusedUnchanged(['node', 'add', 's1', '--resume', '20260101-000000-abcdef'], 2, /No run with id/)
  })

  it('repin refuses a malformed fingerprint', async () => {
    await refusedUnchanged(['node', 'repin', 's1', '--fingerprint', 'md5:aa', '--yes'], 2, /fingerprint/i)
  })
})
