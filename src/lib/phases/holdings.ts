import {osdsOnNode} from '../ceph/osd.js'
import {requestHandover} from '../election/handover.js'
import {listElections} from '../election/state.js'
import {declaredVips, ipv4Addresses} from '../election/vip.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

/** What a node holds that others depend on: reported before a drain moves it away. */
export interface Holdings {
  /** Services this node leads, with the fencing token of that leadership. */
  leaderships: {service: string; token: string; peers: string[]}[]
  /** Declared VIPs (admin, services) that sit on the node's interfaces now. */
  vips: string[]
  /** Ceph OSD ids on the node, where Ceph runs. */
  osds: number[]
}

/** Read-only: finds the node's leaderships (etcd), VIPs (its interfaces) and OSDs (Ceph, if present). */
export const inspectHoldingsPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'inspect-holdings',
  title: 'Find leaderships, VIPs and Ceph OSDs on the node',
  readOnly: true,
  async run(ctx, host) {
    const elections = await listElections(ctx.store, ctx.spec)
    // Peers outside the nodes going down with this one (a rolling update's batch).
    const together = ctx.drainedTogether.get(host.name) ?? [host.name]
    const leaderships = elections.filter((e) => e.leader === host.name && e.token).map((e) => ({service: e.service, token: e.token!, peers: e.candidates.filter((c) => !together.includes(c))}))
    const ssh = await ctx.ssh(host)
    const addresses = ipv4Addresses((await ssh.run('ip -o -4 addr show')).stdout)
    const vips = declaredVips(ctx.spec)
      .map((v) => v.address)
      .filter((a) => addresses.includes(a))
    const osds = await osdsOnNode(await ctx.ceph(host), host.name)
    ctx.holdings.set(host.name, {leaderships, vips, osds})
  },
}

/**
 * Hands every leadership the node holds to a peer candidate (a graceful transfer: the leader's
 * daemon stops its service first, then the peer takes the seat), before the node's services stop.
 */
export const handOverLeadershipsPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'hand-over-leaderships',
  title: 'Hand leaderships to peers',
  async run(ctx, host) {
    for (const held of ctx.holdings.get(host.name)?.leaderships ?? []) {
      const [peer] = held.peers
      if (!peer) {
        throw new Error(`no other node campaigns for ${held.service}, so its leadership cannot move; run its daemon (xcluster serve) on another node first`)
      }
      await ctx.wet(host, `hand over ${held.service} (token ${held.token}) to ${peer}`, () => requestHandover(ctx.store, held.service, peer))
    }
  },
}
