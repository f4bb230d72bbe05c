import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {confirmFlag, dryRunFlag} from '../../flags.js'
import {labDown, planLabDown, type LabDownPlan, type LabDownResult} from '../../lib/lab/down.js'
import {requireRoot} from '../../lib/lab/system.js'

export default class LabDown extends BaseCommand<typeof LabDown> {
  static summary = 'Remove the lab: containers, namespaces, mounts, cgroups, daemons and state files.'
  static description = 'Idempotent: also cleans up after a crashed `lab up`. The node root filesystem cache is kept unless --purge.'
  static examples = [
    {command: 'sudo <%= config.bin %> <%= command.id %> --yes', description: 'Tear the lab down without asking.'},
    {command: 'sudo <%= config.bin %> <%= command.id %> --yes --purge', description: 'Also delete the cached root filesystem and package cache.'},
    {command: '<%= config.bin %> <%= command.id %> --dry-run', description: 'List what would be stopped and removed; change nothing.'},
  ]

  static flags = {
    purge: Flags.boolean({summary: 'Also remove the cached node root filesystem and Squid cache.'}),
    ...confirmFlag,
    ...dryRunFlag,
  }

  async run(): Promise<LabDownResult | LabDownPlan> {
    if (this.dryRun) {
      const plan = await planLabDown({purge: this.flags.purge})
      this.say('Dry run: nothing was changed. lab down would:')
      this.say(`  - stop nodes: ${plan.nodes.join(' ') || 'none running'}; daemons: ${plan.daemons.length}`)
      this.say(`  - unmount ${plan.mounts.length} mount(s), remove cgroups ${plan.cgroups.join(' ') || 'none'}`)
      this.say(`  - delete namespaces ${plan.namespaces.join(' ') || 'none'}, then ${plan.dir}${plan.purgesCache ? ', and purge the root filesystem cache' : ''}`)
      return plan
    }
    requireRoot()
    await this.confirm('Remove the lab and every node in it?')
    const result = await labDown({purge: this.flags.purge})
    this.say(`Lab removed (${result.stoppedNodes.length} nodes stopped, ${result.namespaces.length} namespaces deleted${result.purgedCache ? ', cache purged' : ''}).`)
    return result
  }
}
