import {Args} from '@oclif/core'

import {CephCommand} from '../../../ceph-command.js'
import {imageInfo, type ImageInfo} from '../../../lib/ceph/images.js'
import {humanSize, parseImageSpec} from '../../../lib/ceph/input.js'

export default class CephImageInfo extends CephCommand<typeof CephImageInfo> {
  static summary = "An RBD image's size, features, the clients that have it open, and its lock holders."
  static description = 'From `rbd info`, `rbd status` (watchers) and `rbd lock ls`. A lock taken by an election daemon names its node and fencing token.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> rbd/postgres', description: 'Size, features, watchers, locks.'},
    {command: '<%= config.bin %> <%= command.id %> rbd/postgres --json', description: 'The same as JSON.'},
  ]
  static args = {image: Args.string({description: 'POOL/NAME (or POOL/NAMESPACE/NAME).', required: true})}

  async run(): Promise<ImageInfo> {
    const info = await imageInfo(await this.ceph(), parseImageSpec(this.args.image).spec)
    this.say(`image: ${info.image} (id ${info.id}, format ${info.format})`)
    this.say(`size: ${humanSize(info.sizeBytes)} in ${info.objects} objects of ${humanSize(info.objectSizeBytes)}`)
    this.say(`features: ${info.features.join(', ') || 'none'}`)
    this.say(`watchers: ${info.watchers.map((w) => `${w.client} at ${w.address}`).join(', ') || 'none'}`)
    this.say(`locks: ${info.locks.map((l) => `${l.lock.id} by ${l.lock.locker} at ${l.lock.address}${l.node ? ` (${l.node}, fencing token ${l.token})` : ''}`).join(', ') || 'none'}`)
    return info
  }
}
