import {rmSync} from 'node:fs'

import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {transitionNode} from '../nodes/lifecycle.js'
import {NodeRegistry} from '../nodes/registry.js'
import {parseNodeSelector, selectNodes} from '../nodes/selector.js'
import {commandLine} from '../output/command-line.js'
import {cephOutPhase, cephPreflightPhase} from '../phases/ceph-out.js'
import {connectPhase} from '../phases/connect.js'
import type {NodeHost} from '../phases/context.js'
import {handOverLeadershipsPhase, inspectHoldingsPhase} from '../phases/holdings.js'
import {markStatePhase} from '../phases/mark-state.js'
import {rejoinElectionsPhase} from '../phases/rejoin-elections.js'
import {runPlaybookPhase} from '../phases/run-playbook.js'
import {startStatefulPhase, stopStatefulPhase} from '../phases/services.js'
import {updateCheckPhase} from '../phases/update-check.js'
import {waitBackPhase} from '../phases/wait-back.js'
import {settings} from '../settings.js'
import {readStoredSpec} from '../spec/store.js'
import {HostKeyStore, HostPool} from '../ssh/index.js'
import {RunJournal} from '../tasks/journal.js'
import type {Phase} from '../tasks/phase.js'
import {assertRunSucceeded, runPhases, type RunSummary} from '../tasks/runner.js'
import {checkBatch, readCluster, readLeadership} from '../update/checks.js'
import {UpdateRunContext} from '../update/context.js'
import {refusedChecks, splitBatches, updateOrder, type UpdateBatch} from '../update/plan.js'
import {DEFAULT_UPDATE_PLAYBOOK} from '../update/playbook.js'
import {nodeHosts, type NodeActionOptions} from './node-run.js'

export const UPDATE_ACTION = 'update'

/** Nodes selected when `--nodes` is not given. */
export const DEFAULT_UPDATE_SELECTOR = 'state=ready'

export interface UpdateOptions extends NodeActionOptions {
  /** `--nodes`; default every ready node. Ignored on --resume: the run's own nodes and order are kept. */
  selector?: string
  serial: number
  playbook?: string
  /** The xcluster CLI the inventory plugin runs. */
  executable: string
}

/** What an update will do: its batches in order, each with the verdict of its checks now. */
export interface UpdatePlan {
  playbook: string
  serial: number
  /** Every node, in the order they are updated. */
  order: string[]
  batches: UpdateBatch[]
  /** On --resume: the run continued, and the batches it finished already (skipped). */
  resume?: {run: string; finishedBatches: number[]}
}

export type BatchOutcome = 'planned' | 'updated' | 'failed' | 'not started' | 'done earlier'

/** The `--json` of `xcluster update`. */
export interface UpdateResult {
  plan: UpdatePlan
  dryRun: boolean
  batches: {index: number; nodes: string[]; outcome: BatchOutcome}[]
  run: RunSummary
}

/** The last step of a node's update: a batch whose nodes all finished it is done. */
const FINAL_PHASE = 'mark-ready'

/**
 * Plans the update: the batches and, for each, whether it would break etcd quorum, leave an
 * elected service without a candidate, or stop OSDs Ceph cannot spare (assertPlanAccepted
 * refuses such a plan). Refuses unknown or unready nodes and bad selectors. On --resume the run's
 * own nodes, in its order, are planned again, and the batches it finished are skipped.
 */
export async function planUpdate(store: EtcdStore, options: UpdateOptions): Promise<UpdatePlan> {
  const spec = await readStoredSpec(store)
  const reads = await readCluster(store, spec)
  let order: string[]
  let resume: UpdatePlan['resume']
  let done = new Set<string>()
  if (options.resume) {
    const journal = new RunJournal(store)
    // The same refusals as the resume itself (unknown id, another action, finished, running), writing nothing.
    done = await journal.peekResume(options.resume, UPDATE_ACTION)
    order = (await journal.read(options.resume))!.hosts
  } else {
    const selected = selectNodes(parseNodeSelector(options.selector ?? DEFAULT_UPDATE_SELECTOR), reads.nodes)
    const notReady = selected.filter((n) => n.state !== 'ready')
    if (notReady.length > 0) {
      throw new XclusterError(`Only ready nodes can be updated: ${notReady.map((n) => `${n.name} is ${n.state}`).join(', ')}.`, {
        code: 'NODE_WRONG_STATE',
        exit: ExitStatus.precondition,
        suggestion: `Leave ${notReady.length > 1 ? 'them' : 'it'} out (e.g. --nodes ${options.selector ?? DEFAULT_UPDATE_SELECTOR},state=ready), or bring ${notReady[0]!.name} back first: ${commandLine(['node', 'show', notReady[0]!.name])}`,
        details: {nodes: notReady.map((n) => ({name: n.name, state: n.state}))},
      })
    }
    order = updateOrder(selected, await readLeadership(store, reads.elections)).map((n) => n.name)
  }
  const names = splitBatches(order, options.serial)
  const finished = names.map((batch, i) => (batch.every((n) => done.has(`${FINAL_PHASE}/${n}`)) ? i + 1 : 0)).filter((i) => i > 0)
  if (options.resume) resume = {run: options.resume, finishedBatches: finished}

  // Ceph's verdict needs the storage nodes themselves: one pooled connection each, closed here.
  const pool = new HostPool()
  try {
    const sshOf = async (node: string) => pool.get((await nodeHosts(store, spec, [node], options)).hosts[0]!.target)
    const batches: UpdateBatch[] = []
    for (const [i, batch] of names.entries()) {
      batches.push(finished.includes(i + 1) ? {index: i + 1, nodes: batch, checks: []} : await checkBatch(i + 1, batch, spec, reads, sshOf))
    }
    return {playbook: options.playbook ?? DEFAULT_UPDATE_PLAYBOOK, serial: options.serial, order, batches, ...(resume ? {resume} : {})}
  } finally {
    await pool.closeAll()
  }
}

const REFUSAL_CODES = {quorum: 'DRAIN_BREAKS_QUORUM', candidates: 'DRAIN_LEAVES_NO_CANDIDATE', ceph: 'CEPH_NOT_OK_TO_STOP'} as const

/** Refuses a plan with a refused check (exit 3, nothing changed), naming every one and the first fix. */
export function assertPlanAccepted(plan: UpdatePlan): void {
  const refused = refusedChecks(plan.batches)
  if (refused.length === 0) return
  const first = refused[0]!
  throw new XclusterError(
    `Update refused; nothing was changed:\n${refused.map(({batch, check}) => `  batch ${batch.index} (${batch.nodes.join(', ')}): ${check.check}: ${check.observed}`).join('\n')}`,
    {
      code: REFUSAL_CODES[first.check.check],
      exit: ExitStatus.precondition,
      suggestion: first.check.fix,
      details: plan,
    },
  )
}

/**
 * On a phase's failure, the reason is kept on the node it leaves draining or drained, so
 * `node list` says why it is out (a node still ready was not touched: nothing to record).
 */
function recordingFailure(phase: Phase<NodeHost, UpdateRunContext>): Phase<NodeHost, UpdateRunContext> {
  return {
    ...phase,
    async run(ctx, host) {
      try {
        await phase.run(ctx, host)
      } catch (error) {
        if (!ctx.dryRun) {
          const node = await new NodeRegistry(ctx.store).get(host.name)
          if (node && (node.state === 'draining' || node.state === 'drained')) {
            const reason = ctx.reason(`update failed in ${phase.id}: ${(error as Error).message}`.slice(0, 500))
            await transitionNode(ctx.store, host.name, node.state, {from: [node.state], reason}).catch(() => undefined)
          }
        }
        throw error
      }
    },
  }
}

/** One batch's steps: the checks, node drain's phases, the playbook, the wait, node undrain's, the rejoin. */
function batchPhases(index: number, batch: readonly string[], count: number): Phase<NodeHost, UpdateRunContext>[] {
  const steps: Phase<NodeHost, UpdateRunContext>[] = [
    updateCheckPhase,
    connectPhase,
    inspectHoldingsPhase,
    cephPreflightPhase,
    ...[
      markStatePhase('mark-draining', 'Mark the node draining', ['ready', 'failed'], 'draining', (ctx) => (ctx as UpdateRunContext).reason()),
      handOverLeadershipsPhase,
      cephOutPhase,
      stopStatefulPhase,
      markStatePhase('mark-drained', 'Mark the node drained', ['draining'], 'drained', (ctx) => (ctx as UpdateRunContext).reason()),
      runPlaybookPhase,
      waitBackPhase,
      startStatefulPhase,
      rejoinElectionsPhase,
      markStatePhase(FINAL_PHASE, 'Mark the node ready', ['drained', 'draining'], 'ready'),
    ].map(recordingFailure),
  ]
  return steps.map((phase) => ({
    ...phase,
    title: `Batch ${index + 1}/${count} (${batch.join(', ')}): ${phase.title}`,
    // A batch an earlier attempt finished is not connected to or checked again.
    hosts: (ctx) => (batch.every((n) => ctx.finishedEarlier.has(`${FINAL_PHASE}/${n}`)) ? [] : ctx.hosts.filter((h) => batch.includes(h.name))),
    run: async (ctx, host) => {
      await phase.run(ctx, host)
      if (phase.id === FINAL_PHASE) ctx.updated.add(host.name)
    },
  }))
}

function batchOutcome(nodes: readonly string[], seen: {earlier: boolean; dryRun: boolean; failed: ReadonlySet<string>; updated: ReadonlySet<string>}): BatchOutcome {
  if (seen.earlier) return 'done earlier'
  if (seen.dryRun) return 'planned'
  if (nodes.some((n) => seen.failed.has(n))) return 'failed'
  return nodes.every((n) => seen.updated.has(n)) ? 'updated' : 'not started'
}

/**
 * `xcluster update`: batch after batch, node drain (leaderships moved to nodes outside the batch),
 * the playbook on the batch, the wait until each node is back and healthy, node undrain and the
 * rejoin of its elections. The first failure stops the run (Ansible's max_fail_percentage 0): the
 * batches after it are not touched, and the node it failed on stays drained with the reason.
 */
export async function runUpdate(store: EtcdStore, plan: UpdatePlan, options: UpdateOptions): Promise<UpdateResult> {
  const spec = await readStoredSpec(store)
  const {hosts, cluster} = await nodeHosts(store, spec, plan.order, options)
  const pool = new HostPool()
  const batches = plan.batches.map((b) => b.nodes)
  const access = {lanInterface: options.lanInterface ?? settings.lanInterface, ...(options.keyPath ? {sshKey: options.keyPath} : {})}
  const ctx = new UpdateRunContext(hosts, options.dryRun, store, spec, cluster, pool, new HostKeyStore(store), {batches, playbook: plan.playbook, executable: options.executable, access})
  let run: RunSummary
  try {
    run = await runPhases(
      batches.flatMap((batch, i) => batchPhases(i, batch, batches.length)),
      ctx,
      {
        action: UPDATE_ACTION,
        args: options.args,
        concurrency: options.concurrency,
        progress: options.progress,
        journal: new RunJournal(store),
        resume: options.resume,
        stopAtFirstFailure: true,
        onRecord: (id) => (ctx.runId = id),
      },
    )
  } finally {
    await pool.closeAll()
    if (ctx.workspaceDir) rmSync(ctx.workspaceDir, {recursive: true, force: true})
  }
  const failed = new Set(run.hosts.filter((h) => h.status === 'failed').map((h) => h.name))
  const earlier = new Set(plan.resume?.finishedBatches ?? [])
  const result: UpdateResult = {
    plan,
    dryRun: options.dryRun,
    batches: plan.batches.map((b) => ({
      index: b.index,
      nodes: b.nodes,
      outcome: batchOutcome(b.nodes, {earlier: earlier.has(b.index), dryRun: options.dryRun, failed, updated: ctx.updated}),
    })),
    run,
  }
  assertRunSucceeded(run)
  return result
}
