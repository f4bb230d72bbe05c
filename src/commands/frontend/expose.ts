import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {dryRunFlag} from '../../flags.js'
import {exposeFrontend, type ExposeResult} from '../../lib/frontend/registry.js'

export default class FrontendExpose extends EtcdCommand<typeof FrontendExpose> {
  static summary = 'Publish a service on the frontend nodes: nginx on --port, through a Rathole tunnel to --to.'
  static description = `Records the endpoint in etcd (create-only), with a tunnel port and a random Rathole token of its own (never shown). Every ready frontend node serves it: nginx listens on --port (TLS with --cert, a certificate stored by \`cert issue\`; plain HTTP without) and proxies to the Rathole server, whose client on a core node connects to --to. --to is a spec service (reached at its VIP), an IPv4 address or a DNS name, with its port. With --client-auth nginx admits only clients presenting a certificate of the cluster CA that its CRL does not list. Refused with nothing written: a name or public port already taken, a port a frontend uses itself, an unknown or expired certificate.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> shop --to web:8080 --port 443 --cert shop', description: 'HTTPS on 443 with certificate "shop", to the web service’s VIP, port 8080.'},
    {command: '<%= config.bin %> <%= command.id %> grafana --to 10.0.0.51:3000 --port 8443 --cert grafana --dry-run', description: 'Check the endpoint and show it; write nothing.'},
    {
      command: '<%= config.bin %> <%= command.id %> admin-api --to 10.0.0.51:9000 --port 9443 --cert admin-api --client-auth',
      description: 'Mutual TLS: only clients holding a certificate of the cluster CA (cert issue NAME --profile client) that is not revoked.',
    },
  ]
  static args = {name: Args.string({description: 'Endpoint name (lower-case letters, digits, ., _, -).', required: true})}
  static flags = {
    to: Flags.string({summary: 'Where the traffic goes: SERVICE_OR_HOST:PORT.', required: true}),
    port: Flags.integer({summary: 'The public port nginx listens on, on every frontend node.', required: true}),
    cert: Flags.string({summary: 'A certificate stored by `cert issue`: nginx terminates TLS with it.'}),
    'client-auth': Flags.boolean({summary: 'Require a client certificate of the cluster CA, refused once the CA’s revocation list names it (needs --cert).'}),
    ...dryRunFlag,
  }

  async run(): Promise<ExposeResult> {
    const {to, port, cert} = this.flags
    const result = await exposeFrontend(this.store(), {name: this.args.name, to, port, cert, clientAuth: this.flags['client-auth']}, {dryRun: this.dryRun})
    const f = result.frontend
    const tls = f.cert ? `TLS with certificate ${f.cert}${f.clientAuth ? ', client certificates of the cluster CA required' : ''}` : 'plain HTTP'
    const what = `${f.name}: port ${f.port} (${tls}) to ${f.to}, tunnel port ${f.tunnelPort}`
    this.say(result.dryRun ? `Dry run: would expose ${what}; nothing was changed.` : `Exposed ${what}.`)
    this.say(f.servedBy.length > 0 ? `Served by ${f.servedBy.map((n) => `${n.node} (${n.ip})`).join(', ')}.` : 'No frontend node is ready to serve it yet.')
    return result
  }
}
