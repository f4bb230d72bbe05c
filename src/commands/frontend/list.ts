import {EtcdCommand} from '../../etcd-command.js'
import {listFrontends, type FrontendView} from '../../lib/frontend/registry.js'

export default class FrontendList extends EtcdCommand<typeof FrontendList> {
  static summary = 'The public endpoints: target, port, certificate and its days left, and the frontend nodes serving them.'
  static description = 'Read from etcd, by name. SERVED BY lists the ready frontend nodes (each runs nginx and the Rathole server for every endpoint). Never a Rathole token, not even with --json.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Every endpoint.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The same as JSON: [{name, to, target, port, cert, certificate: {daysLeft, status}, tunnelPort, servedBy, ...}].'},
  ]

  async run(): Promise<FrontendView[]> {
    const frontends = await listFrontends(this.store())
    this.table(
      [
        {header: 'name', get: (f) => f.name},
        {header: 'to', get: (f) => f.to},
        {header: 'port', get: (f) => f.port},
        {header: 'cert', get: (f) => f.cert},
        {header: 'days left', get: (f) => f.certificate?.daysLeft},
        {header: 'cert status', get: (f) => f.certificate?.status},
        {header: 'served by', get: (f) => f.servedBy.map((n) => n.node).join(',') || 'none ready'},
      ],
      frontends,
    )
    return frontends
  }
}
