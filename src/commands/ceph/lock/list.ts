import {Args} from '@oclif/core'

import {CephCommand} from '../../../ceph-command.js'
import {imageLocks} from '../../../lib/ceph/images.js'
import {parseImageSpec} from '../../../lib/ceph/input.js'
import type {RbdLockHolder} from '../../../lib/ceph/rbd.js'

export default class CephLockList extends CephCommand<typeof CephLockList> {
  static summary = "The locks on an RBD image: lock id, locker, address, and for an election daemon's lock its node and fencing token."
  static description = 'From `rbd lock ls`. A leader of an elected service with rbdImage: locks the image as xcluster:NODE:TOKEN; other locks show "-" for node and token.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> rbd/postgres', description: 'Who holds the image.'},
    {command: '<%= config.bin %> <%= command.id %> rbd/postgres --json', description: 'The locks as JSON.'},
  ]
  static args = {image: Args.string({description: 'POOL/NAME (or POOL/NAMESPACE/NAME).', required: true})}

  async run(): Promise<RbdLockHolder[]> {
    const locks = await imageLocks(await this.ceph(), parseImageSpec(this.args.image).spec)
    this.table(
      [
        {header: 'lock id', get: (l) => l.lock.id},
        {header: 'locker', get: (l) => l.lock.locker},
        {header: 'address', get: (l) => l.lock.address},
        {header: 'node', get: (l) => l.node},
        {header: 'token', get: (l) => l.token},
      ],
      locks,
    )
    return locks
  }
}
