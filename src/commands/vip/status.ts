import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {namespaceVipProbe, vipStatus, type VipState} from '../../lib/election/vip.js'
import {readStoredSpec} from '../../lib/spec/store.js'

export default class VipStatus extends BaseCommand<typeof VipStatus> {
  static summary = 'Show which node holds each VIP (the admin VIP and every service VIP).'
  static description = 'Looks for each VIP on the core nodes. In the lab, nodes are network namespaces named <prefix><node>; a VIP on two nodes at once is split brain (see election check).'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Who holds 10.0.0.254 and the service VIPs.'},
    {command: '<%= config.bin %> <%= command.id %> --netns-prefix xc- --json', description: 'As JSON, probing the lab namespaces xc-<node>.'},
  ]

  static flags = {
    'netns-prefix': Flags.string({summary: 'Network namespace name prefix of the nodes (the lab uses xc-).', default: 'xc-'}),
  }

  async run(): Promise<VipState[]> {
    const spec = await readStoredSpec(this.store())
    const core = spec.nodes.filter((n) => n.type === 'core').map((n) => n.name)
    const states = await vipStatus(spec, namespaceVipProbe(core, this.flags['netns-prefix']))
    this.table(
      [
        {header: 'vip', get: (v) => v.address},
        {header: 'for', get: (v) => v.purpose},
        {header: 'holder', get: (v) => v.holders.join(',') || 'nobody'},
        {header: 'state', get: (v) => (v.holders.length === 1 ? 'ok' : v.holders.length === 0 ? 'unheld' : 'SPLIT BRAIN')},
      ],
      states,
    )
    return states
  }
}
