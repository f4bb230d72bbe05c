import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {NodeRegistry} from '../../lib/nodes/registry.js'
import {HostKeyStore, type HostKeyRecord} from '../../lib/ssh/index.js'

export default class NodeRepin extends BaseCommand<typeof NodeRepin> {
  static summary = 'Replace the pinned SSH host key of a node.'
  static description = 'For a node that was reinstalled or whose host key was rotated on purpose. Verify the new fingerprint on the node\'s console first (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub). Asks unless --yes.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> s2 --fingerprint SHA256:Ab3...', description: 'Pin the verified new key of s2.'},
  ]
  static args = {name: Args.string({description: 'Node name.', required: true})}
  static flags = {fingerprint: Flags.string({summary: 'The new host key fingerprint (SHA256:...).', required: true})}

  async run(): Promise<HostKeyRecord> {
    await new NodeRegistry(this.store()).require(this.args.name)
    await this.confirm(`Replace the pinned host key of ${this.args.name} with ${this.flags.fingerprint}?`)
    const record = await new HostKeyStore(this.store()).repin(this.args.name, this.flags.fingerprint)
    this.say(`Pinned ${this.flags.fingerprint} for ${this.args.name}.`)
    return record
  }
}
