import {Args, Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {renderKeepalivedConfig} from '../../lib/election/keepalived.js'
import {usageError} from '../../lib/errors.js'
import {settings} from '../../lib/settings.js'
import {readStoredSpec} from '../../lib/spec/store.js'

export interface VipConfigResult {
  node: string
  path: string
  text: string
}

export default class VipConfig extends EtcdCommand<typeof VipConfig> {
  static summary = 'Print the keepalived config of a core node for the admin VIP.'
  static description =
    "Rendered from templates/keepalived.conf and the stored spec: VRRP as BACKUP everywhere, priorities by the order of the core nodes (150, 140, 130), and a track script that gives the VIP up while the node's admin services are unhealthy."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> s1', description: 'The config for s1, to /etc/keepalived/keepalived.conf.'},
    {command: '<%= config.bin %> <%= command.id %> s2 --track-script "/usr/bin/curl -fs http://127.0.0.1:8008/leader"', description: 'With another health check.'},
  ]

  static args = {
    node: Args.string({description: 'A core node of the spec.', required: true}),
  }

  static flags = {
    interface: Flags.string({summary: 'The interface on the cluster subnet.', default: settings.keepalived.interface}),
    'track-script': Flags.string({summary: "A command that exits 0 while the node's admin services are healthy.", default: settings.keepalived.trackScript}),
  }

  async run(): Promise<VipConfigResult> {
    const spec = await readStoredSpec(this.store())
    const core = spec.nodes.filter((n) => n.type === 'core').map((n) => n.name)
    if (!core.includes(this.args.node)) {
      throw usageError(`"${this.args.node}" is not a core node (core nodes: ${core.join(', ')}).`, 'The admin VIP moves between core nodes only: name one of them.')
    }
    const text = renderKeepalivedConfig(spec, {node: this.args.node, interface: this.flags.interface, trackScript: this.flags['track-script']})
    if (!this.jsonEnabled()) process.stdout.write(text)
    return {node: this.args.node, path: '/etc/keepalived/keepalived.conf', text}
  }
}
