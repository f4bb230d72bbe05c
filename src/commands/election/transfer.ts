import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {confirmFlag, dryRunFlag} from '../../flags.js'
import {planHandover, type HandoverPlan} from '../../lib/election/handover-plan.js'
import {requestHandover, type HandoverResult} from '../../lib/election/handover.js'
import {requireService, storedSpecIfAny} from '../../lib/election/state.js'

export default class ElectionTransfer extends EtcdCommand<typeof ElectionTransfer> {
  static summary = "Hand a service's leadership to a chosen node (graceful switchover)."
  static description =
    'The target must be a live candidate. The leader stops the service and frees the seat; other candidates hold back until the target has won (or 10 s pass). Asks first unless --yes.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> postgres --to s2', description: 'Move postgres to s2.'},
    {command: '<%= config.bin %> <%= command.id %> postgres --to s2 --dry-run', description: 'Check that s2 campaigns and show the switchover; request nothing.'},
  ]

  static args = {
    service: Args.string({description: "The service's name.", required: true}),
  }

  static flags = {
    to: Flags.string({summary: 'The node that should lead next.', required: true}),
    ...confirmFlag,
    ...dryRunFlag,
  }

  async run(): Promise<HandoverResult | HandoverPlan> {
    const store = this.store()
    await requireService(store, await storedSpecIfAny(store), this.args.service)
    const plan = await planHandover(store, this.args.service, this.flags.to)
    if (this.dryRun) {
      this.say(
        plan.changes
          ? `Dry run: would ask ${plan.from.node} (token ${plan.from.token}) to stop ${this.args.service} and hand it to ${this.flags.to}. Nothing was requested.`
          : `Dry run: ${this.flags.to} already leads ${this.args.service}; nothing to do.`,
      )
      return plan
    }
    if (plan.changes) await this.confirm(`Move ${this.args.service} from ${plan.from.node} to ${this.flags.to} (it stops on ${plan.from.node})?`)
    const result = await requestHandover(store, this.args.service, this.flags.to)
    this.say(
      result.ms === 0
        ? `${this.flags.to} already leads ${this.args.service}.`
        : `${this.flags.to} leads ${this.args.service} with token ${result.to?.token} after ${result.ms} ms (was ${result.from.node}).`,
    )
    return result
  }
}
