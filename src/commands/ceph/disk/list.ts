import {CephCommand} from '../../../ceph-command.js'
import {humanSize} from '../../../lib/ceph/input.js'
import {listDisks, type OsdDisk} from '../../../lib/ceph/disks.js'

export default class CephDiskList extends CephCommand<typeof CephDiskList> {
  static summary = 'Every OSD with its host, devices, object store, size, use, PGs and whether it is up and in.'
  static description = "From `ceph osd metadata`, `ceph osd df`, `ceph osd dump` and `ceph osd tree` on a node over SSH; the host is the OSD's CRUSH host, the one node drain and update go by."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'The OSDs, by host.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The same as JSON: [{osd, host, devices, objectstore, sizeBytes, usedBytes, usedPercent, pgs, up, in}].'},
  ]

  async run(): Promise<OsdDisk[]> {
    const disks = await listDisks(await this.ceph())
    this.table(
      [
        {header: 'osd', get: (d) => `osd.${d.osd}`},
        {header: 'host', get: (d) => d.host},
        {header: 'devices', get: (d) => d.devices.join(',') || '-'},
        {header: 'store', get: (d) => d.objectstore},
        {header: 'size', get: (d) => humanSize(d.sizeBytes)},
        {header: 'used', get: (d) => `${d.usedPercent} %`},
        {header: 'pgs', get: (d) => String(d.pgs)},
        {header: 'status', get: (d) => `${d.up ? 'up' : 'down'}, ${d.in ? 'in' : 'out'}`},
      ],
      disks,
    )
    return disks
  }
}
