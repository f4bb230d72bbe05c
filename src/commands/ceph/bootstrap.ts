import {Flags} from '@oclif/core'

import {bootstrapCeph, describeFormed, type CephFormResult} from '../../lib/ceph/formation.js'
import {describeRun} from '../../lib/output/run-summary.js'
import {TaskCommand} from '../../task-command.js'

export default class CephBootstrap extends TaskCommand<typeof CephBootstrap> {
  static summary = "Make the cluster's Ceph: its first monitor and manager, on a core or storage node."
  static description = `A task list on the node over SSH, journaled like every node action, for the spec's ceph.backend.
ceph (Debian's packages): installs ceph-mon, ceph-mgr and ceph-osd through the cluster's package cache, makes the fsid and the keyrings (mon., client.admin, bootstrap-osd) on the node with ceph-authtool, writes /etc/ceph/ceph.conf (fsid, the monitor's v2/v1 addresses, the spec's subnet as public_network), makes the monitor's store with monmaptool and ceph-mon --mkfs, starts ceph-mon@NODE and ceph-mgr@NODE, and waits until ceph -s shows the monitor in quorum and the manager active.
microceph: snap install microceph (when missing), then microceph cluster bootstrap.
Then etcd records the cluster (backend, fsid, monitor nodes); no key is stored there. A finished bootstrap run again changes nothing; Ceph already bootstrapped on another node is refused (add nodes with ceph join). Until ceph.conf exists, each run (a dry run too) draws a new fsid.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %>', description: 'Bootstrap Ceph on the first ready core node.'},
    {command: '<%= config.bin %> <%= command.id %> --node s2 --dry-run', description: 'Show the lines a bootstrap on s2 would run; change nothing.'},
  ]
  static flags = {
    node: Flags.string({summary: 'The core or storage node to bootstrap on (default: the first ready core node, then storage node).'}),
  }

  async run(): Promise<CephFormResult> {
    const result = await bootstrapCeph(this.store(), {...this.taskOptions(), ...(this.flags.node ? {node: this.flags.node} : {})})
    for (const line of describeRun(result.run)) this.say(line)
    for (const line of describeFormed(result)) this.say(line)
    return result
  }
}
