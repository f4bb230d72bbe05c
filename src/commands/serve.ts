import {Flags} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {usageError} from '../lib/errors.js'
import {DhcpServer, type DhcpStats} from '../lib/dhcp/server.js'

export default class Serve extends BaseCommand<typeof Serve> {
  static summary = 'Run the cluster daemons (the DHCP/PXE server) until stopped.'
  static description =
    'With --dhcp, answers DHCP on --interface from 0.0.0.0:67, with MAC-typed leases stored in etcd. Stops cleanly on SIGTERM or SIGINT and prints its counters.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> --dhcp --interface eth0', description: 'Serve DHCP and PXE on eth0.'},
    {command: '<%= config.bin %> <%= command.id %> --dhcp --interface eth0 --unknown ignore', description: 'Serve only MACs registered in etcd.'},
  ]
  static flags = {
    dhcp: Flags.boolean({summary: 'Run the DHCP/PXE server.'}),
    interface: Flags.string({char: 'i', summary: 'Interface to serve DHCP on (its address is the server identifier).', dependsOn: ['dhcp']}),
    address: Flags.string({summary: 'The server\'s own address on --interface when it has several (default: the first in the cluster subnet).', dependsOn: ['dhcp']}),
    unknown: Flags.string({summary: 'What an unknown MAC gets: a short lease from the discovery range, or nothing.', options: ['discover', 'ignore'], default: 'discover'}),
  }

  async run(): Promise<{stopped: string; dhcp: DhcpStats}> {
    if (!this.flags.dhcp) throw usageError('Nothing to serve.', 'Choose a daemon, e.g. xcluster serve --dhcp --interface eth0.')
    if (!this.flags.interface) throw usageError('--dhcp needs --interface.', 'Name the interface on the cluster network, e.g. --interface eth0.')
    const server = new DhcpServer({
      store: this.store(),
      interface: this.flags.interface,
      ...(this.flags.address ? {address: this.flags.address} : {}),
      unknown: this.flags.unknown as 'discover' | 'ignore',
      log: (line) => process.stderr.write(`${new Date().toISOString()} dhcp: ${line}\n`),
    })
    await server.start()
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'))
      process.once('SIGINT', () => resolve('SIGINT'))
    })
    await server.stop()
    process.stderr.write(`stopped on ${signal}: ${JSON.stringify(server.stats)}\n`)
    return {stopped: signal, dhcp: server.stats}
  }
}
