import {Args} from '@oclif/core'

import {undrainNode} from '../../lib/actions/node-drain.js'
import type {RunSummary} from '../../lib/tasks/runner.js'
import {describeRun} from '../../lib/output/run-summary.js'
import {TaskCommand} from '../../task-command.js'

export default class NodeUndrain extends TaskCommand<typeof NodeUndrain> {
  static summary = 'Return a drained node to service.'
  static description = "Starts the node's stateful services again, marks its Ceph OSDs in again (drain marked them out), and marks it ready."
  static examples = [{command: '<%= config.bin %> <%= command.id %> c1', description: 'Bring c1 back.'}]
  static args = {name: Args.string({description: 'Node name.', required: true})}

  async run(): Promise<RunSummary> {
    const result = await undrainNode(this.store(), this.args.name, this.taskOptions())
    for (const line of describeRun(result)) this.say(line)
    return result
  }
}
