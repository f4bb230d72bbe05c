import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore, Transaction} from '../etcd/store.js'
import {readForWrite} from '../spec/fold.js'
import type {NodeRecord, NodeState, StateChange} from './record.js'

/** Which state may follow which. Everything else is refused. */
export const TRANSITIONS: Readonly<Record<NodeState, readonly NodeState[]>> = {
  registered: ['provisioning', 'removed', 'failed'],
  discovered: ['registered', 'provisioning', 'removed'],
  provisioning: ['ready', 'failed', 'provisioning'],
  ready: ['provisioning', 'draining', 'failed'],
  draining: ['drained', 'failed', 'ready', 'draining'],
  // drained → drained records why a node stays drained (a rolling update that failed on it).
  drained: ['ready', 'provisioning', 'removed', 'drained'],
  failed: ['provisioning', 'draining', 'removed', 'ready'],
  removed: [],
}

/** Entries kept per node: enough to explain the recent past without growing without bound. */
export const HISTORY_LIMIT = 50

export function canTransition(from: NodeState, to: NodeState): boolean {
  return TRANSITIONS[from].includes(to)
}

export interface TransitionOptions {
  /** The states the caller expects the node to be in (a stricter guard than the table). */
  from?: readonly NodeState[]
  reason?: string
  by?: string
  /** A further compare for the transaction (a leader's fencing token): refused, nothing is written. */
  fence?: (txn: Transaction) => void
}

/**
 * Moves a node to a new state in one etcd transaction that compares the record's revision, so
 * two operators acting on the same node at once cannot both succeed.
 */
export async function transitionNode(store: EtcdStore, name: string, to: NodeState, options: TransitionOptions = {}): Promise<NodeRecord> {
  const key = store.keys.node(name)
  const found = (await readForWrite(store, {name})).stored.nodes.get(name)
  if (!found) {
    throw new XclusterError(`No node named ${name}.`, {
      code: 'NODE_NOT_FOUND',
      exit: ExitStatus.precondition,
      suggestion: 'See the registered nodes with: xcluster node list',
    })
  }
  const node = found.value
  if ((options.from && !options.from.includes(node.state)) || !canTransition(node.state, to)) {
    throw new XclusterError(`Node ${name} is ${node.state}; it cannot become ${to}${options.from ? ` (this needs it to be ${options.from.join(' or ')})` : ''}.`, {
      code: 'NODE_WRONG_STATE',
      exit: ExitStatus.precondition,
      suggestion: `Check it with: xcluster node show ${name}`,
      details: {node: name, state: node.state, wanted: to},
    })
  }
  const now = new Date().toISOString()
  const change: StateChange = {at: now, from: node.state, to, by: options.by ?? process.env.SUDO_USER ?? process.env.USER ?? 'unknown', ...(options.reason ? {reason: options.reason} : {})}
  const next: NodeRecord = {
    ...node,
    state: to,
    updatedAt: now,
    history: [...(node.history ?? []), change].slice(-HISTORY_LIMIT),
  }
  if (options.reason && (to === 'failed' || to === 'draining' || to === 'drained')) next.reason = options.reason
  else delete next.reason
  // A state change only: an apply committed meanwhile folds over it (its fold compares the record's revision).
  const txn = store
    .transaction()
    .ifUnchanged(key, found.modRevision as string)
    .put(key, next)
  options.fence?.(txn)
  const ok = await txn.commit()
  if (!ok) {
    throw new XclusterError(`Node ${name} changed while it was being moved to ${to} (another operator?); nothing was written.`, {
      code: 'NODE_CONCURRENT_CHANGE',
      exit: ExitStatus.precondition,
      suggestion: `Check it with: xcluster node show ${name}, then re-run.`,
    })
  }
  return next
}
