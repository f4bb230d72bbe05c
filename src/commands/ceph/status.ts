import {CephCommand} from '../../ceph-command.js'
import {humanSize} from '../../lib/ceph/input.js'
import {cephStatus, type CephStatus} from '../../lib/ceph/status.js'

export default class CephStatusCommand extends CephCommand<typeof CephStatusCommand> {
  static summary = "Ceph's health, OSDs up and in, placement groups by state, and space used."
  static description =
    "Reads `ceph -s --format json` on a node over SSH (the spec's ceph.backend: microceph.ceph or ceph). The health is HEALTH_OK, HEALTH_WARN or HEALTH_ERR, with a line for each check Ceph raises."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Ask the first ready core or storage node whose Ceph answers.'},
    {command: '<%= config.bin %> <%= command.id %> --node s4 --json', description: "Ask s4's Ceph; the result as JSON."},
  ]

  async run(): Promise<CephStatus> {
    const status = await cephStatus(await this.ceph())
    this.say(`health: ${status.health.status} (asked ${status.node})`)
    for (const check of status.health.checks) this.say(`  ${check.severity} ${check.name}: ${check.summary}${check.muted ? ' (muted)' : ''}`)
    this.say(`mons: ${status.mons.inQuorum.join(', ') || 'none'} in quorum, of ${status.mons.total}; mgr: ${status.mgr.available ? 'active' : 'none active'}, ${status.mgr.standbys} standby`)
    this.say(`osds: ${status.osds.up} up, ${status.osds.in} in, of ${status.osds.total}`)
    this.say(`pgs: ${status.pgs.total} (${status.pgs.byState.map((s) => `${s.count} ${s.state}`).join(', ') || 'none'}) in ${status.pools} pools, ${status.objects} objects`)
    this.say(`usage: ${humanSize(status.usage.usedBytes)} used, ${humanSize(status.usage.availBytes)} available, of ${humanSize(status.usage.totalBytes)}`)
    return status
  }
}
