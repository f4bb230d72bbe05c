import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import type {NodeRecord} from '../nodes/record.js'
import {NodeRegistry} from '../nodes/registry.js'
import {cephInPhase, cephOutPhase, cephPreflightPhase} from '../phases/ceph-out.js'
import {connectPhase} from '../phases/connect.js'
import {handOverLeadershipsPhase, inspectHoldingsPhase, type Holdings} from '../phases/holdings.js'
import type {NodeHost, NodeRunContext} from '../phases/context.js'
import {markStatePhase} from '../phases/mark-state.js'
import {startStatefulPhase, stopStatefulPhase} from '../phases/services.js'
import type {Phase} from '../tasks/phase.js'
import {assertRunSucceeded, type RunSummary} from '../tasks/runner.js'
import {runOnNodes, type NodeActionOptions} from './node-run.js'

/** Core nodes that count towards etcd quorum: those not on their way out. */
const QUORUM_STATES: readonly NodeRecord['state'][] = ['ready', 'provisioning', 'registered']

/** etcd's quorum with `leaving` down: every core node not removed is a member. */
export interface QuorumAfterDrain {
  members: number
  upAfterDrain: number
  needed: number
  /** Other core nodes already down (not counted as up). */
  down: string[]
}

/** The quorum rule of a drain, for one node or a batch drained together. Pure. */
export function quorumAfterDrain(nodes: readonly NodeRecord[], leaving: readonly string[]): QuorumAfterDrain {
  const core = nodes.filter((n) => n.type === 'core' && n.state !== 'removed')
  const others = core.filter((n) => !leaving.includes(n.name))
  return {
    members: core.length,
    upAfterDrain: others.filter((n) => QUORUM_STATES.includes(n.state)).length,
    needed: Math.floor(core.length / 2) + 1,
    down: others.filter((n) => !QUORUM_STATES.includes(n.state)).map((n) => n.name),
  }
}

export interface DrainPreflight {
  node: string
  type: NodeRecord['type']
  state: NodeRecord['state']
  /** For a core node: members, how many stay up after the drain, and how many quorum needs. */
  quorum?: {members: number; upAfterDrain: number; needed: number}
}

/** What draining `name` would take away; refuses a core node whose loss would break etcd quorum. */
export async function drainPreflight(store: EtcdStore, name: string): Promise<DrainPreflight> {
  const registry = new NodeRegistry(store)
  const node = await registry.require(name)
  const result: DrainPreflight = {node: name, type: node.type, state: node.state}
  if (node.type === 'core') {
    const {members, upAfterDrain, needed, down} = quorumAfterDrain(await registry.list(), [name])
    result.quorum = {members, upAfterDrain, needed}
    if (upAfterDrain < needed) {
      throw new XclusterError(`Draining core node ${name} would leave ${upAfterDrain} of ${members} core nodes up; etcd needs ${needed} for quorum.`, {
        code: 'DRAIN_BREAKS_QUORUM',
        exit: ExitStatus.precondition,
        suggestion: `Bring ${down.join(', ')} back to ready first, then drain this one: xcluster node undrain ${down[0]}`,
        details: result,
      })
    }
  }
  return result
}

export interface DrainResult {
  preflight: DrainPreflight
  /** What the node held when the drain began (leaderships, VIPs, Ceph OSDs). */
  holdings: Holdings
  run: RunSummary
}

/**
 * `node drain`: preflight (quorum; what the node holds), mark draining, hand its leaderships to
 * peers, move Ceph data away, stop stateful services (the serve daemon and keepalived among
 * them, so it neither campaigns nor holds a VIP), mark drained. An interrupted drain leaves the
 * node `draining`; running it again continues.
 */
export async function drainNode(store: EtcdStore, name: string, options: NodeActionOptions): Promise<DrainResult> {
  const preflight = await drainPreflight(store, name)
  if (!['ready', 'draining', 'failed'].includes(preflight.state)) {
    throw new XclusterError(`Node ${name} is ${preflight.state}; only a ready (or half-drained) node can be drained.`, {
      code: 'NODE_WRONG_STATE',
      exit: ExitStatus.precondition,
      suggestion: `Check it with: xcluster node show ${name}`,
    })
  }
  const {summary: run, ctx} = await runNodeAction(store, 'node drain', [name], options, [
    connectPhase,
    inspectHoldingsPhase,
    cephPreflightPhase,
    markStatePhase('mark-draining', 'Mark the node draining', ['ready', 'failed'], 'draining'),
    handOverLeadershipsPhase,
    cephOutPhase,
    stopStatefulPhase,
    markStatePhase('mark-drained', 'Mark the node drained', ['draining'], 'drained'),
  ])
  return {preflight, holdings: ctx.holdings.get(name) ?? {leaderships: [], vips: [], osds: []}, run}
}

/** `node undrain`: start the stateful services again and return the node to `ready`. */
export async function undrainNode(store: EtcdStore, name: string, options: NodeActionOptions): Promise<RunSummary> {
  const node = await new NodeRegistry(store).require(name)
  if (!['drained', 'draining'].includes(node.state)) {
    throw new XclusterError(`Node ${name} is ${node.state}; only a drained (or draining) node can be undrained.`, {
      code: 'NODE_WRONG_STATE',
      exit: ExitStatus.precondition,
      suggestion: `Check it with: xcluster node show ${name}`,
    })
  }
  const {summary} = await runNodeAction(store, 'node undrain', [name], options, [
    connectPhase,
    startStatefulPhase,
    cephInPhase,
    markStatePhase('mark-ready', 'Mark the node ready', ['drained', 'draining'], 'ready'),
  ])
  return summary
}

async function runNodeAction(
  store: EtcdStore,
  action: string,
  names: string[],
  options: NodeActionOptions,
  phases: Phase<NodeHost, NodeRunContext>[],
): Promise<{summary: RunSummary; ctx: NodeRunContext}> {
  const result = await runOnNodes(store, action, names, phases, options)
  assertRunSucceeded(result.summary)
  return result
}
