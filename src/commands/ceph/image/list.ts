import {Args} from '@oclif/core'

import {CephCommand} from '../../../ceph-command.js'
import {listImages, type ImageSummary} from '../../../lib/ceph/images.js'
import {humanSize, parsePoolPath} from '../../../lib/ceph/input.js'

export default class CephImageList extends CephCommand<typeof CephImageList> {
  static summary = "List RBD images: a pool's, or those of every pool tagged rbd."
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'The images of every rbd pool.'},
    {command: '<%= config.bin %> <%= command.id %> rbd --json', description: 'The images of the pool rbd, as JSON.'},
  ]
  static args = {pool: Args.string({description: 'POOL or POOL/NAMESPACE (default: every pool with the rbd application).'})}

  async run(): Promise<ImageSummary[]> {
    if (this.args.pool !== undefined) parsePoolPath(this.args.pool)
    const images = await listImages(await this.ceph(), this.args.pool)
    this.table(
      [
        {header: 'image', get: (i) => i.image},
        {header: 'size', get: (i) => humanSize(i.sizeBytes)},
        {header: 'format', get: (i) => i.format},
        {header: 'lock', get: (i) => i.lockType},
      ],
      images,
    )
    return images
  }
}
