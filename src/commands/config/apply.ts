import {Flags} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {confirmFlag, dryRunFlag} from '../../flags.js'
import {settings} from '../../lib/settings.js'
import {applyPlan, changesRegistered, planApply} from '../../lib/spec/apply.js'
import {loadSpecFile} from '../../lib/spec/parse.js'
import {applyResult, describePlan, type ApplyResult} from '../../lib/spec/plan-text.js'

export default class ConfigApply extends EtcdCommand<typeof ConfigApply> {
  static summary = 'Store a cluster spec in etcd and register its nodes and MACs.'
  static description =
    'Validates the file, computes the difference with etcd, and applies it all-or-nothing for every reader, whatever its size, on a stock etcd: the spec is staged in parts under a new generation, one transaction makes it current with its nodes (readers see them at once), then the node records and MAC bindings are written in batches. New nodes start as `registered`; existing ones keep their state. Nodes in etcd but not in the spec are listed and left alone. A plan that changes a registered node (its type, MAC or IP) or moves a MAC binding asks first unless --yes. If etcd changes meanwhile, or another apply is running, nothing is written (APPLY_CONFLICT). Applying the same file twice changes nothing.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml --dry-run', description: 'Show the changes (+ add, ~ change, - not in spec) without writing.'},
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml', description: 'Apply the spec (asks before changing registered nodes).'},
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml --yes --json', description: 'Apply without asking and print the changes as JSON.'},
  ]

  static flags = {
    file: Flags.string({char: 'f', summary: 'The spec file to apply.', default: settings.specFile}),
    ...confirmFlag,
    ...dryRunFlag,
  }

  async run(): Promise<ApplyResult> {
    const {file} = this.flags
    const spec = loadSpecFile(file)
    const plan = await planApply(this.store(), spec)
    if (!plan.changed) this.say(`No changes: the cluster already matches ${file}.`)
    for (const line of describePlan(plan)) this.say(line)
    if (!this.dryRun && (plan.changed || !plan.folded)) {
      if (changesRegistered(plan)) await this.confirm(`Apply ${file}: it changes registered nodes or MAC bindings (~ and - above)?`)
      const outcome = await applyPlan(this.store(), plan)
      if (outcome.finishedEarlierFold) this.say('Finished writing the node records of an earlier apply that stopped midway.')
    }
    if (plan.changed) this.say(this.dryRun ? 'Dry run: nothing was written.' : `Applied ${file} to cluster ${plan.cluster}.`)
    return applyResult(plan, file, {dryRun: this.dryRun, applied: plan.changed && !this.dryRun})
  }
}
