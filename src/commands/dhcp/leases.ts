import {EtcdCommand} from '../../etcd-command.js'
import {listLeases} from '../../lib/dhcp/leases.js'
import type {LeaseSummary} from '../../lib/dhcp/lease.js'

export default class DhcpLeases extends EtcdCommand<typeof DhcpLeases> {
  static summary = 'List the DHCP leases stored in etcd.'
  static description = 'Every address the DHCP servers granted, with its MAC, node, type, expiry and the server that granted it. Expired leases stay listed until their address is reused.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Show the leases as a table.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The same as a JSON array of leases.'},
  ]

  async run(): Promise<LeaseSummary[]> {
    const leases = await listLeases(this.store())
    this.table(
      [
        {header: 'ip', get: (l) => l.ip},
        {header: 'mac', get: (l) => l.mac},
        {header: 'node', get: (l) => l.node ?? ''},
        {header: 'type', get: (l) => l.type},
        {header: 'state', get: (l) => (l.expired ? 'expired' : l.state)},
        {header: 'expires', get: (l) => l.expiresAt},
        {header: 'granted by', get: (l) => l.grantedBy},
      ],
      leases,
    )
    return leases
  }
}
