import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {checkDevicePath, diskCommands, diskRefusal, parseDeviceFacts, type DeviceFacts} from '../../src/lib/ceph/disks.js'
import {XclusterError} from '../../src/lib/errors.js'

const VG = 'ceph-s4-sdb'
const lsblk = (extra: Record<string, unknown> = {}) => JSON.stringify({blockdevices: [{name: '/dev/sdb', type: 'disk', size: 10737418240, mountpoint: null, ro: false, ...extra}]})
const wipefs = (...types: string[]) => (types.length ? JSON.stringify({signatures: types.map((type) => ({device: 'sdb', offset: '0x438', type}))}) : '')
const output = (l: string, w = '', pvs = '', lvs = '') => [l, '@@', w, '@@', pvs, '@@', lvs].join('\n')
const facts = (o: string) => parseDeviceFacts('/dev/sdb', o, VG)

describe('ceph disk add: what a device holds, and what may be done to it', () => {
  it('reads lsblk, wipefs, pvs and lvs into facts', () => {
    const f = facts(output(lsblk({children: [{name: '/dev/sdb1', type: 'part', size: 1, mountpoint: '/srv', ro: false}]}), wipefs('dos')))
    assert.deepEqual(f, {
      path: '/dev/sdb',
      type: 'disk',
      sizeBytes: 10737418240,
      readOnly: false,
      mounts: ['/srv'],
      children: ['/dev/sdb1'],
      signatures: [{type: 'dos', offset: '0x438'}],
      volumeGroup: null,
      hasOsdVolume: false,
    })
    const ours = facts(output(lsblk(), wipefs('LVM2_member'), `  ${VG}\n`, '  osd-block\n'))
    assert.equal(ours.volumeGroup, VG)
    assert.equal(ours.hasOsdVolume, true)
  })

  it('an empty disk: PV, VG, LV, then the backend creates the OSD; no refusal', () => {
    const f = facts(output(lsblk()))
    assert.equal(diskRefusal('s4', f, false), undefined)
    assert.deepEqual(diskCommands('s4', f, 'ceph', false), {
      prepare: ['pvcreate /dev/sdb', `vgcreate ${VG} /dev/sdb`, `lvcreate -y -l 100%FREE -n osd-block ${VG}`],
      addOsd: `ceph-volume lvm create --bluestore --data ${VG}/osd-block`,
    })
    assert.equal(diskCommands('s4', f, 'microceph', false).addOsd, `microceph disk add /dev/${VG}/osd-block`)
  })

  it('a filesystem, a partition table, LVM metadata or partitions are refused unless --wipe; --wipe wipes partitions, then the disk', () => {
    const cases: [DeviceFacts, RegExp][] = [
      [facts(output(lsblk(), wipefs('ext4'))), /holds data: a signature of ext4 at offset 0x438\./],
      [facts(output(lsblk(), wipefs('gpt', 'PMBR'))), /holds data: a partition table \(gpt\), a partition table \(PMBR\)\./],
      [facts(output(lsblk(), wipefs('LVM2_member'), 'other-vg')), /holds data: LVM metadata \(a physical volume\)\./],
      [facts(output(lsblk({children: [{name: '/dev/sdb1', type: 'part', size: 1, mountpoint: null, ro: false}]}))), /holds data: \/dev\/sdb1 on it\./],
    ]
    for (const [f, message] of cases) {
      const refusal = diskRefusal('s4', f, false)
      assert.ok(refusal instanceof XclusterError)
      assert.equal(refusal.code, 'CEPH_DISK_NOT_EMPTY')
      assert.match(refusal.message, message)
      assert.equal(refusal.suggestion, 'If that data may go, say so: xcluster ceph disk add s4 /dev/sdb --wipe')
      assert.equal(diskRefusal('s4', f, true), undefined)
    }
    const parted = cases[3]![0]
    assert.deepEqual(diskCommands('s4', parted, 'ceph', true).prepare.slice(0, 3), ['wipefs -a /dev/sdb1', 'wipefs -a /dev/sdb', 'pvcreate /dev/sdb'])
  })

  it('mounted (even with --wipe), read-only or not a disk is refused', () => {
    const mounted = facts(output(lsblk({mountpoint: '/var/lib/x'})))
    assert.equal(diskRefusal('s4', mounted, true)?.code, 'CEPH_DISK_IN_USE')
    assert.equal(diskRefusal('s4', facts(output(lsblk({ro: true}))), true)?.code, 'CEPH_DISK_READ_ONLY')
    assert.equal(diskRefusal('s4', facts(output(lsblk({type: 'lvm'}))), true)?.code, 'CEPH_DISK_UNSUITABLE')
  })

  it("an earlier attempt's own PV is carried on: only what is missing is made", () => {
    const pvOnly = facts(output(lsblk(), wipefs('LVM2_member'), VG, ''))
    assert.equal(diskRefusal('s4', pvOnly, false), undefined)
    assert.deepEqual(diskCommands('s4', pvOnly, 'ceph', false).prepare, [`lvcreate -y -l 100%FREE -n osd-block ${VG}`])
    assert.deepEqual(diskCommands('s4', facts(output(lsblk(), wipefs('LVM2_member'), VG, 'osd-block')), 'ceph', false).prepare, [])
  })

  it('a device is named by its path', () => {
    assert.doesNotThrow(() => checkDevicePath('/dev/disk/by-id/wwn-0x5000c500a1b2c3d4'))
    for (const bad of ['sdb', '/dev/', '/dev/../etc/passwd', '/dev/sdb; reboot', '/tmp/x']) assert.throws(() => checkDevicePath(bad), /is not a device path/)
  })
})
