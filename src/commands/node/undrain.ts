import {Args} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {undrainNode} from '../../lib/actions/node-drain.js'
import type {RunSummary} from '../../lib/tasks/runner.js'
import {describeRun} from '../../lib/output/run-summary.js'
import {taskFlags} from '../../task-flags.js'

export default class NodeUndrain extends BaseCommand<typeof NodeUndrain> {
  static summary = 'Return a drained node to service.'
  static description = 'Starts the node\'s stateful services again and marks it ready.'
  static examples = [{command: '<%= config.bin %> <%= command.id %> c1', description: 'Bring c1 back.'}]
  static args = {name: Args.string({description: 'Node name.', required: true})}
  static flags = {...taskFlags}

  async run(): Promise<RunSummary> {
    const result = await undrainNode(this.store(), this.args.name, {
      keyPath: this.flags['ssh-key'],
      acceptNewHostKey: this.flags['accept-new-host-key'],
      lanInterface: this.flags['lan-interface'],
      dryRun: this.flags['dry-run'],
      concurrency: this.flags.concurrency,
      resume: this.flags.resume,
      progress: this.progressMode(),
      args: this.argv,
    })
    for (const line of describeRun(result)) this.say(line)
    return result
  }
}
