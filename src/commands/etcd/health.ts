import {EtcdCommand} from '../../etcd-command.js'
import {ExitStatus} from '../../lib/errors.js'
import {inspectEtcdCluster, type EtcdClusterState} from '../../lib/etcd/maintenance.js'

export default class EtcdHealth extends EtcdCommand<typeof EtcdHealth> {
  static summary = "Check every etcd member's health and the cluster's quorum; exit 3 when anything is unhealthy."
  static description =
    'A member is healthy when, within a short deadline, it answers its status, knows a raft leader, raises no alarm and serves a read that needs quorum. Quorum: more than half of the voting members healthy. Exit 0 when every member is healthy, 3 otherwise (the unhealthy members are named).'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'One row per member, then the verdict; exit 0 or 3.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The same as JSON (for scripts and monitoring).'},
  ]

  async run(): Promise<EtcdClusterState> {
    const state = await inspectEtcdCluster(this.etcdConnection())
    this.table(
      [
        {header: 'name', get: (m) => m.name || m.id},
        {header: 'endpoint', get: (m) => m.endpoint ?? m.clientUrls[0]},
        {header: 'healthy', get: (m) => (m.healthy ? 'yes' : 'no')},
        {header: 'leader', get: (m) => (m.isLeader ? 'yes' : 'no')},
        {header: 'took', get: (m) => (m.tookMs === null ? null : `${m.tookMs} ms`)},
        {header: 'problem', get: (m) => m.problem},
      ],
      state.members,
    )
    const unhealthy = state.members.filter((m) => !m.healthy)
    const quorum = `quorum ${state.quorum ? 'yes' : 'NO'} (${state.healthyVoters}/${state.voters} voting members healthy)`
    if (state.memberListError) this.say(this.color.red(`No endpoint gave the member list (${state.memberListError}).`))
    if (state.healthy) this.say(this.color.green(`etcd is healthy: ${quorum}, leader ${state.leader}.`))
    else {
      this.say(this.color.red(`etcd is UNHEALTHY: ${quorum}; unhealthy: ${unhealthy.map((m) => `${m.name || m.id} (${m.problem})`).join(', ')}.`))
      process.exitCode = ExitStatus.precondition
    }
    return state
  }
}
