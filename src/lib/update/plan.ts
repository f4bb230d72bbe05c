/**
 * A rolling update's plan, as pure functions of what was read: the order the nodes go in, the
 * batches, and the checks that refuse a batch (etcd quorum, the last candidate of an elected
 * service). Ceph's own verdict needs a node: see checks.ts.
 */
import {quorumAfterDrain} from '../actions/node-drain.js'
import {NODE_TYPES, type NodeRecord} from '../nodes/record.js'
import {commandLine} from '../output/command-line.js'
import type {ClusterSpec} from '../spec/types.js'

/** Who leads what now: the etcd raft leader (by member name = node name) and each election's leader. */
export interface Leadership {
  etcdLeader?: string
  /** Node → services it leads. */
  leads: ReadonlyMap<string, readonly string[]>
}

const naturally = (a: string, b: string): number => a.localeCompare(b, 'en', {numeric: true})

/**
 * The order nodes are updated in. Non-core nodes first, by type then name: a playbook that
 * breaks a node is found on one whose loss costs least. Then the core nodes: those that lead
 * nothing first, then by how many elections they lead, the etcd leader last, so each leadership
 * moves as few times as possible (a node updated early takes over from the ones that follow).
 */
export function updateOrder(nodes: readonly NodeRecord[], leadership: Leadership): NodeRecord[] {
  const weight = (n: NodeRecord): number[] => (n.type === 'core' ? [1, n.name === leadership.etcdLeader ? 1 : 0, leadership.leads.get(n.name)?.length ?? 0, 0] : [0, 0, 0, NODE_TYPES.indexOf(n.type)])
  return [...nodes].sort((a, b) => {
    const [wa, wb] = [weight(a), weight(b)]
    for (let i = 0; i < wa.length; i++) if (wa[i] !== wb[i]) return (wa[i] ?? 0) - (wb[i] ?? 0)
    return naturally(a.name, b.name)
  })
}

/** Consecutive batches of at most `serial` nodes, in order. */
export function splitBatches<T>(ordered: readonly T[], serial: number): T[][] {
  if (!Number.isInteger(serial) || serial < 1) throw new RangeError(`serial must be a positive integer, not ${serial}`)
  const batches: T[][] = []
  for (let i = 0; i < ordered.length; i += serial) batches.push(ordered.slice(i, i + serial))
  return batches
}

export type BatchCheckName = 'quorum' | 'candidates' | 'ceph'

/** One check of one batch: ok, refused (with a fix), or not applicable (skipped). */
export interface BatchCheck {
  check: BatchCheckName
  status: 'ok' | 'refused' | 'skipped'
  observed: string
  /** When refused: what to do, as a command that runs as printed where there is one. */
  fix?: string
}

/** The core nodes left up when the batch is drained must keep etcd's quorum (node drain's rule, for the batch). */
export function quorumCheck(batch: readonly string[], nodes: readonly NodeRecord[]): BatchCheck {
  const core = batch.filter((name) => nodes.find((n) => n.name === name)?.type === 'core')
  if (core.length === 0) return {check: 'quorum', status: 'skipped', observed: 'no core node in the batch'}
  const q = quorumAfterDrain(nodes, batch)
  const observed = `${q.upAfterDrain} of ${q.members} core nodes stay up while ${core.join(', ')} ${core.length > 1 ? 'are' : 'is'} drained; etcd needs ${q.needed}`
  if (q.upAfterDrain >= q.needed) return {check: 'quorum', status: 'ok', observed}
  const fix =
    q.down.length > 0
      ? `Bring ${q.down.join(', ')} back to ready first: ${commandLine(['node', 'undrain', q.down[0]!])}`
      : `Update fewer core nodes at once: ${commandLine(['update', '--nodes', 'type=core', '--serial', String(Math.max(1, q.members - q.needed))])}`
  return {check: 'quorum', status: 'refused', observed, fix}
}

/** An election as the candidates check needs it. */
export interface ElectionCandidates {
  service: string
  leader: string | null
  candidates: readonly string[]
}

/**
 * Every elected service one of the batch campaigns for keeps a candidate outside the batch: a
 * live candidate (its serve campaigns now), on a ready node, that the spec lets run the service.
 */
export function candidatesCheck(batch: readonly string[], elections: readonly ElectionCandidates[], spec: ClusterSpec, nodes: readonly NodeRecord[]): BatchCheck {
  const eligible = (service: string, node: string): boolean => {
    const declared = spec.services?.find((s) => s.name === service)?.nodes
    return (declared === undefined || declared.includes(node)) && nodes.find((n) => n.name === node)?.state === 'ready'
  }
  const touched = elections.filter((e) => e.candidates.some((c) => batch.includes(c)) || (e.leader !== null && batch.includes(e.leader)))
  if (touched.length === 0) return {check: 'candidates', status: 'skipped', observed: 'no node of the batch campaigns in an election'}
  const lines: string[] = []
  const orphaned: string[] = []
  for (const e of touched) {
    const stay = e.candidates.filter((c) => !batch.includes(c) && eligible(e.service, c))
    lines.push(`${e.service}: ${stay.length > 0 ? `${stay.join(', ')} can take over` : `no other eligible candidate (candidates: ${e.candidates.join(', ') || 'none'})`}`)
    if (stay.length === 0) orphaned.push(e.service)
  }
  const observed = lines.join('; ')
  if (orphaned.length === 0) return {check: 'candidates', status: 'ok', observed}
  const service = orphaned[0]!
  return {
    check: 'candidates',
    status: 'refused',
    observed,
    fix: `Run the election daemon on another node the spec lets run ${service} (the xcluster-serve unit, or xcluster serve --elect ${service}), or give ${service} more nodes in the spec, then check: ${commandLine(['election', 'show', service])}`,
  }
}

/** One batch of the plan with the verdict of each check. */
export interface UpdateBatch {
  /** 1-based, as shown. */
  index: number
  nodes: string[]
  checks: BatchCheck[]
}

export const refusedChecks = (batches: readonly UpdateBatch[]): {batch: UpdateBatch; check: BatchCheck}[] =>
  batches.flatMap((batch) => batch.checks.filter((c) => c.status === 'refused').map((check) => ({batch, check})))
