import {EtcdCommand} from '../../etcd-command.js'
import type {NodeSummary} from '../../lib/nodes/record.js'
import {nodeSummaries} from '../../lib/nodes/summary.js'

export default class NodeList extends EtcdCommand<typeof NodeList> {
  static summary = "List the cluster's nodes with their type, MAC, address and state."
  static description = "Reads the node records from etcd, the cluster's single source of truth. A node without a fixed IP shows the address DHCP leases to it now, marked (dhcp)."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Show every node as a table.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The same as a JSON array of {name,type,mac,ip,leasedIp?,state,reason?}.'},
  ]

  async run(): Promise<NodeSummary[]> {
    const nodes = await nodeSummaries(this.store())
    this.table(
      [
        {header: 'name', get: (n) => n.name},
        {header: 'type', get: (n) => n.type},
        {header: 'mac', get: (n) => n.mac},
        {header: 'ip', get: (n) => n.ip ?? (n.leasedIp ? `${n.leasedIp} (dhcp)` : null)},
        {header: 'state', get: (n) => n.state},
        {header: 'reason', get: (n) => n.reason},
      ],
      nodes,
    )
    return nodes
  }
}
