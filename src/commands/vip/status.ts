import {Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {namespaceVipProbe, vipStatus, type VipState} from '../../lib/election/vip.js'
import {sshVipProbe} from '../../lib/actions/vip-probe.js'
import {readStoredSpec} from '../../lib/spec/store.js'
import {taskFlags} from '../../task-flags.js'

export default class VipStatus extends EtcdCommand<typeof VipStatus> {
  static summary = 'Show which node holds each VIP (the admin VIP and every service VIP).'
  static description =
    "Looks for each VIP on the core nodes' interfaces over SSH (pinned host keys). A VIP on two nodes at once is split brain (see election check). --netns-prefix looks into network namespaces <prefix><node> on this machine instead (test harnesses)."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Who holds 10.0.0.254 and the service VIPs.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The same as JSON.'},
  ]

  static flags = {
    'netns-prefix': Flags.string({summary: 'Probe network namespaces <prefix><node> on this machine instead of SSH.'}),
    'ssh-key': taskFlags['ssh-key'],
    'lan-interface': taskFlags['lan-interface'],
  }

  async run(): Promise<VipState[]> {
    const spec = await readStoredSpec(this.store())
    const core = spec.nodes.filter((n) => n.type === 'core').map((n) => n.name)
    const prefix = this.flags['netns-prefix']
    const ssh = prefix ? undefined : await sshVipProbe(this.store(), spec, {keyPath: this.flags['ssh-key'], acceptNewHostKey: false, lanInterface: this.flags['lan-interface']})
    const states = await vipStatus(spec, prefix ? namespaceVipProbe(core, prefix) : ssh!.holders).finally(() => ssh?.close())
    if (ssh?.unreachable.length) this.warn(`could not reach ${ssh.unreachable.join(', ')} over SSH: a VIP there is not shown`)
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
