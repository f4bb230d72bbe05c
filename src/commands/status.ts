import {Flags} from '@oclif/core'

import {EtcdCommand} from '../etcd-command.js'
import {toXclusterError} from '../base-command.js'
import {collectStatus, everyUntilInterrupted, renderStatus, type ClusterStatus} from '../lib/health/index.js'
import {settings} from '../lib/settings.js'
import {taskFlags} from '../task-flags.js'

export default class Status extends EtcdCommand<typeof Status> {
  static summary = 'One screen of the cluster, like `ceph -s`: etcd, nodes, leaders, VIPs, DHCP pools, Ceph, failed runs, and the worst problems first.'
  static description = `Reads etcd (a few range reads at one revision, however many nodes) and asks each etcd member for its status. --ssh also reaches every provisioned node with its pinned host key and, when the spec has a ceph section, asks Ceph's own status (ceph -s) of the first ready core or storage node whose Ceph answers. The problems are the checks of \`xcluster health\` that are not ok; that command lists every check and exits 3 on a failure, this one exits 0 whatever it shows.
--watch redraws the screen every ${settings.health.watchIntervalMs / 1000} s until Ctrl-C.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'The cluster at a glance.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The same as JSON: {cluster, revision, health, etcd, nodes, services, vips, dhcp, failedRuns, splitBrain, problems}.'},
    {command: '<%= config.bin %> <%= command.id %> --watch', description: 'Keep it on screen, refreshed in place, until Ctrl-C.'},
    {command: '<%= config.bin %> <%= command.id %> --ssh --ssh-key ~/.ssh/id_ed25519', description: "Also reach the nodes over SSH and show Ceph's health, OSDs, PGs and usage."},
  ]

  static flags = {
    watch: Flags.boolean({char: 'w', summary: `Redraw every ${settings.health.watchIntervalMs / 1000} s until Ctrl-C.`, exclusive: ['json']}),
    ssh: Flags.boolean({summary: 'Also reach every provisioned node over SSH (pinned host keys) and ask Ceph for its status.'}),
    'ssh-key': taskFlags['ssh-key'],
    'lan-interface': taskFlags['lan-interface'],
  }

  async run(): Promise<ClusterStatus | undefined> {
    const options = this.flags.ssh ? {ssh: {keyPath: this.flags['ssh-key'], lanInterface: this.flags['lan-interface']}} : {}
    if (!this.flags.watch) {
      const status = await collectStatus(this.store(), options)
      this.say(renderStatus(status, this.color))
      return status
    }
    // On a terminal the screen is redrawn in place; piped, each refresh follows the last.
    const redraw = (text: string) => this.log(process.stdout.isTTY ? `\u001B[H\u001B[2J${text}` : `${text}\n`)
    await everyUntilInterrupted(
      settings.health.watchIntervalMs,
      async () => redraw(renderStatus(await collectStatus(this.store(), options), this.color)),
      (err) => redraw(this.color.red(`status unavailable (${new Date().toISOString()}): ${toXclusterError(err).message}`)),
    )
    return undefined
  }
}
