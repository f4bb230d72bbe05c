import {Args} from '@oclif/core'

import {CephCommand, imageSizeFlag} from '../../../ceph-command.js'
import {dryRunFlag} from '../../../flags.js'
import {createImage, IMAGE_FEATURES, type ImageChange} from '../../../lib/ceph/images.js'
import {humanSize, parseImageSpec} from '../../../lib/ceph/input.js'

export default class CephImageCreate extends CephCommand<typeof CephImageCreate> {
  static summary = 'Create an RBD image, with exclusive locking on.'
  static description = `Runs \`rbd create --size SIZE --image-feature ${IMAGE_FEATURES.join(',')} POOL/NAME\`: exclusive-lock lets one client write at a time. Refused with nothing changed: a pool that does not exist, a name already taken.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> rbd/postgres --size 20G', description: 'A 20 GiB image in the pool rbd.'},
    {command: '<%= config.bin %> <%= command.id %> rbd/qdrant --size 512M --dry-run', description: 'Print the rbd command it would run; change nothing.'},
  ]
  static args = {image: Args.string({description: 'POOL/NAME (or POOL/NAMESPACE/NAME).', required: true})}
  static flags = {size: imageSizeFlag({required: true}), ...dryRunFlag}

  async run(): Promise<ImageChange> {
    const image = parseImageSpec(this.args.image).spec
    const change = await createImage(await this.ceph(), image, this.flags.size, this.dryRun)
    this.say(change.dryRun ? `Dry run on ${change.node}: would run, and nothing was changed:` : `Created ${image} (${humanSize(this.flags.size)}) on ${change.node}:`)
    for (const line of change.commands) this.say(`  ${line}`)
    return change
  }
}
