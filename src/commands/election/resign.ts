import {Args} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {confirmFlag, dryRunFlag} from '../../flags.js'
import {planHandover, type HandoverPlan} from '../../lib/election/handover-plan.js'
import {requestHandover, type HandoverResult} from '../../lib/election/handover.js'
import {requireService, storedSpecIfAny} from '../../lib/election/state.js'

export default class ElectionResign extends EtcdCommand<typeof ElectionResign> {
  static summary = "Ask a service's leader to step down, and wait for the next leader."
  static description = "The leader's daemon stops the service, then frees the seat; another candidate wins at once. The request addresses the current leader's token only, and lapses after 10 s."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> postgres', description: 'Asks for confirmation first.'},
    {command: '<%= config.bin %> <%= command.id %> postgres --yes --json', description: 'No prompt; prints {from, to, ms}.'},
    {command: '<%= config.bin %> <%= command.id %> postgres --dry-run', description: 'Show who leads and who could take over; ask nothing of the leader.'},
  ]

  static args = {
    service: Args.string({description: "The service's name.", required: true}),
  }

  static flags = {...confirmFlag, ...dryRunFlag}

  async run(): Promise<HandoverResult | HandoverPlan> {
    const store = this.store()
    await requireService(store, await storedSpecIfAny(store), this.args.service)
    const plan = await planHandover(store, this.args.service, null)
    if (this.dryRun) {
      this.say(
        `Dry run: would ask ${plan.from.node} (token ${plan.from.token}) to stop ${this.args.service} and resign; candidates to take over: ${plan.candidates.join(', ') || 'none'}. Nothing was requested.`,
      )
      return plan
    }
    await this.confirm(`Make ${plan.from.node}, the leader of ${this.args.service}, resign (its service stops there)?`)
    const result = await requestHandover(store, this.args.service, null)
    this.say(`${result.from.node} (token ${result.from.token}) resigned; ${result.to?.node} leads with token ${result.to?.token} after ${result.ms} ms.`)
    return result
  }
}
