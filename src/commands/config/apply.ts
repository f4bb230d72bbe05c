import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {settings} from '../../lib/settings.js'
import {applyPlan, planApply} from '../../lib/spec/apply.js'
import {loadSpecFile} from '../../lib/spec/parse.js'
import {applyResult, describePlan, type ApplyResult} from '../../lib/spec/plan-text.js'

export default class ConfigApply extends BaseCommand<typeof ConfigApply> {
  static summary = 'Store a cluster spec in etcd and register its nodes and MACs.'
  static description =
    'Validates the file, computes the difference with etcd, and writes it in one transaction: the spec, new and changed nodes (new ones start as `registered`; existing ones keep their state) and the MAC registry. Nodes in etcd but not in the spec are listed and left alone. If etcd changes meanwhile, nothing is written (APPLY_CONFLICT). Applying the same file twice changes nothing.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml --dry-run', description: 'Show the changes (+ add, ~ change, - not in spec) without writing.'},
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml', description: 'Apply the spec.'},
    {command: '<%= config.bin %> <%= command.id %> -f xcluster.yaml --json', description: 'Apply and print the changes as JSON.'},
  ]

  static flags = {
    file: Flags.string({char: 'f', summary: 'The spec file to apply.', default: settings.specFile}),
  }

  async run(): Promise<ApplyResult> {
    const {file, 'dry-run': dryRun} = this.flags
    const spec = loadSpecFile(file)
    const plan = await planApply(this.store(), spec)
    if (!plan.changed) this.say(`No changes: the cluster already matches ${file}.`)
    for (const line of describePlan(plan)) this.say(line)
    if (plan.changed && !dryRun) await applyPlan(this.store(), plan)
    if (plan.changed) this.say(dryRun ? 'Dry run: nothing was written.' : `Applied ${file} to cluster ${plan.cluster}.`)
    return applyResult(plan, file, {dryRun, applied: plan.changed && !dryRun})
  }
}
