import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {labDown, type LabDownResult} from '../../lib/lab/down.js'
import {requireRoot} from '../../lib/lab/system.js'

export default class LabDown extends BaseCommand<typeof LabDown> {
  static summary = 'Remove the lab: containers, namespaces, mounts, cgroups, daemons and state files.'
  static description = 'Idempotent: also cleans up after a crashed `lab up`. The node root filesystem cache is kept unless --purge.'
  static examples = [
    {command: 'sudo <%= config.bin %> <%= command.id %> --yes', description: 'Tear the lab down without asking.'},
    {command: 'sudo <%= config.bin %> <%= command.id %> --yes --purge', description: 'Also delete the cached root filesystem and package cache.'},
  ]

  static flags = {
    purge: Flags.boolean({summary: 'Also remove the cached node root filesystem and Squid cache.'}),
  }

  async run(): Promise<LabDownResult> {
    requireRoot()
    await this.confirm('Remove the lab and every node in it?')
    const result = await labDown({purge: this.flags.purge})
    this.say(`Lab removed (${result.stoppedNodes.length} nodes stopped, ${result.namespaces.length} namespaces deleted${result.purgedCache ? ', cache purged' : ''}).`)
    return result
  }
}
