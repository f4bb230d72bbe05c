import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {checkDevicePath, diskCommands, diskRefusal, loopCommands, parseDeviceFacts, parseLoopSpec, scriptLine, type DeviceFacts} from '../../src/lib/ceph/disks.js'
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

  it("loop,SIZE[,COUNT]: MicroCeph's own spec, sizes with M, G or T of at least 1G, 1 to 16 OSDs; a path is no loop spec", () => {
    assert.deepEqual(parseLoopSpec('loop,4G'), {size: '4G', bytes: 4 * 1024 ** 3, count: 1})
    assert.deepEqual(parseLoopSpec('loop,2048M,3'), {size: '2048M', bytes: 2 * 1024 ** 3, count: 3})
    assert.deepEqual(parseLoopSpec('loop,1T,2'), {size: '1T', bytes: 1024 ** 4, count: 2})
    assert.equal(parseLoopSpec('/dev/sdb'), undefined)
    for (const bad of ['loop,', 'loop,4', 'loop,4g', 'loop,512M', 'loop,4G,0', 'loop,4G,17', 'loop,4G,x', 'loop,4G;reboot', 'loop,-4G']) {
      assert.throws(
        () => parseLoopSpec(bad),
        (e: unknown) => e instanceof XclusterError && e.message.includes('is not a loop spec') && /loop,4G or loop,8G,3/.test(e.suggestion ?? ''),
        bad,
      )
    }
  })

  it("loop OSDs: MicroCeph's one documented `disk add loop,SIZE,N`; Debian's Ceph one script per OSD, ceph-volume's steps with a file for the block", () => {
    const spec = parseLoopSpec('loop,4G,2')!
    // https://documentation.ubuntu.com/microceph/stable/snap/reference/commands/disk/: "The
    // specification for loop files is of the form loop,<size>,<nr>" (e.g. loop,8G,3).
    assert.deepEqual(loopCommands('microceph', spec, ['u1', 'u2']), ['microceph disk add loop,4G,2'])
    const scripts = loopCommands('ceph', spec, ['11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222'])
    assert.equal(scripts.length, 2)
    const [first] = scripts
    assert.match(first!, /^uuid=11111111-1111-1111-1111-111111111111$/m)
    assert.match(first!, /^set -eu$/m)
    assert.match(first!, /osd new "\$uuid" -i -\)$/m)
    assert.match(first!, /--bluestore-block-create true --bluestore-block-size 4294967296 /)
    assert.match(first!, /^systemctl enable --now "ceph-osd@\$id"$/m)
    // No key is ever an argument the plan shows: it is made on the node, in a shell variable.
    assert.doesNotMatch(scriptLine(first!), /#|set -eu/)
    assert.match(scriptLine(first!), /^uuid=1111.*; keyring=\/var\/lib\/ceph\/bootstrap-osd\/ceph\.keyring; secret=\$\(ceph-authtool --gen-print-key\); /)
  })
})
