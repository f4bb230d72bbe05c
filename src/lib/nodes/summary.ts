import {listLeases} from '../dhcp/leases.js'
import type {EtcdStore} from '../etcd/store.js'
import {summarize, type NodeSummary} from './record.js'
import {NodeRegistry} from './registry.js'

/** Every node's summary, with the DHCP address of those without a fixed IP (one read of the leases). */
export async function nodeSummaries(store: EtcdStore): Promise<NodeSummary[]> {
  const [nodes, leases] = await Promise.all([new NodeRegistry(store).list(), listLeases(store)])
  const leased = new Map(leases.filter((l) => l.state === 'bound' && !l.expired).map((l) => [l.mac, l.ip]))
  return nodes.map((n) => {
    const summary = summarize(n)
    const ip = n.ip ? undefined : leased.get(n.mac)
    return ip ? {...summary, leasedIp: ip} : summary
  })
}
