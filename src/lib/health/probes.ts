import {sshVipProbe} from '../actions/vip-probe.js'
import {localRbdHolders} from '../ceph/rbd.js'
import type {RbdHolders, VipHolders} from '../election/split-brain.js'
import {storedSpecIfAny} from '../election/state.js'
import {namespaceVipProbe} from '../election/vip.js'
import type {EtcdStore} from '../etcd/store.js'

export interface SplitBrainProbes {
  probes: {vipHolders?: VipHolders; rbdHolders?: RbdHolders}
  close(): Promise<void>
}

/**
 * Where the split-brain check of `health` looks beyond etcd, as `election check` does: service
 * VIPs on the core nodes over SSH (pinned keys only, with `ssh`) or in this machine's network
 * namespaces (`netnsPrefix`, test harnesses), and RBD image locks through this host's rbd CLI.
 */
export async function splitBrainProbes(store: EtcdStore, options: {ssh?: {keyPath?: string; lanInterface?: string}; netnsPrefix?: string}): Promise<SplitBrainProbes> {
  const local = localRbdHolders()
  // An rbd CLI that fails (no Ceph reachable from here) leaves the locks unchecked, as a missing one does.
  const rbdHolders: RbdHolders = (image) => local(image).catch(() => null)
  const spec = await storedSpecIfAny(store)
  const withVips = spec && (spec.services ?? []).some((s) => s.vip)
  if (spec && withVips && options.netnsPrefix) {
    const nodes = spec.nodes.map((n) => n.name)
    return {probes: {rbdHolders, vipHolders: namespaceVipProbe(nodes, options.netnsPrefix)}, close: async () => {}}
  }
  if (spec && withVips && options.ssh) {
    const ssh = await sshVipProbe(store, spec, {...options.ssh, acceptNewHostKey: false})
    return {probes: {rbdHolders, vipHolders: ssh.holders}, close: () => ssh.close()}
  }
  return {probes: {rbdHolders}, close: async () => {}}
}
