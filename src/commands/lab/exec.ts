import {Args} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {usageError} from '../../lib/errors.js'
import {execOnHost} from '../../lib/lab/exec.js'

export default class LabExec extends BaseCommand<typeof LabExec> {
  static summary = 'Run a command on a lab host; its exit code becomes ours.'
  static description =
    'admin runs in the xc-admin namespace with XCLUSTER_ETCD, XCLUSTER_CLUSTER and the xcluster CLI on PATH; a node with an address is reached with OpenSSH (pinned host key); a node without one through nsenter.'
  static examples = [
    {command: 'sudo <%= config.bin %> <%= command.id %> s1 -- hostname', description: 'Run hostname on s1 over SSH.'},
    {command: 'sudo <%= config.bin %> <%= command.id %> admin -- xcluster node list', description: 'Use the CLI from the admin host against the lab etcd.'},
  ]

  static strict = false
  static args = {host: Args.string({required: true, description: 'admin or a node name'})}

  async run(): Promise<{host: string; exitCode: number}> {
    const command = this.argv.slice(this.argv.indexOf(this.args.host) + 1).filter((a, i) => !(i === 0 && a === '--'))
    if (command.length === 0) throw usageError('No command given.', `Put the command after --, e.g.: xcluster lab exec ${this.args.host} -- hostname`)
    const exitCode = await execOnHost(this.args.host, command, {notice: (m) => process.stderr.write(`${m}\n`)})
    process.exitCode = exitCode
    return {host: this.args.host, exitCode}
  }
}
