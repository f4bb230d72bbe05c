import {readCephCluster} from '../ceph/membership.js'
import {ExitStatus, preconditionError, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {commandLine} from '../output/command-line.js'
import {guardSpecPointer, readForWrite} from '../spec/fold.js'
import {HISTORY_LIMIT} from './lifecycle.js'
import type {NodeRecord} from './record.js'

export interface RemoveResult {
  node: string
  previousState: string
  forced: boolean
  /** True when nothing was written (--dry-run): the rest says what a real run would do. */
  dryRun: boolean
}

/** A checked removal, not yet written: what `node remove` asks about (and --dry-run shows). */
export interface RemovalPlan {
  result: RemoveResult
  /** Whether the node's MAC binding is freed with it (only if it still points at the node). */
  freesMac: string | null
  commit(): Promise<RemoveResult>
}

/**
 * Marks a node removed and frees its MAC and host key pin, in one transaction checked against the
 * record's revision. The record stays (state `removed`, with its history) for the audit trail;
 * the name can be registered again.
 */
export async function removeNode(store: EtcdStore, name: string, options: {force: boolean; by?: string}): Promise<RemoveResult> {
  return (await planRemoval(store, name, options)).commit()
}

/**
 * Checks a removal (the node exists and is drained, or --force) and reads what it would write.
 * Nothing is written until `commit()`, which fails if the node or its MAC binding moved since.
 */
export async function planRemoval(store: EtcdStore, name: string, options: {force: boolean; by?: string}): Promise<RemovalPlan> {
  const key = store.keys.node(name)
  const view = await readForWrite(store, {name})
  const found = view.stored.nodes.get(name)
  if (!found?.modRevision || found.value.state === 'removed') {
    throw new XclusterError(`No node named ${name}${found ? ' (it was already removed)' : ''}.`, {
      code: 'NODE_NOT_FOUND',
      exit: ExitStatus.precondition,
      suggestion: 'List the nodes with: xcluster node list',
    })
  }
  const node = found.value
  if (node.state !== 'drained' && !options.force) {
    throw new XclusterError(`Node ${name} is ${node.state}, not drained; removing it now could take leaderships, VIPs or data with it.`, {
      code: 'NODE_NOT_DRAINED',
      exit: ExitStatus.precondition,
      suggestion: `Drain it first: xcluster node drain ${name} (or remove it anyway with --force).`,
    })
  }
  // Removed with its monitor, the node would still count in Ceph's monmap: one fewer for a majority.
  if (!options.force && (await readCephCluster(store))?.mons.includes(name)) {
    throw preconditionError('NODE_RUNS_CEPH_MONITOR', `${name} runs a Ceph monitor; take it out of Ceph first.`, `${commandLine(['ceph', 'leave', name])} (or remove it anyway with --force)`, {
      node: name,
    })
  }
  const now = new Date().toISOString()
  const removed: NodeRecord = {
    ...node,
    state: 'removed',
    updatedAt: now,
    history: [
      ...(node.history ?? []),
      {at: now, from: node.state, to: 'removed' as const, by: options.by ?? process.env.SUDO_USER ?? process.env.USER ?? 'unknown', ...(options.force ? {reason: 'forced'} : {})},
    ].slice(-HISTORY_LIMIT),
  }
  const macKey = store.keys.mac(node.mac)
  const binding = await store.getJson<{node: string}>(macKey)
  const result: RemoveResult = {node: name, previousState: node.state, forced: options.force && node.state !== 'drained', dryRun: true}
  return {
    result,
    freesMac: binding?.value.node === name ? node.mac : null,
    async commit() {
      // The pointer too: an apply committed meanwhile would bind the MAC again in its overlay.
      const txn = guardSpecPointer(store.transaction(), store, view)
        .ifUnchanged(key, found.modRevision as string)
        .put(key, removed)
        .delete(store.keys.hostKey(name))
      // Free the MAC only if it still points at this node; its enlistment goes with it (a machine
      // that comes back under that MAC enlists afresh, as its keys may have changed).
      if (binding?.value.node === name) txn.ifUnchanged(macKey, binding.modRevision).delete(macKey).delete(store.keys.enlisted(node.mac))
      if (!(await txn.commit())) {
        throw new XclusterError(`Node ${name} changed while it was being removed; nothing was written.`, {
          code: 'NODE_CONCURRENT_CHANGE',
          exit: ExitStatus.precondition,
          suggestion: `Check it with: xcluster node show ${name}, then re-run.`,
        })
      }
      return {...result, dryRun: false}
    },
  }
}
