import assert from 'node:assert/strict'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {EtcdStore} from '../../src/lib/etcd/store.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

// `ceph leave`'s refusals that need only etcd, against a real one: each exits non-zero with a
// "Try this" and leaves etcd as it was, before any SSH. The SSH side (the quorum check, the
// phases) is proven in the lab.
const SPEC = join(ROOT, 'templates', 'xcluster.yaml')
const FSID = '8d0e5c52-1f4e-4c34-9d4e-000000000001'

let etcd: TestEtcd
let store: EtcdStore
const cli = (...args: string[]) => xcluster([...args, '--etcd', etcd.endpoint])

async function refusedUnchanged(args: string[], exit: number, message: RegExp, suggestion: RegExp): Promise<void> {
  const before = await store.snapshot()
  const r = await cli(...args)
  assert.equal(r.code, exit, `exit status of ${args.join(' ')}: ${r.stderr}`)
  assert.match(r.stderr, message)
  assert.match(r.stderr, suggestion)
  assert.deepEqual(await store.snapshot(), before, 'etcd unchanged')
}

const setMons = (mons: string[]) => store.put(store.keys.cephCluster(), {backend: 'microceph', fsid: FSID, mons, bootstrappedAt: '', updatedAt: ''})

describe('ceph leave refuses, before any change, what would cost Ceph its monitors', () => {
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

  it('an unknown node: a usage error', async () => {
    await refusedUnchanged(['ceph', 'leave', 'zz9', '--yes'], 2, /Unknown node "zz9"/, /Try this: .*xcluster node list/)
  })

  it('no Ceph yet', async () => {
    await refusedUnchanged(['ceph', 'leave', 's1', '--yes'], 3, /CEPH_NOT_BOOTSTRAPPED/, /Try this: .*xcluster ceph status/)
  })

  it('a node that is no monitor (as after a finished leave)', async () => {
    await setMons(['s1', 's2', 's3'])
    await refusedUnchanged(['ceph', 'leave', 's4', '--yes', '--dry-run'], 3, /CEPH_NOT_MONITOR[\s\S]*s4 is not a Ceph monitor/, /Try this: .*xcluster ceph status/)
  })

  it('two to one without --force, and the last monitor even with it', async () => {
    await setMons(['s1', 's2'])
    await refusedUnchanged(['ceph', 'leave', 's2', '--yes'], 3, /CEPH_TOO_FEW_MONITORS/, /Try this: .*xcluster ceph leave s2 --force/)
    await setMons(['s1'])
    await refusedUnchanged(['ceph', 'leave', 's1', '--yes', '--force'], 3, /CEPH_LAST_MONITOR/, /Try this: .*xcluster ceph join NODE/)
  })
})
