import {Args, Flags} from '@oclif/core'

import {addNodes, type NodeAddResult} from '../../lib/actions/node-add.js'
import {describeRun} from '../../lib/output/run-summary.js'
import {TaskCommand} from '../../task-command.js'

export default class NodeAdd extends TaskCommand<typeof NodeAdd> {
  static summary = 'Register nodes and provision them over SSH.'
  static description = `Registers a node (type from its name or --type) and provisions it according to its type: hostname and /etc/hosts, the package cache, time sync from the core nodes, the xcluster agent config, and the role's packages and services. Nodes already registered by \`config apply\` need only their names; several run in parallel, one line per phase.

Every step checks before it changes, so re-running changes nothing. A failed run prints its id; --resume ID continues it.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> c7 --mac 02:58:43:00:02:07 --ip 10.0.0.57 --accept-new-host-key', description: 'Register and provision a new compute node.'},
    {command: '<%= config.bin %> <%= command.id %> s1 s2 s3 s4 c1 f1', description: 'Provision nodes registered by config apply.'},
    {command: '<%= config.bin %> <%= command.id %> s1 s2 --dry-run', description: 'Show what would change on each host, change nothing.'},
    {command: '<%= config.bin %> <%= command.id %> s1 s2 --resume 20261129-201500-3fa2c1', description: 'Continue a failed run.'},
    {command: '<%= config.bin %> <%= command.id %> c7 --mac 02:58:43:00:02:07 --no-provision', description: 'Only register the node.'},
  ]
  static strict = false
  static args = {name: Args.string({description: 'Node name(s).', required: true})}
  static flags = {
    mac: Flags.string({summary: 'MAC of a new node (one NAME only).'}),
    ip: Flags.string({summary: 'Fixed IP of a new node.', dependsOn: ['mac']}),
    type: Flags.string({summary: 'Node type when the name does not tell it.', options: ['core', 'storage', 'compute', 'frontend'], dependsOn: ['mac']}),
    provision: Flags.boolean({summary: 'Provision after registering (--no-provision only registers).', default: true, allowNo: true}),
    'host-key': Flags.string({summary: "Host key fingerprint (SHA256:...) from the node's console or enlistment, pinned before connecting."}),
  }

  async run(): Promise<NodeAddResult> {
    const {argv} = await this.parse(NodeAdd)
    const result = await addNodes(this.store(), {
      names: argv as string[],
      mac: this.flags.mac,
      ip: this.flags.ip,
      type: this.flags.type,
      provision: this.flags.provision,
      hostKey: this.flags['host-key'],
      ...this.taskOptions(),
    })
    for (const name of result.registered) this.say(`${this.dryRun ? 'Would register' : 'Registered'} ${name}.`)
    if (result.run) for (const line of describeRun(result.run)) this.say(line)
    return result
  }
}
