import {Args, Flags} from '@oclif/core'

import {CephCommand, imageSizeFlag} from '../../../ceph-command.js'
import {confirmFlag, dryRunFlag} from '../../../flags.js'
import {planImageResize, resizeImage, type ImageChange} from '../../../lib/ceph/images.js'
import {humanSize, parseImageSpec} from '../../../lib/ceph/input.js'

export default class CephImageResize extends CephCommand<typeof CephImageResize> {
  static summary = 'Grow an RBD image, or shrink it (destructive: --allow-shrink, and asks unless --yes).'
  static description = 'Runs `rbd resize`. Growing is safe (grow the filesystem on it afterwards). Shrinking destroys the data beyond the new end: it needs --allow-shrink and asks first unless --yes.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> rbd/postgres --size 40G', description: 'Grow the image to 40 GiB.'},
    {command: '<%= config.bin %> <%= command.id %> rbd/scratch --size 1G --allow-shrink --yes', description: 'Shrink it without asking.'},
    {command: '<%= config.bin %> <%= command.id %> rbd/postgres --size 40G --dry-run', description: 'Print the rbd command it would run; change nothing.'},
  ]
  static args = {image: Args.string({description: 'POOL/NAME (or POOL/NAMESPACE/NAME).', required: true})}
  static flags = {
    size: imageSizeFlag({required: true}),
    'allow-shrink': Flags.boolean({summary: 'Allow a size smaller than the current one (destroys the data beyond it).'}),
    ...confirmFlag,
    ...dryRunFlag,
  }

  async run(): Promise<ImageChange> {
    const image = parseImageSpec(this.args.image).spec
    const cli = await this.ceph()
    const plan = await planImageResize(cli, image, this.flags.size, this.flags['allow-shrink'])
    const sizes = `${humanSize(plan.fromBytes)} to ${humanSize(plan.toBytes)}`
    if (plan.shrink && !this.dryRun) await this.confirm(`Shrink ${image} from ${sizes}? The data beyond ${humanSize(plan.toBytes)} is lost.`)
    const change = await resizeImage(cli, plan, this.dryRun)
    if (change.commands.length === 0) this.say(`${image} is ${humanSize(plan.toBytes)} already; nothing to change.`)
    else this.say(change.dryRun ? `Dry run on ${change.node}: would resize ${image} from ${sizes}, and nothing was changed:` : `Resized ${image} from ${sizes} on ${change.node}:`)
    for (const line of change.commands) this.say(`  ${line}`)
    return change
  }
}
