import {Args} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {execOnHost} from '../../lib/lab/exec.js'

export default class LabSsh extends BaseCommand<typeof LabSsh> {
  static summary = 'Open an interactive shell on a lab host.'
  static description = 'The same paths as `lab exec`: OpenSSH with the pinned host key for addressed nodes, nsenter otherwise, the xc-admin namespace for admin.'
  static examples = [{command: 'sudo <%= config.bin %> <%= command.id %> s1', description: 'A root shell on s1.'}]
  static enableJsonFlag = false
  static args = {host: Args.string({required: true, description: 'admin or a node name'})}

  async run(): Promise<void> {
    process.exitCode = await execOnHost(this.args.host, [], {notice: (m) => process.stderr.write(`${m}\n`)})
  }
}
