import {Args} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {requestHandover, type HandoverResult} from '../../lib/election/handover.js'
import {requireService, storedSpecIfAny} from '../../lib/election/state.js'

export default class ElectionResign extends BaseCommand<typeof ElectionResign> {
  static summary = 'Ask a service\'s leader to step down, and wait for the next leader.'
  static description = 'The leader\'s daemon stops the service, then frees the seat; another candidate wins at once. The request addresses the current leader\'s token only, and lapses after 10 s.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> postgres', description: 'Asks for confirmation first.'},
    {command: '<%= config.bin %> <%= command.id %> postgres --yes --json', description: 'No prompt; prints {from, to, ms}.'},
  ]

  static args = {
    service: Args.string({description: 'The service\'s name.', required: true}),
  }

  async run(): Promise<HandoverResult> {
    const store = this.store()
    await requireService(store, await storedSpecIfAny(store), this.args.service)
    await this.confirm(`Make the leader of ${this.args.service} resign (its service stops on that node)?`)
    const result = await requestHandover(store, this.args.service, null)
    this.say(`${result.from.node} (token ${result.from.token}) resigned; ${result.to?.node} leads with token ${result.to?.token} after ${result.ms} ms.`)
    return result
  }
}
