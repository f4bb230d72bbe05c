import {Args, Flags} from '@oclif/core'

import {drainNode, type DrainResult} from '../../lib/actions/node-drain.js'
import {describeRun} from '../../lib/output/run-summary.js'
import {TaskCommand} from '../../task-command.js'

export default class NodeDrain extends TaskCommand<typeof NodeDrain> {
  static summary = 'Move work off a node and stop its stateful services.'
  static description = `Preflight first: a core node is refused when draining it would cost etcd its quorum, and a node with Ceph OSDs when, without them, a pool could not keep all its replicas (fewer failure domains, usually hosts, with an OSD up and in than the pool's size) unless --force. Then the node is marked draining, its Ceph OSDs are marked out and the drain waits until Ceph says they are safe to destroy and every PG is active+clean (a forced drain does not wait), its stateful services stop, and it is marked drained.

An interrupted drain leaves the node draining; running the command again continues it.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> c1', description: 'Drain a compute node.'},
    {command: '<%= config.bin %> <%= command.id %> s2 --dry-run', description: 'See the preflight and what would change.'},
    {
      command: '<%= config.bin %> <%= command.id %> s4 --force',
      description: 'Drain a storage node even though a pool cannot keep all its replicas without it (its OSDs go out; the data stays degraded).',
    },
  ]
  static args = {name: Args.string({description: 'Node name.', required: true})}
  static flags = {
    force: Flags.boolean({summary: "Drain even where a Ceph pool could not keep all its replicas without the node's OSDs; they go out without waiting for the data."}),
  }

  async run(): Promise<DrainResult> {
    const result = await drainNode(this.store(), this.args.name, {...this.taskOptions(), force: this.flags.force})
    const {leaderships, vips, osds} = result.holdings
    const quorum = result.preflight.quorum
    if (quorum) this.say(`Preflight: ${quorum.upAfterDrain} of ${quorum.members} core nodes stay up (etcd quorum needs ${quorum.needed}).`)
    this.say(`Held: leaderships ${leaderships.map((l) => `${l.service} (token ${l.token})`).join(', ') || 'none'}; VIPs ${vips.join(', ') || 'none'}; Ceph OSDs ${osds.join(', ') || 'none'}.`)
    for (const line of describeRun(result.run)) this.say(line)
    return result
  }
}
