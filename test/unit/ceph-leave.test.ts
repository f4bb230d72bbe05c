/**
 * What `ceph leave` refuses from the record alone (the monitors' majority) and the lines it runs,
 * for both backends. Debian's lines follow Ceph's "Adding/Removing Monitors" (ceph mon remove,
 * then the monitor stopped and its store deleted); MicroCeph's is its documented
 * `microceph cluster remove <NAME>`:
 * https://documentation.ubuntu.com/microceph/latest/snap/reference/commands/cluster/
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {
  disableLine,
  mgrAuthDelLine,
  mgrAuthExistsLine,
  mgrDataDir,
  mgrUnit,
  microceph,
  microcephListsMember,
  monDataDir,
  monmapNames,
  monRemoveLine,
  monUnit,
  removeDirsLine,
} from '../../src/lib/ceph/deploy.js'
import {checkLeave} from '../../src/lib/ceph/leave.js'
import type {CephClusterRecord} from '../../src/lib/ceph/membership.js'
import {XclusterError} from '../../src/lib/errors.js'

const record = (mons: string[]): CephClusterRecord => ({backend: 'ceph', fsid: '8d0e5c52-1f4e-4c34-9d4e-000000000001', mons, bootstrappedAt: '', updatedAt: ''})

function refused(fn: () => unknown, code: string, message: RegExp, suggestion: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof XclusterError)
    assert.equal(error.code, code)
    assert.equal(error.exit, 3)
    assert.match(error.message, message)
    assert.match(error.suggestion ?? '', suggestion)
    return true
  })
}

describe('ceph leave: the refusals that keep a majority of monitors', () => {
  it('three to two is allowed; the remaining monitors keep their order', () => {
    assert.deepEqual(checkLeave(record(['s1', 's2', 's3']), 's3', false), ['s1', 's2'])
    assert.deepEqual(checkLeave(record(['s1', 's2', 's3']), 's1', false), ['s2', 's3'])
  })

  it('two to one only with --force', () => {
    refused(() => checkLeave(record(['s1', 's2']), 's2', false), 'CEPH_TOO_FEW_MONITORS', /would leave one Ceph monitor \(s1\)/, /xcluster ceph leave s2 --force/)
    assert.deepEqual(checkLeave(record(['s1', 's2']), 's2', true), ['s1'])
  })

  it('the last monitor never, not even with --force', () => {
    for (const force of [false, true]) refused(() => checkLeave(record(['s1']), 's1', force), 'CEPH_LAST_MONITOR', /s1 runs the last Ceph monitor/, /xcluster ceph join NODE/)
  })

  it('a node that is not a monitor (a leave already done): refused, pointing at ceph status', () => {
    refused(() => checkLeave(record(['s1', 's2']), 's3', true), 'CEPH_NOT_MONITOR', /s3 is not a Ceph monitor: the monitors are s1, s2/, /xcluster ceph status/)
  })
})

describe('ceph leave: the lines it runs', () => {
  it("Debian's Ceph: out of the monmap, units stopped and disabled, stores deleted, the manager's key deleted", () => {
    assert.equal(monRemoveLine('s3'), 'ceph mon remove s3')
    assert.equal(disableLine([monUnit('s3'), mgrUnit('s3')]), 'systemctl disable --now ceph-mon@s3 ceph-mgr@s3')
    assert.equal(removeDirsLine([monDataDir('s3'), mgrDataDir('s3')]), 'rm -rf /var/lib/ceph/mon/ceph-s3 /var/lib/ceph/mgr/ceph-s3')
    assert.equal(mgrAuthDelLine('s3'), 'ceph auth del mgr.s3')
    // The check prints nothing: the key never leaves the node.
    assert.equal(mgrAuthExistsLine('s3'), 'ceph auth get mgr.s3 >/dev/null 2>&1')
    // A name is one argument, whatever it holds.
    assert.equal(monRemoveLine('a b'), "ceph mon remove 'a b'")
  })

  it('the monmap is read from ceph mon dump --format json', () => {
    assert.deepEqual(monmapNames({mons: [{name: 's1'}, {name: 's3'}, {}]}), ['s1', 's3'])
    assert.deepEqual(monmapNames({}), [])
  })

  it("MicroCeph: the documented cluster remove, only while cluster list's table names the node", () => {
    assert.equal(microceph.remove('s3'), 'microceph cluster remove s3')
    const list = [
      '+------+---------------+-------+-------------+--------+',
      '| NAME |    ADDRESS    | ROLE  | FINGERPRINT | STATUS |',
      '+------+---------------+-------+-------------+--------+',
      '| s1   | 10.0.0.2:7443 | voter | 5c1e...     | ONLINE |',
      '| s3   | 10.0.0.4:7443 | voter | 9a2b...     | ONLINE |',
      '+------+---------------+-------+-------------+--------+',
    ].join('\n')
    assert.equal(microcephListsMember(list, 's3'), true)
    assert.equal(microcephListsMember(list, 's2'), false)
  })
})
