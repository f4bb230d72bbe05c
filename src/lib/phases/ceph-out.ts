import type {CephCli} from '../ceph/cli.js'
import {osdsOnNode} from '../ceph/osd.js'
import {describeRisks, poolsAtRisk, readPlacement} from '../ceph/placement.js'
import {ExitStatus, XclusterError} from '../errors.js'
import {commandLine} from '../output/command-line.js'
import {settings} from '../settings.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

interface PgStatJson {
  pg_summary?: {num_pg_by_state?: {name: string; num: number}[]; num_pgs?: number}
}

/**
 * Read-only, before anything changes: with the node's OSDs out (and those of the nodes drained
 * with it), can every pool still place all its replicas? Where it cannot, the data would be left
 * with fewer copies than the pool asks for: refused unless --force.
 */
export const cephPreflightPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'ceph-preflight',
  title: 'Check that Ceph keeps every replica without the node',
  readOnly: true,
  async run(ctx, host) {
    const own = ctx.holdings.get(host.name)?.osds ?? []
    if (own.length === 0) return
    const leaving = (ctx.drainedTogether.get(host.name) ?? [host.name]).flatMap((name) => ctx.holdings.get(name)?.osds ?? [])
    const risks = poolsAtRisk(await readPlacement(await ctx.ceph(host)), [...new Set([...own, ...leaving])])
    if (risks.length === 0) return
    if (ctx.force) {
      ctx.cephAtRisk.set(host.name, risks)
      ctx.note(host, `--force: ${describeRisks(risks)}`)
      return
    }
    const [first] = risks
    throw new XclusterError(`Draining ${host.name} would put Ceph data at risk: without its OSDs (${own.join(', ')}), ${describeRisks(risks)}.`, {
      code: 'CEPH_DATA_AT_RISK',
      exit: ExitStatus.precondition,
      suggestion: `Add a storage node first, or lower the pool's replicas (${commandLine(['ceph', 'pool', 'set', first!.pool, '--size', String(Math.max(1, first!.remaining))])}), or drain anyway: ${commandLine(['node', 'drain', host.name, '--force'])}`,
      details: {node: host.name, osds: own, risks},
    })
  },
}

/**
 * Where Ceph runs on the node: marks its OSDs out and waits until the placement groups are
 * active+clean again, so no data lives only on this node when it goes down. A forced drain of a
 * node whose replicas have nowhere to go marks them out and does not wait: they never would.
 */
export const cephOutPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'ceph-out',
  title: 'Move Ceph data off the node',
  async run(ctx, host) {
    const cli = await ctx.ceph(host)
    const ids = await osdsOnNode(cli, host.name)
    if (ids.length === 0) return
    const stillIn = await osdsMarked(cli, ids, 'in')
    const out = {tool: 'ceph' as const, args: ['osd', 'out', ...stillIn]}
    if (stillIn.length > 0) await ctx.wet(host, cli.line(out), () => cli.run(out))
    if (ctx.dryRun) return
    const atRisk = ctx.cephAtRisk.get(host.name)
    if (atRisk) {
      ctx.note(host, `not waiting for the data to move (--force): ${describeRisks(atRisk)}`)
      return
    }
    // Done when Ceph says the OSDs hold nothing it still needs (cephadm's test before removing
    // an OSD) and every PG is active+clean. The PG summary alone is not enough: right after
    // "osd out" it still shows the old, clean mapping until peering catches up.
    const deadline = Date.now() + settings.ceph.drainTimeoutMs
    for (;;) {
      const safe = await cli.exec({tool: 'ceph', args: ['osd', 'safe-to-destroy', ...ids.map(String)]})
      const stat = await cli.json<PgStatJson>({tool: 'ceph', args: ['pg', 'stat']})
      const states = stat.pg_summary?.num_pg_by_state ?? []
      const clean = states.filter((s) => s.name === 'active+clean').reduce((a, s) => a + s.num, 0)
      if (safe.code === 0 && clean === (stat.pg_summary?.num_pgs ?? 0)) return
      ctx.note(host, `waiting for Ceph: ${clean} of ${stat.pg_summary?.num_pgs ?? 0} PGs active+clean`)
      if (Date.now() > deadline) {
        const why = safe.code === 0 ? '' : `; ${(safe.stderr || safe.stdout).trim().split('\n').pop()}`
        throw new Error(`Ceph data is still moving after ${settings.ceph.drainTimeoutMs / 1000} s (${clean} of ${stat.pg_summary?.num_pgs} PGs active+clean${why}); re-run drain to keep waiting`)
      }
      await new Promise((r) => setTimeout(r, settings.ceph.drainPollMs))
    }
  },
}

/**
 * Undrain: the node's OSDs that are out (drain marked them so) are marked in again, so Ceph moves
 * data back onto them; nothing waits for that: the cluster stays available while it moves.
 */
export const cephInPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'ceph-in',
  title: 'Take the node back into Ceph',
  async run(ctx, host) {
    const cli = await ctx.ceph(host)
    const ids = await osdsOnNode(cli, host.name)
    if (ids.length === 0) return
    const out = await osdsMarked(cli, ids, 'out')
    if (out.length === 0) return
    const mark = {tool: 'ceph' as const, args: ['osd', 'in', ...out]}
    await ctx.wet(host, cli.line(mark), () => cli.run(mark))
  },
}

/** Those of the OSDs that Ceph's map has in (or out) now, as ids for `ceph osd in|out`. */
async function osdsMarked(cli: CephCli, ids: readonly number[], mark: 'in' | 'out'): Promise<string[]> {
  const dump = await cli.json<{osds: {osd: number; in: number}[]}>({tool: 'ceph', args: ['osd', 'dump']})
  return dump.osds.filter((o) => ids.includes(o.osd) && o.in === (mark === 'in' ? 1 : 0)).map((o) => String(o.osd))
}
