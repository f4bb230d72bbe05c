import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore, Transaction} from '../etcd/store.js'
import {settings} from '../settings.js'
import {ApplyClaim} from './claim.js'
import {finishFold, writeDiff} from './fold.js'
import {canonicalJson, newGeneration, specSha256, splitSpec, type SpecPointer} from './generation.js'
import {diffWithSpec, diffWrites, type MacChange, type NodeAddition, type NodeNotInSpec, type NodeUpdate} from './resolve.js'
import type {ClusterSpec} from './types.js'
import {readClusterView} from './view.js'

export type {FieldChange, MacChange, NodeAddition, NodeNotInSpec, NodeUpdate} from './resolve.js'

/**
 * `config apply` of a spec of any size, all-or-nothing for every reader, on a stock etcd (128
 * operations per transaction, 1.5 MiB per request):
 *
 * 1. Plan: one read at one revision R of the spec pointer, node records and MAC bindings.
 * 2. Claim: a create-only key under this process's lease (src/lib/spec/claim.ts).
 * 3. Stage: the spec, in parts of bounded size, under a new generation and under the claim's
 *    lease: no reader looks at a generation the pointer does not name.
 * 4. Commit: ONE transaction, guarded by the claim, the pointer's revision and two range
 *    compares (nothing under nodes/ or macs/ changed since R), makes the generation current,
 *    takes its parts off the lease, drops every other generation's parts, and sets `spec/fold`.
 *    From this revision on, readers see the new spec with its nodes (they overlay it).
 * 5. Fold: the node records and MAC bindings are written in bounded transactions; when a read
 *    finds nothing left to write, `spec/fold` goes (src/lib/spec/fold.ts).
 *
 * An apply that dies before 4 leaves the old spec current and its staged parts on a lease that
 * ends; one that dies during 5 leaves the new spec current and its fold to the next apply or
 * writer of nodes (finishFold).
 */

/** The difference between etcd and a spec, and the revisions it was computed against. */
export interface ApplyPlan {
  cluster: string
  spec: ClusterSpec
  specSha256: string
  /** The spec as the parts it is stored in (checked for size before anything is read or written). */
  parts: Buffer[]
  specChanged: boolean
  /** Mod revision of the stored spec pointer when planned; null when no spec was stored. */
  specRevision: string | null
  /** The current pointer when planned (null: no spec, or one stored before generations). */
  pointer: SpecPointer | null
  /** Its generation. */
  generation: string | null
  /** The revision the plan was read at: the commit fails if nodes/ or macs/ moved since. */
  revision: string
  /** False when a previous apply's fold is unfinished: the apply finishes it first. */
  folded: boolean
  add: NodeAddition[]
  update: NodeUpdate[]
  notInSpec: NodeNotInSpec[]
  macs: MacChange[]
  /** False when etcd already matches the spec: applying would write nothing. */
  changed: boolean
}

/** What applyPlan did. */
export interface ApplyOutcome {
  /** The new spec and its nodes were committed. */
  committed: boolean
  /** An earlier apply's unfinished fold was finished first. */
  finishedEarlierFold: boolean
}

/** Reads the spec, nodes and MAC bindings from etcd (one read) and computes what applying `spec` changes. */
export async function planApply(store: EtcdStore, spec: ClusterSpec): Promise<ApplyPlan> {
  if (spec.cluster !== store.keys.cluster) {
    throw new XclusterError(`The spec is for cluster "${spec.cluster}" but the command targets cluster "${store.keys.cluster}".`, {
      code: 'CLUSTER_MISMATCH',
      exit: ExitStatus.usage,
      suggestion: `Re-run with --cluster ${spec.cluster}, or change cluster: in the spec.`,
    })
  }
  // A spec too large is refused before anything is read, and --dry-run says so too.
  const parts = splitSpec(spec)
  // The stored spec itself is needed only to overlay an unfinished fold: its digest says whether it changes.
  const view = await readClusterView(store, {spec: 'while-folding', nodes: 'all', macs: true})
  const sha = specSha256(spec)
  const diff = diffWithSpec(spec, view.resolved)
  const specChanged = view.family.sha256 !== sha
  return {
    cluster: spec.cluster,
    spec,
    specSha256: sha,
    parts,
    specChanged,
    specRevision: view.family.pointer?.modRevision ?? null,
    pointer: view.family.pointer?.value ?? null,
    generation: view.family.pointer?.value?.generation ?? null,
    revision: view.revision,
    folded: !view.folding,
    ...diff,
    changed: specChanged || diffWrites(diff),
  }
}

/** Does the plan change what is already registered (a node's fields, a MAC's binding)? Such an apply asks first. */
export function changesRegistered(plan: ApplyPlan): boolean {
  return plan.update.length > 0 || plan.macs.some((m) => m.previous !== null)
}

/**
 * Writes a plan (see the steps above). If anything the plan was made against moved in between,
 * nothing is written and APPLY_CONFLICT is thrown; so it is when another apply holds the claim.
 * A plan without changes writes nothing (unless an earlier apply's fold is unfinished: that is
 * finished). Existing nodes keep their state; new ones start `registered`.
 */
export async function applyPlan(store: EtcdStore, plan: ApplyPlan, now = new Date()): Promise<ApplyOutcome> {
  if (!plan.changed && plan.folded) return {committed: false, finishedEarlierFold: false}
  // A spec stored before generations is staged as one even when unchanged.
  const parts = plan.specChanged || plan.pointer === null ? plan.parts : undefined
  const generation = parts ? newGeneration() : (plan.generation as string)
  // A plan whose fold is unfinished is checked again after the fold; a folded one is checked by the claim itself.
  const claim = await ApplyClaim.take(store, generation, (txn) => (plan.folded ? guardPlan(txn, store, plan) : txn), conflict)
  try {
    let current = plan
    let finishedEarlierFold = false
    if (!plan.folded) {
      finishedEarlierFold = await finishFold(store)
      current = await planApply(store, plan.spec)
      if (!samePlan(plan, current)) throw conflict()
      if (!current.changed) return {committed: false, finishedEarlierFold}
    }
    if (parts) await stage(store, claim, generation, parts)
    const pointerRevision = await commit(store, claim, current, generation, parts, now)
    if (diffWrites(current)) {
      // Against the plan's revisions, which the commit proved current: no read needed first.
      const written = await writeDiff(store, current, pointerRevision, now.toISOString())
      if (!written || !(await sealOwnFold(store, pointerRevision))) await finishFold(store)
    }
    return {committed: true, finishedEarlierFold}
  } finally {
    await claim.release()
  }
}

/**
 * Ends the fold this apply committed, without reading it back, when every one of its writes was
 * applied: each compared the row it replaced as of the plan, which the commit proved current, and
 * nothing else writes type, MAC or IP or MAC bindings while a fold is unfinished (node writers
 * finish it first; a state change is not part of the diff).
 */
async function sealOwnFold(store: EtcdStore, pointerRevision: string): Promise<boolean> {
  const k = store.keys
  return store.transaction().ifUnchanged(k.spec(), pointerRevision).ifUnchanged(k.specFold(), pointerRevision).delete(k.specFold()).commit()
}

/** The parts, a few per transaction (settings.specApply.txnBytes), under the claim's lease: invisible until the commit. */
async function stage(store: EtcdStore, claim: ApplyClaim, generation: string, parts: Buffer[]): Promise<void> {
  const k = store.keys
  for (let i = 0; i < parts.length;) {
    const txn = store.transaction()
    let bytes = 0
    do {
      txn.put(k.specPart(generation, i), parts[i], {lease: claim.leaseId})
      bytes += parts[i]!.length
      i++
    } while (i < parts.length && bytes + parts[i]!.length <= settings.specApply.txnBytes && txn.size < settings.etcdMaxTxnOps)
    // No compares: it applies or throws (a lease that ended makes etcd refuse it).
    await txn.commit()
  }
}

/** The one transaction that makes the plan current for every reader; resolves the pointer's new mod revision. */
async function commit(store: EtcdStore, claim: ApplyClaim, plan: ApplyPlan, generation: string, parts: Buffer[] | undefined, now: Date): Promise<string> {
  const k = store.keys
  const previous = plan.pointer
  const pointer: SpecPointer = {
    generation,
    parts: parts?.length ?? (previous?.parts as number),
    bytes: parts?.reduce((sum, p) => sum + p.length, 0) ?? (previous?.bytes as number),
    nodes: plan.spec.nodes.length,
    sha256: plan.specSha256,
    appliedAt: now.toISOString(),
  }
  const txn = guardPlan(store.transaction().ifCreatedAt(k.specApplyClaim(), claim.createRevision), store, plan)
  txn.put(k.spec(), pointer)
  if (parts) {
    for (let i = 0; i < parts.length; i++) txn.detachLease(k.specPart(generation, i))
    // Every other generation's parts: the one replaced, and any an earlier apply left.
    txn.deleteRange(k.specPartsPrefix(), k.specGenerationPrefix(generation)).deleteRange(rangeEnd(k.specGenerationPrefix(generation)), rangeEnd(k.specPartsPrefix()))
  }
  if (diffWrites(plan)) txn.put(k.specFold(), {generation})
  if (txn.size > settings.etcdMaxTxnOps) throw new Error(`config apply: a commit of ${txn.size} operations (${parts?.length} parts) passes etcd's ${settings.etcdMaxTxnOps}`)
  const {applied, revision} = await txn.commitAt()
  if (applied) return revision
  // A commit whose answer was lost and was retried finds its own pointer in place.
  if (!(await txn.isInPlace())) throw conflict()
  const view = await readClusterView(store, {spec: 'while-folding', nodes: 'none'})
  return view.family.pointer?.modRevision as string
}

/**
 * The state the plan was made against is unchanged: the pointer (no other apply committed), no
 * unfinished fold, and nothing under nodes/ or macs/ created or changed since the plan's read:
 * four compares however many nodes. A range compare does not see a deleted key; xcluster never
 * deletes a node record, and deletes a MAC binding only together with a write of its node's
 * record (node remove), which it does see.
 */
function guardPlan(txn: Transaction, store: EtcdStore, plan: ApplyPlan): Transaction {
  const k = store.keys
  if (plan.specRevision === null) txn.ifAbsent(k.spec())
  else txn.ifUnchanged(k.spec(), plan.specRevision)
  return txn.ifAbsent(k.specFold()).ifRangeUnchangedSince(k.nodesPrefix(), plan.revision).ifRangeUnchangedSince(k.macsPrefix(), plan.revision)
}

/** The first key after every key starting with `prefix`. */
const rangeEnd = (prefix: string): string => prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)

/** The same changes against the same spec (what the operator saw and confirmed). */
function samePlan(a: ApplyPlan, b: ApplyPlan): boolean {
  const essence = (p: ApplyPlan) =>
    canonicalJson({
      spec: p.specSha256,
      specChanged: p.specChanged,
      generation: p.generation,
      add: p.add,
      update: p.update.map((u) => ({name: u.name, changes: u.changes})),
      macs: p.macs.map(({mac, node, previous}) => ({mac, node, previous})),
    })
  return essence(a) === essence(b)
}

function conflict(): XclusterError {
  return new XclusterError('etcd changed while the apply was being planned: another writer changed the spec, a node or a MAC binding. Nothing was written.', {
    code: 'APPLY_CONFLICT',
    exit: ExitStatus.precondition,
    suggestion: 'Re-run config apply: it plans again against the current state.',
  })
}
