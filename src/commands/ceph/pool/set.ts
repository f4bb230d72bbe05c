import {Args} from '@oclif/core'

import {CephCommand, poolSettingFlags} from '../../../ceph-command.js'
import {dryRunFlag} from '../../../flags.js'
import {checkPoolInput, setPool, type PoolChange} from '../../../lib/ceph/pools.js'

export default class CephPoolSet extends CephCommand<typeof CephPoolSet> {
  static summary = "Change a Ceph pool's replicas, PG autoscaling or application."
  static description =
    'Runs `ceph osd pool set` (and `ceph osd pool application enable`) for each setting given that differs from what the pool has; nothing runs when none does. Refused with nothing changed: an unknown pool, a size larger than the number of OSDs up, a min-size that would be larger than the size.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> vm-disks --size 3 --min-size 2', description: 'Three replicas, I/O while two are up.'},
    {command: '<%= config.bin %> <%= command.id %> vm-disks --pg-autoscale warn --dry-run', description: 'Print the ceph commands it would run; change nothing.'},
  ]
  static args = {name: Args.string({description: 'Pool name.', required: true})}
  static flags = {...poolSettingFlags, ...dryRunFlag}

  async run(): Promise<PoolChange> {
    const name = this.args.name
    const {size, 'min-size': minSize, 'pg-autoscale': pgAutoscale, application} = this.flags
    const settings = {size, minSize, pgAutoscale, application}
    checkPoolInput(name, settings, 'set')
    const change = await setPool(await this.ceph(), name, settings, this.dryRun)
    if (change.commands.length === 0) this.say(`Pool ${name} has these settings already; nothing to change.`)
    else this.say(change.dryRun ? `Dry run on ${change.node}: would run, and nothing was changed:` : `Changed pool ${name} on ${change.node}:`)
    for (const line of change.commands) this.say(`  ${line}`)
    return change
  }
}
