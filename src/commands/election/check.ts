import {Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {checkElections, type CheckResult} from '../../lib/election/split-brain.js'
import {storedSpecIfAny} from '../../lib/election/state.js'
import {sshVipProbe} from '../../lib/actions/vip-probe.js'
import {localRbdHolders} from '../../lib/ceph/rbd.js'
import {namespaceVipProbe} from '../../lib/election/vip.js'
import {taskFlags} from '../../task-flags.js'
import {ExitStatus} from '../../lib/errors.js'

export default class ElectionCheck extends EtcdCommand<typeof ElectionCheck> {
  static summary = "Detect split brain: compare every daemon's view with etcd's leader key, the VIP holder and the RBD lock holder."
  static description =
    'Reports each disagreement with the nodes involved and exits 3 if there is any. A disagreement must persist across two samples (0.5 s apart), so a handover in flight is not reported.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Exit 0 when every view agrees with etcd.'},
    {command: '<%= config.bin %> <%= command.id %> --netns-prefix xc- --json', description: 'Also check service VIPs in the lab namespaces; JSON result, exit 3 on split brain.'},
    {command: 'CEPH_CONF=/etc/ceph/ceph.conf <%= config.bin %> <%= command.id %>', description: 'On a core node: RBD image locks of services with rbdImage are read with the local rbd CLI.'},
  ]

  static flags = {
    'netns-prefix': Flags.string({summary: 'Probe VIPs in network namespaces <prefix><node> on this machine instead of over SSH.'}),
    'no-vips': Flags.boolean({summary: 'Do not look for VIP holders.'}),
    'no-rbd': Flags.boolean({summary: "Do not read RBD image locks (they are read with this host's rbd CLI, for services with rbdImage)."}),
    'ssh-key': taskFlags['ssh-key'],
    'lan-interface': taskFlags['lan-interface'],
  }

  async run(): Promise<CheckResult> {
    const store = this.store()
    const spec = await storedSpecIfAny(store)
    const prefix = this.flags['netns-prefix']
    const ssh =
      spec && !prefix && !this.flags['no-vips'] && (spec.services ?? []).some((s) => s.vip)
        ? await sshVipProbe(store, spec, {keyPath: this.flags['ssh-key'], acceptNewHostKey: false, lanInterface: this.flags['lan-interface']})
        : undefined
    const probe =
      prefix && spec
        ? namespaceVipProbe(
            spec.nodes.map((n) => n.name),
            prefix,
          )
        : ssh?.holders
    const rbdHolders = this.flags['no-rbd'] ? undefined : localRbdHolders()
    const result = await checkElections(store, spec, {vipHolders: probe, rbdHolders}).finally(() => ssh?.close())
    this.table(
      [
        {header: 'service', get: (s) => s.service},
        {header: 'leader', get: (s) => s.leader},
        {header: 'token', get: (s) => s.token},
        {header: 'believed by', get: (s) => s.believers.join(',') || null},
        {header: 'vip on', get: (s) => s.vipHolders?.join(',')},
        // The real holder: the client's address, and whose leadership it is when the fence record names it.
        {header: 'rbd lock', get: (s) => s.rbdHolders?.map((h) => `${h.locker}@${h.address}${h.node ? ` (${h.node}:${h.token})` : ''}`).join(',')},
      ],
      result.services,
    )
    const unread = result.services.filter((s) => s.rbdHolders === null && spec?.services?.find((x) => x.name === s.service)?.rbdImage)
    if (rbdHolders && unread.length > 0) this.say(this.color.yellow(`RBD locks of ${unread.map((s) => s.service).join(', ')} not checked: no rbd CLI on this host (run the check on a core node).`))
    for (const d of result.disagreements) this.say(this.color.red(`SPLIT BRAIN ${d.service} [${d.kind}] nodes ${d.nodes.join(',')}: ${d.message}`))
    if (!result.ok) process.exitCode = ExitStatus.precondition
    else this.say('No disagreement.')
    return result
  }
}
