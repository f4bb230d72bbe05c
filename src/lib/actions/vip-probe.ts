import {ipv4Addresses} from '../election/vip.js'
import type {EtcdStore} from '../etcd/store.js'
import {HostPool} from '../ssh/index.js'
import type {ClusterSpec} from '../spec/types.js'
import {nodeHosts, type SshAccess} from './node-run.js'

export interface VipProbe {
  /** Which nodes carry `address` on an interface right now. */
  holders: (address: string) => Promise<string[]>
  close: () => Promise<void>
}

/**
 * Finds VIP holders as an operator would on a rack: `ip -o -4 addr` on every core node over SSH
 * with its pinned host key, read once per node and reused for every VIP. A node that cannot be
 * reached holds nothing (and is named in `unreachable`).
 */
export async function sshVipProbe(store: EtcdStore, spec: ClusterSpec, access: SshAccess): Promise<VipProbe & {unreachable: string[]}> {
  const core = spec.nodes.filter((n) => n.type === 'core').map((n) => n.name)
  const {hosts} = await nodeHosts(store, spec, core, access)
  const pool = new HostPool({retries: 0})
  const unreachable: string[] = []
  const addresses = new Map<string, Promise<string[]>>()
  const read = (name: string) => {
    let pending = addresses.get(name)
    if (!pending) {
      const host = hosts.find((h) => h.name === name)!
      pending = pool
        .get(host.target)
        .then(async (ssh) => ipv4Addresses((await ssh.run('ip -o -4 addr show')).stdout))
        .catch(() => {
          unreachable.push(name)
          return []
        })
      addresses.set(name, pending)
    }
    return pending
  }
  return {
    unreachable,
    async holders(address) {
      const on = await Promise.all(core.map(async (name) => ((await read(name)).includes(address) ? name : undefined)))
      return on.filter((n): n is string => n !== undefined)
    },
    close: () => pool.closeAll(),
  }
}
