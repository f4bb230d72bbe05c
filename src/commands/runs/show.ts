import {Args} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {RunJournal, type RunRecord} from '../../lib/tasks/journal.js'

export default class RunsShow extends EtcdCommand<typeof RunsShow> {
  static summary = 'Show one run: its command, result, failures and finished steps.'
  static examples = [{command: '<%= config.bin %> <%= command.id %> 20261129-201500-3fa2c1', description: 'Show a run.'}]
  static args = {id: Args.string({description: 'Run id (from runs list or a failed command).', required: true})}

  async run(): Promise<{record: RunRecord; checkpoints: string[]}> {
    const shown = await new RunJournal(this.store()).show(this.args.id)
    const r = shown.record
    this.say(`${r.id}  ${r.action}  ${r.result}`)
    this.say(`  command   xcluster ${r.args.join(' ')}`)
    this.say(`  by        ${r.user}@${r.origin}`)
    this.say(`  started   ${r.startedAt}${r.finishedAt ? `   finished ${r.finishedAt}` : ''}${r.resumes ? `   resumed ${r.resumes}x` : ''}`)
    this.say(`  hosts     ${r.hosts.join(' ')}`)
    for (const f of r.failures) this.say(`  failed    ${f.host} in ${f.phase}: ${f.message}`)
    this.say(`  done      ${shown.checkpoints.length} (phase/host) steps`)
    return shown
  }
}
