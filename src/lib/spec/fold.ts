import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore, Transaction} from '../etcd/store.js'
import type {MacBinding} from '../nodes/record.js'
import {settings} from '../settings.js'
import {diffWithSpec, diffWrites, newNodeRecord, updatedNodeRecord, type SpecDiff} from './resolve.js'
import {readClusterView, type ClusterView, type ClusterViewOptions} from './view.js'

/**
 * The fold: once `spec` names a new generation, its node records and MAC bindings are written
 * into nodes/ and macs/ in bounded transactions. Readers do not wait for it: while `spec/fold`
 * exists they overlay the spec themselves (src/lib/spec/view.ts), and every fold write only
 * turns an overlaid row into a stored one, so what they see does not change.
 */

/** One key's write, with the compare that it is still what the diff was made against. */
interface FoldWrite {
  bytes: number
  addTo(txn: Transaction): void
}

/**
 * Writes a diff in transactions of at most settings.specApply.foldBatchKeys keys and
 * settings.specApply.txnBytes bytes, a few at once. Every transaction also compares the spec
 * pointer, so no write lands after another generation became current. Resolves false when some
 * transaction was refused (someone else wrote meanwhile): the caller reads again.
 */
export async function writeDiff(store: EtcdStore, diff: SpecDiff, pointerRevision: string, timestamp: string): Promise<boolean> {
  const k = store.keys
  const writes: FoldWrite[] = []
  const guard = (txn: Transaction, key: string, modRevision: string | null) => (modRevision === null ? txn.ifAbsent(key) : txn.ifUnchanged(key, modRevision))
  for (const n of diff.add) {
    const key = k.node(n.name)
    const value = newNodeRecord(n, timestamp)
    writes.push({bytes: JSON.stringify(value).length + key.length, addTo: (txn) => guard(txn, key, null).put(key, value)})
  }
  for (const u of diff.update) {
    const key = k.node(u.name)
    const value = updatedNodeRecord(u.record, u.node, timestamp)
    writes.push({bytes: JSON.stringify(value).length + key.length, addTo: (txn) => guard(txn, key, u.modRevision).put(key, value)})
  }
  for (const m of diff.macs) {
    const key = k.mac(m.mac)
    writes.push({
      bytes: key.length + 64,
      addTo: (txn) => (m.node === null ? guard(txn, key, m.modRevision).delete(key) : guard(txn, key, m.modRevision).put(key, {node: m.node} satisfies MacBinding)),
    })
  }
  const batches: FoldWrite[][] = []
  let size = 0
  for (const w of writes) {
    const last = batches.at(-1)
    if (!last || last.length >= settings.specApply.foldBatchKeys || size + w.bytes > settings.specApply.txnBytes) {
      batches.push([w])
      size = w.bytes
    } else {
      last.push(w)
      size += w.bytes
    }
  }
  let next = 0
  let refused = false
  await Promise.all(
    Array.from({length: Math.min(settings.specApply.foldConcurrency, batches.length)}, async () => {
      while (next < batches.length && !refused) {
        const batch = batches[next++]!
        const txn = store.transaction().ifUnchanged(k.spec(), pointerRevision)
        for (const w of batch) w.addTo(txn)
        if (!(await txn.commit())) refused = true
      }
    }),
  )
  return !refused
}

/**
 * Finishes the current generation's fold, whoever started it (the apply that committed it, or,
 * when that apply died, the next apply or any writer of nodes or MACs): reads the registry,
 * writes what still differs from the spec, and when a read finds nothing left, removes
 * `spec/fold` in a transaction that proves nothing under nodes/ or macs/ moved since that read.
 * Resolves whether a fold was unfinished.
 */
export async function finishFold(store: EtcdStore): Promise<boolean> {
  const k = store.keys
  let unfinished = false
  for (let attempt = 0; attempt < settings.specApply.foldAttempts; attempt++) {
    const view = await readClusterView(store, {spec: 'always', nodes: 'all', macs: true})
    const {pointer, fold} = view.family
    if (!fold) return unfinished
    unfinished = true
    if (!view.spec || !pointer?.value) {
      // A fold marker without a generation to fold: nothing to write; drop it.
      await store.transaction().ifUnchanged(k.specFold(), fold.modRevision).delete(k.specFold()).commit()
      continue
    }
    const diff = diffWithSpec(view.spec, view.stored)
    if (diffWrites(diff)) {
      await writeDiff(store, diff, pointer.modRevision, pointer.value.appliedAt)
      continue
    }
    const sealed = await store
      .transaction()
      .ifUnchanged(k.spec(), pointer.modRevision)
      .ifUnchanged(k.specFold(), fold.modRevision)
      .ifRangeUnchangedSince(k.nodesPrefix(), view.revision)
      .ifRangeUnchangedSince(k.macsPrefix(), view.revision)
      .delete(k.specFold())
      .commit()
    if (sealed) return true
  }
  throw new XclusterError(`The node records of the current spec could not be written: etcd kept changing under them (${settings.specApply.foldAttempts} rounds).`, {
    code: 'SPEC_FOLD_UNFINISHED',
    exit: ExitStatus.failure,
    suggestion: 'Readers already see the new spec. Re-run config apply (or any node command) to finish writing it.',
  })
}

/**
 * The registry for a writer of node records or MAC bindings: an unfinished fold is finished first,
 * so the writer changes stored rows, never an overlay it cannot write over. A writer that moves
 * MAC bindings compares the pointer too (guardSpecPointer): an apply committed in between would
 * otherwise overlay its write.
 */
export async function readForWrite(store: EtcdStore, nodes: ClusterViewOptions['nodes']): Promise<ClusterView> {
  const view = await readClusterView(store, {spec: 'while-folding', nodes})
  if (!view.folding) return view
  await finishFold(store)
  return readClusterView(store, {spec: 'while-folding', nodes})
}

/** Adds the compare that the spec pointer is still the one `view` read. */
export function guardSpecPointer(txn: Transaction, store: EtcdStore, view: ClusterView): Transaction {
  const pointer = view.family.pointer
  return pointer ? txn.ifUnchanged(store.keys.spec(), pointer.modRevision) : txn.ifAbsent(store.keys.spec())
}
