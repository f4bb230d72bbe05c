import type {KeySchema} from '../etcd/keys.js'
import type {EtcdStore, Transaction} from '../etcd/store.js'

/** A write to shared state made on behalf of a leader. */
export type GuardedOp = {kind: 'put'; key: string; value: unknown} | {kind: 'delete'; key: string}

/**
 * Applies `ops` only while `token` is still the service's leadership: one etcd transaction that
 * compares the leader key's create revision with the token. A leader that lost its lease (and
 * any newer leader's key) makes the compare fail, so nothing is written. Resolves whether the
 * write was applied.
 */
export async function guardedWrite(store: EtcdStore, service: string, token: string, ops: GuardedOp[]): Promise<boolean> {
  const txn = store.transaction()
  leaderFence(store.keys, service, token)(txn)
  for (const op of ops) {
    if (op.kind === 'put') txn.put(op.key, op.value)
    else txn.delete(op.key)
  }
  return txn.commit()
}

/**
 * The fencing compare for a transaction made as `service`'s leader: it holds only while `token`
 * is the leader key's create revision. Without a token (leadership just lost) it is a compare no
 * key can satisfy, so the transaction is refused.
 */
export function leaderFence(keys: KeySchema, service: string, token: string | undefined): (txn: Transaction) => void {
  const leaderKey = keys.electionLeader(service)
  return (txn) => void txn.ifCreatedAt(leaderKey, token ?? '-1')
}
