import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {confirmFlag, dryRunFlag} from '../../flags.js'
import {planRemoval, type RemoveResult} from '../../lib/nodes/remove.js'

export default class NodeRemove extends EtcdCommand<typeof NodeRemove> {
  static summary = 'Remove a drained node from the cluster.'
  static description = 'Marks the node removed and frees its MAC and pinned host key in one transaction. A node that is not drained is refused unless --force. Asks first unless --yes.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> c1', description: 'Remove a drained node (asks first).'},
    {command: '<%= config.bin %> <%= command.id %> c1 --force --yes', description: 'Remove a dead node without draining it.'},
    {command: '<%= config.bin %> <%= command.id %> c1 --force --dry-run', description: 'Check the removal and show what it would free; change nothing.'},
  ]
  static args = {name: Args.string({description: 'Node name.', required: true})}
  static flags = {force: Flags.boolean({summary: 'Remove even if the node is not drained.'}), ...confirmFlag, ...dryRunFlag}

  async run(): Promise<RemoveResult> {
    const plan = await planRemoval(this.store(), this.args.name, {force: this.flags.force})
    const what = `node ${plan.result.node} (${plan.result.previousState}${plan.result.forced ? ', forced' : ''}), its host key pin${plan.freesMac ? ` and its MAC ${plan.freesMac}` : ''}`
    if (this.dryRun) {
      this.say(`Dry run: would remove ${what}; nothing was changed.`)
      return plan.result
    }
    await this.confirm(`Remove ${what} from the cluster?`)
    const result = await plan.commit()
    this.say(`Removed ${result.node} (was ${result.previousState}${result.forced ? ', forced' : ''}).`)
    return result
  }
}
