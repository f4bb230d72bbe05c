import {Args, Flags} from '@oclif/core'

import {confirmFlag} from '../../flags.js'
import {describeLeft, leaveCeph, planCephLeave, type CephLeaveResult} from '../../lib/ceph/leave.js'
import {describeRun} from '../../lib/output/run-summary.js'
import {TaskCommand} from '../../task-command.js'

export default class CephLeave extends TaskCommand<typeof CephLeave> {
  static summary = "Take a node's Ceph monitor and manager out of the cluster (the inverse of ceph join)."
  static description = `Refused with nothing changed when the node is not a monitor, runs the last one, would leave a single monitor (allowed with --force), when the monitors that would remain are not all in quorum now, or when the node cannot be reached over SSH (with --force its own steps are left out).
ceph (Debian's packages): ceph mon remove NODE on a remaining monitor while the node is still in the monmap, systemctl disable --now ceph-mon@NODE ceph-mgr@NODE, the node's monitor and manager stores deleted (a removed monitor must never start again with an old map), ceph auth del mgr.NODE, and every ceph.conf (the node's too, for its OSDs) naming the remaining monitors.
microceph: microceph cluster remove NODE on a remaining member.
Then it waits until the remaining monitors are in quorum with their managers, and etcd no longer lists the node as a monitor. Asks first unless --yes.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> s3', description: 'Take s3 out of Ceph (asks first).'},
    {command: '<%= config.bin %> <%= command.id %> s3 --dry-run', description: 'Check it and show what taking s3 out would run; change nothing.'},
    {command: '<%= config.bin %> <%= command.id %> s2 --force --yes', description: 'Take s2 out even though one monitor remains (or s2 is unreachable).'},
  ]
  static args = {
    node: Args.string({description: 'The monitor node to take out.', required: true}),
  }
  static flags = {
    force: Flags.boolean({summary: 'Go on leaving a single monitor, or without the node when it cannot be reached.'}),
    ...confirmFlag,
  }

  async run(): Promise<CephLeaveResult> {
    const options = {...this.taskOptions(), force: this.flags.force}
    const plan = await planCephLeave(this.store(), this.args.node, options)
    if (!this.dryRun) {
      await this.confirm(
        `Take ${plan.node} out of Ceph (its monitor and manager stopped and deleted${plan.reached ? '' : '; it is unreachable, so only the cluster forgets it'}), leaving monitors ${plan.mons.join(', ')}?`,
      )
    }
    const result = await leaveCeph(this.store(), plan, options)
    for (const line of describeRun(result.run)) this.say(line)
    for (const line of describeLeft(result)) this.say(line)
    return result
  }
}
