import {Args, Flags} from '@oclif/core'

import {addDisk, type DiskAddResult} from '../../../lib/ceph/disk-add.js'
import {loopOsdFile} from '../../../lib/ceph/disks.js'
import {describeRun} from '../../../lib/output/run-summary.js'
import {TaskCommand} from '../../../task-command.js'

export default class CephDiskAdd extends TaskCommand<typeof CephDiskAdd> {
  static summary = 'Make a disk of a node a Ceph OSD: LVM on it (a PV, a VG of its own, one LV), then the OSD.'
  static description = `A task list on the node over SSH. First, with nothing changed: the node runs the spec's Ceph backend, and the device is a writable disk or partition, not mounted (never, even with --wipe), and empty: a filesystem, a partition table, LVM metadata or partitions on it are refused unless --wipe. Then pvcreate, vgcreate ceph-NODE-DEVICE and lvcreate osd-block over all of it, and the backend's OSD creation on that LV: microceph disk add (MicroCeph) or ceph-volume lvm create --bluestore (Debian's Ceph).
An interrupted run continues with --resume: LVM made by an earlier attempt is kept, not refused.
A node without a spare disk (a lab, a small test cluster) takes loop,SIZE[,COUNT] instead of a device, MicroCeph's own spec: COUNT OSDs (default 1) whose BlueStore lives in a SIZE file on the node's root disk (MicroCeph's loop files; for Debian's Ceph, templates/ceph/osd-file.sh). Each run adds new ones. They share the root disk's fate: not for data that matters.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> s4 /dev/sdb', description: 'Add an empty disk of s4 as an OSD.'},
    {command: '<%= config.bin %> <%= command.id %> s4 /dev/sdc --wipe --dry-run', description: 'Show the wipefs, LVM and OSD commands for a disk that holds old data; change nothing.'},
    {command: '<%= config.bin %> <%= command.id %> s1 loop,4G', description: 'Add one OSD kept in a 4 GiB file on the root disk of s1 (no spare disk there).'},
  ]
  static args = {
    node: Args.string({description: 'The node the disk is in.', required: true}),
    device: Args.string({description: 'The disk on that node, by path (/dev/sdb, /dev/disk/by-id/...), or loop,SIZE[,COUNT] for OSDs in files.', required: true}),
  }
  static flags = {
    wipe: Flags.boolean({summary: 'Destroy what the device holds (filesystem, partition table, LVM metadata) first.'}),
  }

  async run(): Promise<DiskAddResult> {
    const result = await addDisk(this.store(), this.args.node, this.args.device, {...this.taskOptions(), wipe: this.flags.wipe})
    for (const line of describeRun(result.run)) this.say(line)
    if (result.osd !== undefined) this.say(`osd.${result.osd} is on ${this.args.device} (${result.volumeGroup}/osd-block).`)
    for (const id of result.osds ?? []) this.say(`osd.${id} is in a file on ${this.args.node} (${loopOsdFile(id)}).`)
    return result
  }
}
