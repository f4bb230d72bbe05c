import {Flags} from '@oclif/core'

import {EtcdCommand} from '../etcd-command.js'
import {ExitStatus} from '../lib/errors.js'
import {paintStatus, runHealthChecks, splitBrainProbes, verdict, type HealthReport} from '../lib/health/index.js'
import {settings} from '../lib/settings.js'
import {taskFlags} from '../task-flags.js'

export default class Health extends EtcdCommand<typeof Health> {
  static summary = 'Check the cluster: every check ok, warn or fail, with what it saw and the next step. Exit 3 on any fail.'
  static description = `Checks etcd's quorum and each member (etcd's status, asked of every member), each node's state (ready is ok), each elected service's leader and the split-brain check of \`election check\`, and how full each DHCP range is (warn at ${settings.health.poolWarnPercent} %, fail at ${settings.health.poolFailPercent} %). --ssh also logs in to every provisioned node with its pinned host key (never accepting a new one) and compares its clock with this host's and chrony's view; it needs your SSH key. With --ssh and a ceph section in the spec, the ceph check is Ceph's own verdict (ceph -s on the first ready core or storage node whose Ceph answers): HEALTH_OK is ok, HEALTH_WARN warn, HEALTH_ERR or no Ceph answering fail.
Exits 0 when every check is ok or warn, 3 when any fails (the report is still printed, and returned under --json).`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Every check as a table, worst first, and the verdict.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The report as JSON: {status, counts, checks: [{name, status, observed, next?}]}.'},
    {
      command: '<%= config.bin %> <%= command.id %> --ssh --ssh-key ~/.ssh/id_ed25519',
      description: "Also reach every node over SSH (pinned host keys), compare clocks, look for service VIPs, and ask Ceph's health.",
    },
    {command: '<%= config.bin %> <%= command.id %> >/dev/null || echo unhealthy', description: 'Use the exit status in a script.'},
  ]

  static flags = {
    ssh: Flags.boolean({summary: 'Also log in to every provisioned node over SSH with its pinned host key and check its clock.'}),
    'ssh-key': taskFlags['ssh-key'],
    'lan-interface': taskFlags['lan-interface'],
    'netns-prefix': Flags.string({summary: 'Look for service VIPs in network namespaces <prefix><node> on this machine (test harnesses).'}),
  }

  async run(): Promise<HealthReport> {
    const ssh = this.flags.ssh ? {keyPath: this.flags['ssh-key'], lanInterface: this.flags['lan-interface']} : undefined
    const {probes, close} = await splitBrainProbes(this.store(), {ssh, netnsPrefix: this.flags['netns-prefix']})
    const result = await runHealthChecks(this.store(), {ssh, probes}).finally(close)
    this.table(
      [
        {header: 'status', get: (c) => paintStatus(this.color, c.status)},
        {header: 'check', get: (c) => c.name},
        {header: 'observed', get: (c) => c.observed},
        {header: 'next', get: (c) => c.next},
      ],
      result.checks,
    )
    this.say(`${paintStatus(this.color, result.status, verdict(result.status))}: ${result.counts.fail} fail, ${result.counts.warn} warn, ${result.counts.ok} ok`)
    if (result.status === 'fail') process.exitCode = ExitStatus.precondition
    return result
  }
}
