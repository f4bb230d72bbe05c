import {Args} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {phaseTimings, RunJournal, type RunShown} from '../../lib/tasks/journal.js'

export default class RunsShow extends EtcdCommand<typeof RunsShow> {
  static summary = 'Show one run: its command, result, failures and the time each phase took.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> 20261129-201500-3fa2c1', description: 'Show a run.'},
    {command: '<%= config.bin %> <%= command.id %> 20261129-201500-3fa2c1 --json', description: 'The record and every finished (phase, host) step with its time.'},
  ]
  static args = {id: Args.string({description: 'Run id (from runs list or a failed command).', required: true})}

  async run(): Promise<RunShown> {
    const shown = await new RunJournal(this.store()).show(this.args.id)
    const r = shown.record
    this.say(`${r.id}  ${r.action}  ${r.result}`)
    this.say(`  command   xcluster ${r.args.join(' ')}`)
    this.say(`  by        ${r.user}@${r.origin}`)
    this.say(`  started   ${r.startedAt}${r.finishedAt ? `   finished ${r.finishedAt}` : ''}${r.resumes ? `   resumed ${r.resumes}x` : ''}`)
    this.say(`  hosts     ${r.hosts.join(' ')}`)
    for (const f of r.failures) this.say(`  failed    ${f.host} in ${f.phase}: ${f.message}`)
    this.say(`  done      ${shown.checkpoints.length} (phase/host) steps`)
    const timings = phaseTimings(r, shown.steps)
    const width = Math.max(0, ...timings.map((t) => t.phase.length))
    for (const t of timings) this.say(`    ${t.phase.padEnd(width)}  ${(t.tookMs / 1000).toFixed(1).padStart(6)} s   ${t.hosts.join(' ')}`)
    return shown
  }
}
