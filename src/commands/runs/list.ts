import {EtcdCommand} from '../../etcd-command.js'
import {RunJournal, type RunRecord} from '../../lib/tasks/journal.js'

export default class RunsList extends EtcdCommand<typeof RunsList> {
  static summary = 'List action runs: who ran what, when, and how it ended.'
  static description = 'The audit trail of every task-list run (node add, drain, ...), newest first.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Show the runs.'},
    {command: '<%= config.bin %> <%= command.id %> --json', description: 'The same as JSON.'},
  ]

  async run(): Promise<RunRecord[]> {
    const runs = await new RunJournal(this.store()).list()
    this.table(
      [
        {header: 'id', get: (r) => r.id},
        {header: 'action', get: (r) => r.action},
        {header: 'result', get: (r) => r.result},
        {header: 'hosts', get: (r) => r.hosts.length},
        {header: 'failed', get: (r) => r.failures.length},
        {header: 'user', get: (r) => `${r.user}@${r.origin}`},
        {header: 'started', get: (r) => r.startedAt},
      ],
      runs,
    )
    return runs
  }
}
