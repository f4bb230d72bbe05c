import {osdsOnNode} from '../ceph/osd.js'
import {settings} from '../settings.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

/**
 * Where Ceph runs on the node: marks its OSDs out and waits until the placement groups are
 * active+clean again, so no data lives only on this node when it goes down.
 */
export const cephOutPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'ceph-out',
  title: 'Move Ceph data off the node',
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const ids = await osdsOnNode(ssh, host.name)
    if (ids.length === 0) return
    const tree = JSON.parse((await ssh.run('ceph osd dump --format json', {sudo: true})).stdout) as {osds: {osd: number; in: number}[]}
    const stillIn = tree.osds.filter((o) => ids.includes(o.osd) && o.in === 1).map((o) => o.osd)
    if (stillIn.length > 0) await ctx.wet(host, `ceph osd out ${stillIn.join(' ')}`, () => ssh.run(`ceph osd out ${stillIn.join(' ')}`, {sudo: true}))
    if (ctx.dryRun) return
    // Done when Ceph says the OSDs hold nothing it still needs (cephadm's test before removing
    // an OSD) and every PG is active+clean. The PG summary alone is not enough: right after
    // "osd out" it still shows the old, clean mapping until peering catches up.
    const deadline = Date.now() + settings.ceph.drainTimeoutMs
    for (;;) {
      const safe = await ssh.exec(`ceph osd safe-to-destroy ${ids.join(' ')}`, {sudo: true})
      const stat = JSON.parse((await ssh.run('ceph pg stat --format json', {sudo: true})).stdout) as {pg_summary?: {num_pg_by_state?: {name: string; num: number}[]; num_pgs?: number}}
      const states = stat.pg_summary?.num_pg_by_state ?? []
      const clean = states.filter((s) => s.name === 'active+clean').reduce((a, s) => a + s.num, 0)
      if (safe.code === 0 && clean === (stat.pg_summary?.num_pgs ?? 0)) return
      if (Date.now() > deadline) {
        const why = safe.code === 0 ? '' : `; ${(safe.stderr || safe.stdout).trim().split('\n').pop()}`
        throw new Error(`Ceph data is still moving after ${settings.ceph.drainTimeoutMs / 1000} s (${clean} of ${stat.pg_summary?.num_pgs} PGs active+clean${why}); re-run drain to keep waiting`)
      }
      await new Promise((r) => setTimeout(r, settings.ceph.drainPollMs))
    }
  },
}
