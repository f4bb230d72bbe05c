import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {confirmFlag, dryRunFlag} from '../../flags.js'
import {NodeRegistry} from '../../lib/nodes/registry.js'
import {HostKeyStore, type HostKeyRecord} from '../../lib/ssh/index.js'

export default class NodeRepin extends EtcdCommand<typeof NodeRepin> {
  static summary = 'Replace the pinned SSH host key of a node.'
  static description =
    "For a node that was reinstalled or whose host key was rotated on purpose. Verify the new fingerprint on the node's console first (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub). Asks unless --yes."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> s2 --fingerprint SHA256:Ab3...', description: 'Pin the verified new key of s2.'},
    {command: '<%= config.bin %> <%= command.id %> s2 --fingerprint SHA256:Ab3... --dry-run', description: 'Show the pin that would be replaced; change nothing.'},
  ]
  static args = {name: Args.string({description: 'Node name.', required: true})}
  static flags = {fingerprint: Flags.string({summary: 'The new host key fingerprint (SHA256:...).', required: true}), ...confirmFlag, ...dryRunFlag}

  async run(): Promise<HostKeyRecord & {dryRun: boolean}> {
    await new NodeRegistry(this.store()).require(this.args.name)
    const pins = new HostKeyStore(this.store())
    const {current, next} = await pins.planRepin(this.args.name, this.flags.fingerprint)
    const change = `the pinned host key of ${this.args.name} (${current?.fingerprints.join(', ') ?? 'none'}) with ${this.flags.fingerprint}`
    if (this.dryRun) {
      this.say(`Dry run: would replace ${change}; nothing was changed.`)
      return {...next, dryRun: true}
    }
    await this.confirm(`Replace ${change}?`)
    const record = await pins.repin(this.args.name, this.flags.fingerprint)
    this.say(`Pinned ${this.flags.fingerprint} for ${this.args.name}.`)
    return {...record, dryRun: false}
  }
}
