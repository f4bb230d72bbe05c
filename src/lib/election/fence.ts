import type {EtcdStore} from '../etcd/store.js'

/** A write to shared state made on behalf of a leader. */
export type GuardedOp = {kind: 'put'; key: string; value: unknown} | {kind: 'delete'; key: string}

/**
 * Applies `ops` only while `token` is still the service's leadership: one etcd transaction that
 * compares the leader key's create revision with the token. A leader that lost its lease (and
 * any newer leader's key) makes the compare fail, so nothing is written. Resolves whether the
 * write was applied.
 */
export async function guardedWrite(store: EtcdStore, service: string, token: string, ops: GuardedOp[]): Promise<boolean> {
  const txn = store.transaction().ifCreatedAt(store.keys.electionLeader(service), token)
  for (const op of ops) {
    if (op.kind === 'put') txn.put(op.key, op.value)
    else txn.delete(op.key)
  }
  return txn.commit()
}
