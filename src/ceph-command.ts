import {type Command, Flags, type Interfaces} from '@oclif/core'

import {EtcdCommand} from './etcd-command.js'
import {openCeph, type CephSession} from './lib/ceph/admin-node.js'
import type {CephCli} from './lib/ceph/cli.js'
import {parseApplication, parseSize, PG_AUTOSCALE_MODES} from './lib/ceph/input.js'
import {env, settings} from './lib/settings.js'

export type CephFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof CephCommand)['baseFlags'] & T['flags']>

/**
 * A command that asks the cluster's Ceph: its ceph/rbd CLIs run on a node over SSH (the spec's
 * ceph.backend picks MicroCeph's or Debian's), opened on first use and closed when the command ends.
 */
export abstract class CephCommand<T extends typeof Command> extends EtcdCommand<T> {
  static baseFlags = {
    ...EtcdCommand.baseFlags,
    node: Flags.string({
      summary: 'The node whose ceph/rbd CLIs to run (default: the first ready core or storage node whose Ceph answers).',
      helpGroup: 'CEPH',
    }),
    'ssh-key': Flags.file({summary: "Private key for SSH (default: the spec's ssh.key).", env: env.sshKey, exists: true, helpGroup: 'CEPH'}),
    'lan-interface': Flags.string({
      summary: "This host's NIC on the cluster LAN; nodes without an IPv4 address are reached over IPv6 link-local on it.",
      env: env.lanInterface,
      default: settings.lanInterface,
      helpGroup: 'CEPH',
    }),
  }

  declare protected flags: CephFlags<T>
  private session?: CephSession

  /** The chosen node's Ceph CLIs (connected on first use). */
  protected async ceph(): Promise<CephCli> {
    this.session ??= await openCeph(this.store(), {node: this.flags.node, keyPath: this.flags['ssh-key'], lanInterface: this.flags['lan-interface']})
    return this.session.cli
  }

  protected async finally(err: Error | undefined): Promise<unknown> {
    await this.session?.close()
    return super.finally(err)
  }
}

/** `--size 10G`: checked as it is parsed (a bad size is a usage error before anything runs). */
export const imageSizeFlag = Flags.custom<number>({
  summary: 'Image size: 10G, 512M, 1T (binary units) or a number of bytes.',
  parse: async (input) => parseSize(input),
})

/** A pool's settings, for pool create and pool set. */
export const poolSettingFlags = {
  size: Flags.integer({summary: 'Replicas of each object (at most the number of OSDs up).', min: 1, max: 10}),
  'min-size': Flags.integer({summary: 'Replicas that must be up for the pool to take I/O (at most --size).', min: 1, max: 10}),
  'pg-autoscale': Flags.option({summary: 'Placement group autoscaling.', options: PG_AUTOSCALE_MODES})(),
  application: Flags.string({summary: 'Tag the pool for an application: rbd (block images), cephfs, rgw, or your own.', parse: async (input) => parseApplication(input)}),
}
