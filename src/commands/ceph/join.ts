import {Args} from '@oclif/core'

import {describeFormed, joinCeph, type CephFormResult} from '../../lib/ceph/formation.js'
import {describeRun} from '../../lib/output/run-summary.js'
import {TaskCommand} from '../../task-command.js'

export default class CephJoin extends TaskCommand<typeof CephJoin> {
  static summary = 'Add a core or storage node to the Ceph cluster: a monitor and a manager on it.'
  static description = `A task list over SSH on the node and the cluster's monitors, journaled like every node action, for the spec's ceph.backend.
ceph (Debian's packages): installs ceph-mon, ceph-mgr and ceph-osd, copies the client.admin and bootstrap-osd keyrings from a member node to node (never shown), writes /etc/ceph/ceph.conf, makes the monitor's store from the cluster's monmap and mon. key (ceph mon getmap, ceph auth get mon., ceph-mon --mkfs), starts ceph-mon@NODE and ceph-mgr@NODE, names every monitor in each member's ceph.conf, and waits until ceph -s shows every monitor in quorum and a manager active.
microceph: snap install microceph (when missing), microceph cluster add NODE on a member, and microceph cluster join with its token on the node (the token is never shown).
Then etcd records the new monitor. Joining a member again changes nothing.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> s2', description: 'Add s2 to the Ceph cluster.'},
    {command: '<%= config.bin %> <%= command.id %> s4 --dry-run', description: 'Show what adding the storage node s4 would run; change nothing.'},
  ]
  static args = {
    node: Args.string({description: 'The core or storage node to add.', required: true}),
  }

  async run(): Promise<CephFormResult> {
    const result = await joinCeph(this.store(), this.args.node, this.taskOptions())
    for (const line of describeRun(result.run)) this.say(line)
    for (const line of describeFormed(result)) this.say(line)
    return result
  }
}
