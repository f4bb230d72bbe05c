import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {requestHandover, type HandoverResult} from '../../lib/election/handover.js'
import {requireService, storedSpecIfAny} from '../../lib/election/state.js'

export default class ElectionTransfer extends BaseCommand<typeof ElectionTransfer> {
  static summary = 'Hand a service\'s leadership to a chosen node (graceful switchover).'
  static description = 'The target must be a live candidate. The leader stops the service and frees the seat; other candidates hold back until the target has won (or 10 s pass).'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> postgres --to s2', description: 'Move postgres to s2.'},
  ]

  static args = {
    service: Args.string({description: 'The service\'s name.', required: true}),
  }

  static flags = {
    to: Flags.string({summary: 'The node that should lead next.', required: true}),
  }

  async run(): Promise<HandoverResult> {
    const store = this.store()
    await requireService(store, await storedSpecIfAny(store), this.args.service)
    await this.confirm(`Move ${this.args.service} to ${this.flags.to} (it stops on the current leader)?`)
    const result = await requestHandover(store, this.args.service, this.flags.to)
    this.say(result.ms === 0 ? `${this.flags.to} already leads ${this.args.service}.` : `${this.flags.to} leads ${this.args.service} with token ${result.to?.token} after ${result.ms} ms (was ${result.from.node}).`)
    return result
  }
}
