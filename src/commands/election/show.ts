import {Args} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import type {HistoryEntry} from '../../lib/election/records.js'
import {electionHistory, requireService, storedSpecIfAny} from '../../lib/election/state.js'
import {settings} from '../../lib/settings.js'

export default class ElectionShow extends EtcdCommand<typeof ElectionShow> {
  static summary = "Show a service's leadership history: who led, with which token, when and why."
  static description = `Oldest first; the newest ${settings.election.historyLimit} changes are kept. Tokens only grow: each is the create revision of that leader's key.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> postgres', description: 'The history as a table.'},
    {command: '<%= config.bin %> <%= command.id %> postgres --json', description: 'The history as a JSON array.'},
  ]

  static args = {
    service: Args.string({description: "The service's name, as in `xcluster election list`.", required: true}),
  }

  async run(): Promise<HistoryEntry[]> {
    const store = this.store()
    await requireService(store, await storedSpecIfAny(store), this.args.service)
    const history = await electionHistory(store, this.args.service)
    this.table(
      [
        {header: 'at', get: (h) => h.at},
        {header: 'event', get: (h) => h.event},
        {header: 'node', get: (h) => h.node},
        {header: 'token', get: (h) => h.token},
        {header: 'reason', get: (h) => h.reason},
      ],
      history,
    )
    return history
  }
}
