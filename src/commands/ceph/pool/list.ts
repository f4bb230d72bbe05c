import {CephCommand} from '../../../ceph-command.js'
import {listPools, type CephPool} from '../../../lib/ceph/pools.js'

export default class CephPoolList extends CephCommand<typeof CephPoolList> {
  static summary = 'List the Ceph pools: size, min-size, placement groups, PG autoscale mode, applications.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'One row per pool.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The pools as JSON.'},
  ]

  async run(): Promise<CephPool[]> {
    const pools = await listPools(await this.ceph())
    this.table(
      [
        {header: 'pool', get: (p) => p.name},
        {header: 'id', get: (p) => p.id},
        {header: 'size', get: (p) => p.size},
        {header: 'min size', get: (p) => p.minSize},
        {header: 'pgs', get: (p) => p.pgNum},
        {header: 'autoscale', get: (p) => p.pgAutoscale},
        {header: 'applications', get: (p) => p.applications.join(',') || '-'},
      ],
      pools,
    )
    return pools
  }
}
