import {join, resolve} from 'node:path'

import {Flags} from '@oclif/core'

import {confirmFlag} from '../flags.js'
import {assertPlanAccepted, DEFAULT_UPDATE_SELECTOR, planUpdate, runUpdate, type UpdatePlan, type UpdateResult} from '../lib/actions/update.js'
import {describeRun} from '../lib/output/run-summary.js'
import {settings} from '../lib/settings.js'
import {TaskCommand} from '../task-command.js'

const describePlan = (plan: UpdatePlan): string[] =>
  plan.batches.flatMap((b) => [
    `Batch ${b.index}: ${b.nodes.join(', ')}${plan.resume?.finishedBatches.includes(b.index) ? ' (done in an earlier attempt)' : ''}`,
    ...b.checks.map((c) => `  ${c.check}: ${c.status} (${c.observed})`),
  ])

export default class Update extends TaskCommand<typeof Update> {
  static summary = 'Rolling update: drain, run a playbook, wait until healthy and undrain, a batch of nodes at a time.'
  static description = `The selected nodes go in batches of --serial (default ${settings.update.serial}): non-core nodes first, then the core nodes, those leading elections after the others and the etcd leader last, so leaderships move as few times as possible. For each batch: node drain (its leaderships handed to nodes outside the batch), the playbook with ansible-playbook --limit BATCH on xcluster's own inventory (host keys checked against the pins in etcd), a wait until each node answers SSH with its pinned key and is healthy (its etcd member too, for a core node), node undrain, and, on a core node, until its serve campaigns again.

Refused before anything changes when a batch would cost etcd its quorum, leave an elected service with no eligible candidate, or stop Ceph OSDs that Ceph says are not ok to stop; the checks are made again right before each batch drains. The first failure stops the run: the node it failed on stays drained with the reason on its record, the batches after it are not touched, and --resume ID continues from there.

--nodes takes names and type=T / state=S terms, comma-separated: a node is picked by its name, or by matching every key given (the values of one key are alternatives). Default: ${DEFAULT_UPDATE_SELECTOR}. The default playbook (templates/ansible/update.yml) upgrades the Debian packages through the cluster's package cache and reboots only when /var/run/reboot-required exists. Asks first unless --yes.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> --dry-run', description: 'Show the batches and every check; change nothing.'},
    {command: '<%= config.bin %> <%= command.id %> --yes', description: 'Upgrade every ready node, one at a time, with the shipped playbook.'},
    {command: '<%= config.bin %> <%= command.id %> --nodes type=compute --serial 5 --playbook site.yml', description: 'Run your own playbook on the compute nodes, five at a time.'},
    {command: '<%= config.bin %> <%= command.id %> --nodes s1,s2,s3', description: 'Only the core nodes, the etcd leader last.'},
    {command: '<%= config.bin %> <%= command.id %> --resume 20261129-201500-3fa2c1 --yes', description: 'Continue a failed update after the last batch it finished.'},
  ]
  static flags = {
    nodes: Flags.string({summary: `Which nodes: names, type=T, state=S, comma-separated (default ${DEFAULT_UPDATE_SELECTOR}).`}),
    serial: Flags.integer({summary: 'Nodes per batch.', default: settings.update.serial, min: 1, max: 500}),
    playbook: Flags.file({summary: 'The playbook to run on each batch (default: the shipped templates/ansible/update.yml).', exists: true}),
    ...confirmFlag,
  }

  async run(): Promise<UpdateResult> {
    const options = {
      ...this.taskOptions(),
      selector: this.flags.nodes,
      serial: this.flags.serial,
      // Absolute: ansible-playbook runs in the exported inventory's directory.
      playbook: this.flags.playbook && resolve(this.flags.playbook),
      executable: join(this.config.root, 'bin', 'run.js'),
    }
    const plan = await planUpdate(this.store(), options)
    for (const line of describePlan(plan)) this.say(line)
    assertPlanAccepted(plan)
    if (!this.dryRun) await this.confirm(`Update ${plan.order.length} node(s) in ${plan.batches.length} batch(es), draining each batch in turn?`)
    const result = await runUpdate(this.store(), plan, options)
    for (const line of describeRun(result.run)) this.say(line)
    return result
  }
}
