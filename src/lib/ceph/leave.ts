/**
 * `ceph leave NODE`: the inverse of `ceph join NODE`, a monitor node's monitor and manager taken
 * out of Ceph over SSH, as a task list journaled like every node action. planCephLeave refuses,
 * before anything changes, what would cost the cluster its monitors' majority; leaveCeph then
 * takes the monitor out of the monmap on a remaining member (while it still answers: with two
 * monitors, one stopped first would leave no majority to remove it with), stops and deletes the
 * node's monitor and manager, names the remaining monitors in every ceph.conf, waits for their
 * quorum and takes the node out of the record in etcd. Every change goes through the wet gate.
 */
import {nodeHosts, runOnNodes, type NodeActionOptions} from '../actions/node-run.js'
import type {EtcdStore} from '../etcd/store.js'
import {ExitStatus, preconditionError, usageError, XclusterError} from '../errors.js'
import {commandLine} from '../output/command-line.js'
import {connectPhase} from '../phases/connect.js'
import type {NodeHost, NodeRunContext} from '../phases/context.js'
import {ensureFile} from '../phases/ensure-file.js'
import {settings} from '../settings.js'
import {readStoredSpec} from '../spec/store.js'
import {HostPool} from '../ssh/index.js'
import {shellQuote} from '../ssh/shell.js'
import type {Phase} from '../tasks/phase.js'
import {assertRunSucceeded} from '../tasks/runner.js'
import {CephCli, type CephBackend} from './cli.js'
import {
  CEPH_CONF,
  disableLine,
  mgrAuthDelLine,
  mgrAuthExistsLine,
  mgrDataDir,
  mgrUnit,
  microceph,
  microcephListsMember,
  monDataDir,
  monmapNames,
  monRemoveLine,
  monUnit,
  removeDirsLine,
  renderCephConf,
  type CephMonmapJson,
  type CephQuorum,
} from './deploy.js'
import {checkBackend, monsOf, readState, runLines, waitForQuorum, type CephFormResult} from './formation.js'
import {readCephCluster, recordMonLeft, type CephClusterRecord} from './membership.js'

export interface CephLeaveOptions extends NodeActionOptions {
  /** Leave two monitors with one, or go on without the node's own steps when it cannot be reached. */
  force: boolean
}

/** The `--json` of `ceph leave`: `mons` are the monitors that remain. */
export interface CephLeaveResult extends CephFormResult {
  /** Whether the node itself was reached (false: --force, and its units and stores stay on it). */
  reached: boolean
}

/** A leave checked before any change: what `ceph leave` asks about, then runs. */
export interface CephLeavePlan {
  node: string
  backend: CephBackend
  fsid: string
  /** The monitors that remain, in the record's order. */
  mons: string[]
  /** The remaining member the cluster-wide steps run on. */
  source: string
  /** Whether the node answered SSH; when not (and --force), its own steps are left out. */
  reached: boolean
  quorum?: CephQuorum
}

/**
 * The refusals that need only the record: the node must be a monitor, not the last one, and one
 * of two leaves only with --force (one monitor is a majority of one, but no failure can be
 * survived after it; three to two keeps a majority of two). Returns the monitors that remain.
 */
export function checkLeave(record: CephClusterRecord, node: string, force: boolean): string[] {
  if (!record.mons.includes(node)) {
    throw preconditionError(
      'CEPH_NOT_MONITOR',
      `${node} is not a Ceph monitor: the monitors are ${record.mons.join(', ')}.`,
      `See the cluster's monitors (a finished leave is not run again): ${commandLine(['ceph', 'status'])}`,
      {node, mons: record.mons},
    )
  }
  const remaining = record.mons.filter((m) => m !== node)
  if (remaining.length === 0) {
    throw preconditionError(
      'CEPH_LAST_MONITOR',
      `${node} runs the last Ceph monitor: without it the cluster and its data cannot be reached.`,
      `Add another monitor first, then take ${node} out: ${commandLine(['ceph', 'join', 'NODE'])}`,
      {node, mons: record.mons},
    )
  }
  if (remaining.length < 2 && !force) {
    throw preconditionError(
      'CEPH_TOO_FEW_MONITORS',
      `Taking ${node} out would leave one Ceph monitor (${remaining.join(', ')}): a single failure would then stop the cluster.`,
      `Add a monitor first (${commandLine(['ceph', 'join', 'NODE'])}), or leave one anyway: ${commandLine(['ceph', 'leave', node, '--force'])}`,
      {node, mons: record.mons},
    )
  }
  return remaining
}

/**
 * Checks a leave before anything changes: the node is known and a monitor in the record
 * (checkLeave), the remaining monitors are in quorum now (`ceph quorum_status` on one of them),
 * and the node answers SSH (without it, only --force goes on).
 */
export async function planCephLeave(store: EtcdStore, node: string, options: CephLeaveOptions): Promise<CephLeavePlan> {
  const {backend, nodes, record} = await readState(store)
  if (!nodes.some((n) => n.name === node)) {
    throw usageError(`Unknown node ${JSON.stringify(node)}.`, `Name one of the Ceph monitors${record ? ` (${record.mons.join(', ')})` : ''}; the nodes: ${commandLine(['node', 'list'])}`, {node})
  }
  if (!record) {
    throw preconditionError('CEPH_NOT_BOOTSTRAPPED', `There is no Ceph cluster for ${node} to leave: Ceph was not bootstrapped.`, `See the cluster's state: ${commandLine(['ceph', 'status'])}`)
  }
  checkBackend(record, backend)
  const mons = checkLeave(record, node, options.force)
  const source = mons[0]!
  const spec = await readStoredSpec(store)
  const {hosts} = await nodeHosts(store, spec, [node, source], options)
  const pool = new HostPool()
  try {
    // An SSH failure to the member is its own error (with its own next step), not a lost quorum.
    const cli = new CephCli(await pool.get(hosts[1]!.target), backend)
    let quorum: string[]
    try {
      quorum = (await cli.json<{quorum_names?: string[]}>({tool: 'ceph', args: ['quorum_status']})).quorum_names ?? []
    } catch (error) {
      throw noQuorum(node, mons, `${source} could not tell the quorum: ${(error as Error).message}`)
    }
    const missing = mons.filter((m) => !quorum.includes(m))
    if (missing.length > 0) throw noQuorum(node, mons, `${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not in quorum (in quorum: ${quorum.join(', ') || 'none'})`)
    let reached = true
    try {
      await pool.get(hosts[0]!.target)
    } catch (error) {
      if (!options.force) {
        throw preconditionError(
          'NODE_UNREACHABLE',
          `${node} cannot be reached over SSH (${(error as Error).message}): its monitor's units and stores could not be removed.`,
          `Bring it back and run this again, or take it out without its own steps (its stores stay on it; never start them again): ${commandLine(['ceph', 'leave', node, '--force'])}`,
          {node},
        )
      }
      reached = false
    }
    return {node, backend, fsid: record.fsid, mons, source, reached}
  } finally {
    await pool.closeAll()
  }
}

const noQuorum = (node: string, mons: readonly string[], why: string): XclusterError =>
  new XclusterError(`The monitors that would remain (${mons.join(', ')}) are not all in quorum now: ${why}. Taking ${node} out could leave no majority.`, {
    code: 'CEPH_NO_QUORUM',
    exit: ExitStatus.precondition,
    suggestion: `Bring the remaining monitors back into quorum first; see them: ${commandLine(['ceph', 'status'])}`,
    details: {node, mons},
  })

/** `ceph leave NODE`: runs a checked plan (planCephLeave) on the node, when reached, and the remaining monitors. */
export async function leaveCeph(store: EtcdStore, plan: CephLeavePlan, options: CephLeaveOptions): Promise<CephLeaveResult> {
  const phases = leavePhases(plan)
  // Each step needs the one before it, on whichever host it ran (the node's monitor stops only once
  // it is out of the monmap; the record changes only once every step is done): the first failure stops the run.
  const {summary} = await runOnNodes(store, 'ceph leave', plan.reached ? [plan.node, ...plan.mons] : plan.mons, phases, {...options, stopAtFirstFailure: true})
  assertRunSucceeded(summary)
  return {node: plan.node, backend: plan.backend, fsid: plan.fsid, mons: plan.mons, ...(plan.quorum ? {quorum: plan.quorum} : {}), reached: plan.reached, run: summary}
}

/** The leave's steps in order: the monmap first, then the node, the member's key, every ceph.conf, the quorum, the record. */
export function leavePhases(plan: CephLeavePlan): Phase<NodeHost, NodeRunContext>[] {
  return [connectPhase, monRemovePhase(plan), unitsPhase(plan), storesPhase(plan), mgrKeyPhase(plan), monHostPhase(plan), quorumPhase(plan), recordPhase(plan)]
}

const onSource = (plan: CephLeavePlan) => (ctx: NodeRunContext) => ctx.hosts.filter((h) => h.name === plan.source)
const onNode = (plan: CephLeavePlan) => (ctx: NodeRunContext) => ctx.hosts.filter((h) => h.name === plan.node)
const debianCeph = (plan: CephLeavePlan) => () => plan.backend === 'ceph'

/** Out of the monmap first, on a remaining member, only while the monmap (or MicroCeph) still lists the node. */
function monRemovePhase(plan: CephLeavePlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-mon-remove',
    title: `Take mon.${plan.node} out of the monitor map (on ${plan.source})`,
    hosts: onSource(plan),
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      if (plan.backend === 'microceph') {
        // MicroCeph removes the node's monitor, manager and its membership itself, as documented:
        // https://documentation.ubuntu.com/microceph/latest/snap/reference/commands/cluster/
        // (`microceph cluster remove <NAME>`). The record is then updated like Debian's.
        const list = await ssh.run(microceph.member, {sudo: true, timeoutMs: settings.ceph.commandTimeoutMs})
        if (microcephListsMember(list.stdout, plan.node)) await runLines(ctx, host, ssh, [microceph.remove(plan.node)])
        return
      }
      const monmap = monmapNames(await (await ctx.ceph(host)).json<CephMonmapJson>({tool: 'ceph', args: ['mon', 'dump']}))
      if (monmap.includes(plan.node)) await runLines(ctx, host, ssh, [monRemoveLine(plan.node)])
    },
  }
}

/** The node's monitor and manager stopped and disabled, where enabled or running. */
function unitsPhase(plan: CephLeavePlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-leave-units',
    title: `Stop and disable ${monUnit(plan.node)} and ${mgrUnit(plan.node)}`,
    hosts: onNode(plan),
    shouldRun: debianCeph(plan),
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      const units: string[] = []
      for (const unit of [monUnit(plan.node), mgrUnit(plan.node)]) {
        const u = shellQuote(unit)
        if ((await ssh.exec(`systemctl is-enabled --quiet ${u} || systemctl is-active --quiet ${u}`, {sudo: true})).code === 0) units.push(unit)
      }
      if (units.length > 0) await runLines(ctx, host, ssh, [disableLine(units)])
    },
  }
}

/** Deleted, not moved aside: a removed monitor's store must never start again and come back with an old map. */
function storesPhase(plan: CephLeavePlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-leave-stores',
    title: `Delete the monitor's and manager's stores on ${plan.node}`,
    hosts: onNode(plan),
    shouldRun: debianCeph(plan),
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      const dirs: string[] = []
      for (const dir of [monDataDir(plan.node), mgrDataDir(plan.node)]) if ((await ssh.exec(`test -e ${shellQuote(dir)}`, {sudo: true})).code === 0) dirs.push(dir)
      if (dirs.length > 0) await runLines(ctx, host, ssh, [removeDirsLine(dirs)])
    },
  }
}

/** The manager's key, deleted on a remaining member if Ceph still has it. */
function mgrKeyPhase(plan: CephLeavePlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-leave-mgr-key',
    title: `Delete the key of mgr.${plan.node} (on ${plan.source})`,
    hosts: onSource(plan),
    shouldRun: debianCeph(plan),
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      if ((await ssh.exec(mgrAuthExistsLine(plan.node), {sudo: true, timeoutMs: settings.ceph.commandTimeoutMs})).code === 0) await runLines(ctx, host, ssh, [mgrAuthDelLine(plan.node)])
    },
  }
}

/** Every ceph.conf names the remaining monitors only: the members', and the node's (its OSDs, if any, still find them). */
function monHostPhase(plan: CephLeavePlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-mon-host',
    title: `Name monitors ${plan.mons.join(', ')} in each ceph.conf`,
    shouldRun: debianCeph(plan),
    async run(ctx, host) {
      await ensureFile(ctx, host, await ctx.ssh(host), {path: CEPH_CONF, content: renderCephConf(plan.fsid, monsOf(ctx, plan.mons), ctx.spec.network.subnet)})
    },
  }
}

function quorumPhase(plan: CephLeavePlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-quorum',
    title: `Wait for monitors ${plan.mons.join(', ')} in quorum, and their managers`,
    hosts: onSource(plan),
    readOnly: true,
    async run(ctx, host) {
      // A dry run removed nothing: the node would still be counted.
      if (ctx.dryRun) return
      plan.quorum = await waitForQuorum(
        ctx,
        host,
        plan.mons,
        `See the monitors' logs on ${plan.source} (journalctl -u ${monUnit(plan.source)}), then run the same command again: what is done stays done.`,
      )
    },
  }
}

function recordPhase(plan: CephLeavePlan): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'ceph-record',
    title: `Take ${plan.node} out of the Ceph monitors in etcd`,
    hosts: onSource(plan),
    async run(ctx, host) {
      if (!(await readCephCluster(ctx.store))?.mons.includes(plan.node)) return
      await ctx.wet(host, `remove ${plan.node} from the Ceph monitors in etcd`, () => recordMonLeft(ctx.store, plan.node))
    },
  }
}

/** The end of a leave's report: the cluster as ceph -s saw it, and what stayed on an unreached node. */
export function describeLeft(result: CephLeaveResult): string[] {
  const lines: string[] = []
  if (!result.reached) lines.push(`${result.node} was not reached: its stores ${monDataDir(result.node)} and ${mgrDataDir(result.node)} stay on it; delete them before it starts again.`)
  if (result.quorum)
    lines.push(
      `Ceph ${result.fsid ?? result.quorum.fsid}: monitors ${result.quorum.quorum.join(', ')} in quorum; manager ${result.quorum.mgrAvailable ? 'active' : 'not active'}, ${result.quorum.mgrStandbys} standby.`,
    )
  return lines
}
