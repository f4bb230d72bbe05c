import {hostname} from 'node:os'

import {Flags} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {ElectionDaemon, resolveServices} from '../lib/election/daemon.js'
import type {CampaignStatus} from '../lib/election/campaign.js'
import {usageError} from '../lib/errors.js'
import {readStoredSpec} from '../lib/spec/store.js'

export interface ServeResult {
  node: string
  services: string[]
  stoppedBy: string
  final: CampaignStatus[]
}

export default class Serve extends BaseCommand<typeof Serve> {
  static summary = 'Run this node\'s xcluster daemons: leader election for singleton services.'
  static description = `Campaigns in etcd for each --elect service declared in the spec. The winner runs the service's start command (or systemctl start UNIT); a leader that cannot renew its lease stops the service before the lease could expire; SIGTERM or SIGINT stops the service and resigns at once so a peer takes over. Events are logged to stderr as JSON lines.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> --elect postgres --elect dhcp', description: 'Campaign for two services as this host.'},
    {command: '<%= config.bin %> <%= command.id %> --elect postgres --node s2', description: 'Campaign under an explicit node name.'},
  ]

  static flags = {
    elect: Flags.string({summary: 'A service (from the spec\'s services:) to campaign for; repeatable.', multiple: true}),
    node: Flags.string({summary: 'This node\'s name.', default: hostname().split('.')[0]}),
  }

  async run(): Promise<ServeResult> {
    const names = this.flags.elect ?? []
    if (names.length === 0) throw usageError('Nothing to serve: no --elect service given.', 'Name at least one service, e.g. --elect postgres.')
    const store = this.store()
    const services = resolveServices(await readStoredSpec(store), names, this.flags.node)
    const daemon = new ElectionDaemon(store, this.flags.node, services, (service) => (event, details) =>
      process.stderr.write(JSON.stringify({at: new Date().toISOString(), node: this.flags.node, service, event, ...details}) + '\n'),
    )
    const stoppedBy = await new Promise<string>((resolve) => {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve(signal))
      daemon.start()
    })
    await daemon.stop(stoppedBy)
    return {node: this.flags.node, services: services.map((s) => s.name), stoppedBy, final: daemon.status()}
  }
}
