import {Args} from '@oclif/core'

import {EtcdCommand} from '../../etcd-command.js'
import {confirmFlag, dryRunFlag} from '../../flags.js'
import {releaseLease, requireLease} from '../../lib/dhcp/leases.js'
import type {Lease} from '../../lib/dhcp/lease.js'

export default class DhcpRelease extends EtcdCommand<typeof DhcpRelease> {
  static summary = 'Free a DHCP lease so its address returns to the pool.'
  static description =
    'Removes the lease on IP from etcd, guarded by the revision read (a lease renewed meanwhile is left alone). The client keeps the address until it renews: it gets it back if the address is still free and right for its type, a NAK otherwise. Asks first unless --yes.'
  static args = {ip: Args.string({description: 'The leased address.', required: true})}
  static flags = {...confirmFlag, ...dryRunFlag}
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> 10.0.0.51', description: 'Release a lease after confirming.'},
    {command: '<%= config.bin %> <%= command.id %> 10.0.0.51 --yes --json', description: 'Release without asking; print the removed lease.'},
    {command: '<%= config.bin %> <%= command.id %> 10.0.0.51 --dry-run', description: 'Show the lease that would be released; release nothing.'},
  ]

  async run(): Promise<{released: Lease; dryRun: boolean}> {
    const store = this.store()
    const seen = await requireLease(store, this.args.ip)
    const who = seen.lease.node ? `${seen.lease.node} (${seen.lease.mac})` : seen.lease.mac
    if (this.dryRun) {
      this.say(`Would release ${this.args.ip}, leased to ${who}.`)
      return {released: seen.lease, dryRun: true}
    }
    await this.confirm(`Release ${this.args.ip}, leased to ${who}?`)
    await releaseLease(store, this.args.ip, seen)
    this.say(`Released ${this.args.ip} (was ${who}).`)
    return {released: seen.lease, dryRun: false}
  }
}
