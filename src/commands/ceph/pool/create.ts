import {Args, Flags} from '@oclif/core'

import {CephCommand, poolSettingFlags} from '../../../ceph-command.js'
import {dryRunFlag} from '../../../flags.js'
import {checkPoolInput, createPool, type PoolChange} from '../../../lib/ceph/pools.js'

export default class CephPoolCreate extends CephCommand<typeof CephPoolCreate> {
  static summary = 'Create a Ceph pool, with its replicas, PG autoscaling and application.'
  static description =
    "Runs `ceph osd pool create NAME`, then `ceph osd pool set` for each setting given and `ceph osd pool application enable`. Refused with nothing changed: a name already taken, a size larger than the number of OSDs up, a min-size larger than the size. What is not given keeps Ceph's defaults."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> vm-disks --size 3 --min-size 2 --application rbd', description: 'A replicated pool for RBD images.'},
    {command: '<%= config.bin %> <%= command.id %> scratch --size 2 --pg-autoscale on --dry-run', description: 'Print the ceph commands it would run; change nothing.'},
  ]
  static args = {name: Args.string({description: 'Pool name.', required: true})}
  static flags = {
    ...poolSettingFlags,
    // A new pool's size is Ceph's default unless given: a min-size is checked against the size given.
    'min-size': Flags.integer({summary: 'Replicas that must be up for the pool to take I/O (at most --size).', min: 1, max: 10, dependsOn: ['size']}),
    ...dryRunFlag,
  }

  async run(): Promise<PoolChange> {
    const name = this.args.name
    const {size, 'min-size': minSize, 'pg-autoscale': pgAutoscale, application} = this.flags
    const settings = {size, minSize, pgAutoscale, application}
    checkPoolInput(name, settings, 'create')
    const change = await createPool(await this.ceph(), name, settings, this.dryRun)
    this.say(change.dryRun ? `Dry run on ${change.node}: would run, and nothing was changed:` : `Created pool ${name} on ${change.node}:`)
    for (const line of change.commands) this.say(`  ${line}`)
    return change
  }
}
