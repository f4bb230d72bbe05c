import {Args} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import type {NodeRecord} from '../../lib/nodes/record.js'
import {NodeRegistry} from '../../lib/nodes/registry.js'

export default class NodeShow extends EtcdCommand<typeof NodeShow> {
  static summary = "Show one node's record: type, MAC, address, state, timestamps and state history."
  static description = 'Reads the node record from etcd. Exits 3 (NODE_NOT_FOUND) for a name etcd does not know.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> s1', description: 'Show node s1 as a table of fields.'},
    {command: '<%= config.bin %> <%= command.id %> s1 --json', description: 'Print the whole record as JSON.'},
  ]

  static args = {
    name: Args.string({description: "The node's name, as in `xcluster node list`.", required: true}),
  }

  async run(): Promise<NodeRecord> {
    const node = await new NodeRegistry(this.store()).require(this.args.name)
    const fields: [string, string | undefined][] = [
      ['name', node.name],
      ['type', node.type],
      ['mac', node.mac],
      ['ip', node.ip ?? 'dhcp'],
      ['state', node.state],
      ['reason', node.reason],
      ['created', node.createdAt],
      ['updated', node.updatedAt],
    ]
    this.table(
      [
        {header: 'field', get: (f) => f[0]},
        {header: 'value', get: (f) => f[1]},
      ],
      fields,
    )
    if (node.history?.length) {
      this.say('\nHistory')
      this.table(
        [
          {header: 'at', get: (h) => h.at},
          {header: 'from', get: (h) => h.from},
          {header: 'to', get: (h) => h.to},
          {header: 'by', get: (h) => h.by},
          {header: 'reason', get: (h) => h.reason},
        ],
        node.history,
      )
    }
    return node
  }
}
