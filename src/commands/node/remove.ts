import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {removeNode, type RemoveResult} from '../../lib/nodes/remove.js'

export default class NodeRemove extends BaseCommand<typeof NodeRemove> {
  static summary = 'Remove a drained node from the cluster.'
  static description = 'Marks the node removed and frees its MAC and pinned host key in one transaction. A node that is not drained is refused unless --force. Asks first unless --yes.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> c1', description: 'Remove a drained node (asks first).'},
    {command: '<%= config.bin %> <%= command.id %> c1 --force --yes', description: 'Remove a dead node without draining it.'},
  ]
  static args = {name: Args.string({description: 'Node name.', required: true})}
  static flags = {force: Flags.boolean({summary: 'Remove even if the node is not drained.'})}

  async run(): Promise<RemoveResult> {
    await this.confirm(`Remove node ${this.args.name} from the cluster?`)
    const result = await removeNode(this.store(), this.args.name, {force: this.flags.force})
    this.say(`Removed ${result.node} (was ${result.previousState}${result.forced ? ', forced' : ''}).`)
    return result
  }
}
