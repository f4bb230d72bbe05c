import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {KeySchema} from '../../src/lib/etcd/keys.js'

describe('KeySchema', () => {
  const keys = new KeySchema('lab')

  it('puts every key under /xcluster/<cluster>/', () => {
    assert.equal(keys.spec(), '/xcluster/lab/spec')
    assert.equal(keys.node('s1'), '/xcluster/lab/nodes/s1')
    assert.equal(keys.hostKey('s1'), '/xcluster/lab/hostkeys/s1')
    assert.equal(keys.lease('10.0.0.11'), '/xcluster/lab/dhcp/leases/10.0.0.11')
  })

  it('keeps the CA and issued certificates under certs/, apart', () => {
    assert.equal(keys.certAuthority(), '/xcluster/lab/certs/ca')
    assert.equal(keys.issuedCert('etcd-server-s1'), '/xcluster/lab/certs/issued/etcd-server-s1')
    assert.ok(keys.certAuthority().startsWith(keys.certsPrefix()) && keys.issuedCert('ca').startsWith(keys.issuedCertsPrefix()))
    assert.notEqual(keys.issuedCert('ca'), keys.certAuthority(), 'a certificate named "ca" is not the CA')
    assert.throws(() => keys.issuedCert('../ca'), /invalid certificate name/i)
  })

  it('stores MACs in one canonical form and reads them back', () => {
    assert.equal(keys.mac('02:58:43:00:01:0A'), '/xcluster/lab/macs/02-58-43-00-01-0a')
    assert.equal(keys.macFromKey(keys.mac('02:58:43:00:01:0a')), '02:58:43:00:01:0a')
  })

  it('keeps the spec pointer, its parts, the fold marker and the apply claim in one range', () => {
    assert.equal(keys.specPart('l1-ab', 3), '/xcluster/lab/spec/parts/l1-ab/0003')
    assert.deepEqual(keys.specPartFromKey(keys.specPart('l1-ab', 12)), {generation: 'l1-ab', index: 12})
    assert.equal(keys.specPartFromKey(keys.specFold()), undefined)
    for (const key of [keys.spec(), keys.specPart('g', 0), keys.specFold(), keys.specApplyClaim()]) {
      assert.ok(key.startsWith(keys.specFamilyPrefix()), key)
      assert.deepEqual(keys.dhcpStateKey(key), {kind: 'spec'}, key)
    }
    assert.ok(!keys.node('spec').startsWith(keys.specFamilyPrefix()))
    // Part keys sort in part order, past 9.
    assert.ok(keys.specPart('g', 9) < keys.specPart('g', 10))
    assert.throws(() => keys.specPart('../x', 0), /Invalid generation/)
  })

  it('refuses segments that would escape their prefix', () => {
    assert.throws(() => keys.node('../spec'), /Invalid node name/)
    assert.throws(() => keys.node(''), /Invalid node name/)
    assert.throws(() => new KeySchema('a/b'), /Invalid cluster name/)
  })
})
