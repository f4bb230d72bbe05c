import {Args} from '@oclif/core'

import {CephCommand} from '../../../ceph-command.js'
import {confirmFlag, dryRunFlag} from '../../../flags.js'
import {planImageRemove, removeImage, type ImageChange} from '../../../lib/ceph/images.js'
import {humanSize, parseImageSpec} from '../../../lib/ceph/input.js'

export default class CephImageRm extends CephCommand<typeof CephImageRm> {
  static summary = 'Remove an RBD image and its data (asks unless --yes).'
  static description = 'Runs `rbd rm`. Refused with nothing changed while a client has the image open (a watcher) or holds a lock on it: the message says who.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> rbd/scratch', description: 'Remove the image (asks first).'},
    {command: '<%= config.bin %> <%= command.id %> rbd/scratch --yes', description: 'Remove it without asking.'},
    {command: '<%= config.bin %> <%= command.id %> rbd/scratch --dry-run', description: 'Check it is unused and print the rbd command; change nothing.'},
  ]
  static args = {image: Args.string({description: 'POOL/NAME (or POOL/NAMESPACE/NAME).', required: true})}
  static flags = {...confirmFlag, ...dryRunFlag}

  async run(): Promise<ImageChange> {
    const image = parseImageSpec(this.args.image).spec
    const cli = await this.ceph()
    const plan = await planImageRemove(cli, image)
    if (!this.dryRun) await this.confirm(`Remove ${image} (${humanSize(plan.sizeBytes)}) and all its data?`)
    const change = await removeImage(cli, plan, this.dryRun)
    this.say(change.dryRun ? `Dry run on ${change.node}: would run, and nothing was changed:` : `Removed ${image} on ${change.node}:`)
    for (const line of change.commands) this.say(`  ${line}`)
    return change
  }
}
