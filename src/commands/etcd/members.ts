import {EtcdCommand} from '../../etcd-command.js'
import {humanBytes, inspectEtcdCluster, type EtcdClusterState} from '../../lib/etcd/maintenance.js'

export default class EtcdMembers extends EtcdCommand<typeof EtcdMembers> {
  static summary = "List etcd's members: ID, name, peer and client URLs, leader, raft term, database size, version."
  static description =
    'Reads the member list from any member that answers, then asks each member for its status (a short deadline each: a dead member shows "-", it does not hold the list up). For a verdict with exit status, see `xcluster etcd health`.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'One row per member; the leader is marked.'},
    {command: '<%= config.bin %> <%= command.id %> --etcd https://10.0.0.2:2379 --json', description: 'Every member, found through one endpoint, as JSON.'},
  ]

  async run(): Promise<EtcdClusterState> {
    const state = await inspectEtcdCluster(this.etcdConnection(), {requireMemberList: true})
    this.table(
      [
        {header: 'id', get: (m) => m.id},
        {header: 'name', get: (m) => m.name || '(not started)'},
        {header: 'peer urls', get: (m) => m.peerUrls.join(',')},
        {header: 'client urls', get: (m) => m.clientUrls.join(',')},
        {header: 'leader', get: (m) => (m.isLeader ? 'yes' : m.learner ? 'learner' : 'no')},
        {header: 'raft term', get: (m) => m.raftTerm},
        {header: 'db size', get: (m) => humanBytes(m.dbSize)},
        {header: 'version', get: (m) => m.version},
      ],
      state.members,
    )
    return state
  }
}
