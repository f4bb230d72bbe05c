import {EtcdCommand} from '../../etcd-command.js'
import {listElections, storedSpecIfAny, type ElectionState} from '../../lib/election/state.js'

export default class ElectionList extends EtcdCommand<typeof ElectionList> {
  static summary = 'List every elected service: leader, fencing token, lease TTL left, since, candidates.'
  static description = "Reads each service's election keys from etcd in one transaction per service. Services come from the spec and from etcd."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'One row per service.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'Also the published view of every daemon and any pending handover.'},
  ]

  async run(): Promise<ElectionState[]> {
    const store = this.store()
    const states = await listElections(store, await storedSpecIfAny(store))
    this.table(
      [
        {header: 'service', get: (s) => s.service},
        {header: 'leader', get: (s) => s.leader},
        {header: 'token', get: (s) => s.token},
        {header: 'ttl left', get: (s) => (s.ttlLeft === null ? null : `${s.ttlLeft}s`)},
        {header: 'since', get: (s) => s.since},
        {header: 'candidates', get: (s) => s.candidates.join(',') || null},
      ],
      states,
    )
    return states
  }
}
