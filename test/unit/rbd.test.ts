import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {localRbdHolders, RbdCli, rbdLockHolder, rbdLockId} from '../../src/lib/ceph/rbd.js'

describe('RBD lock holders', () => {
  it('reads node and token from an xcluster lock id, and nothing from a foreign one', () => {
    const lock = {id: rbdLockId('s2', '41'), locker: 'client.4157', address: '10.0.0.3:0/1'}
    assert.deepEqual(rbdLockHolder(lock), {node: 's2', token: '41', lock})
    const foreign = {id: 'auto 1234', locker: 'client.9', address: '10.0.0.9:0/2'}
    assert.deepEqual(rbdLockHolder(foreign), {node: null, token: null, lock: foreign})
  })

  it('are "not checked" (null) on a host without the rbd CLI, but an rbd that fails is an error', async () => {
    assert.equal(await localRbdHolders(new RbdCli('/nonexistent/rbd'))('rbd/pg'), null)
    await assert.rejects(localRbdHolders(new RbdCli('/bin/false'))('rbd/pg'), /\/bin\/false lock ls rbd\/pg/)
  })
})
