import {Args} from '@oclif/core'

import {CephCommand} from '../../../ceph-command.js'
import {imageLocks} from '../../../lib/ceph/images.js'
import {parseImageSpec} from '../../../lib/ceph/input.js'
import type {RbdLockHolder} from '../../../lib/ceph/rbd.js'
import {attributeImageLocks} from '../../../lib/election/split-brain.js'
import {readStoredSpecIfAny} from '../../../lib/spec/store.js'

export default class CephLockList extends CephCommand<typeof CephLockList> {
  static summary = 'The locks on an RBD image: lock id, the client holding it and its address, and for the leader of its service its node and fencing token.'
  static description =
    'From `rbd lock ls`. The lock of a service with rbdImage: is its own client\'s (librbd\'s exclusive lock, id "auto ..."); it shows the leader\'s node and token when the leader\'s fence record (election/SERVICE/fence) names that client. Other locks show "-" for node and token.'
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> rbd/postgres', description: 'Who holds the image.'},
    {command: '<%= config.bin %> <%= command.id %> rbd/postgres --json', description: 'The locks as JSON.'},
  ]
  static args = {image: Args.string({description: 'POOL/NAME (or POOL/NAMESPACE/NAME).', required: true})}

  async run(): Promise<RbdLockHolder[]> {
    const image = parseImageSpec(this.args.image).spec
    const store = this.store()
    const locks = await attributeImageLocks(store, await readStoredSpecIfAny(store), image, await imageLocks(await this.ceph(), image))
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
