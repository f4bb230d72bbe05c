import {hostname} from 'node:os'

import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore, HeldLease, Transaction} from '../etcd/store.js'
import {settings} from '../settings.js'
import type {ApplyClaimRecord} from './generation.js'

/**
 * One config apply at a time stages and commits: the claim is a create-only key under the
 * applying process's own lease, and the parts it stages live under that lease too, so an apply
 * that dies leaves nothing behind for long: etcd drops its claim and its staged parts when the
 * lease runs out (settings.specApply.claimTtlSeconds), and at once when the next apply on the same
 * host finds its process gone.
 */
export class ApplyClaim {
  private constructor(
    private readonly lease: HeldLease,
    /** The claim key's create revision: the commit compares it (the claim is still ours). */
    readonly createRevision: string,
  ) {}

  get leaseId(): string {
    return this.lease.id
  }

  /**
   * Takes the claim. `guard` adds the plan's compares to the same transaction, so an apply whose
   * plan is already stale, or that finds another apply running, writes nothing at all.
   */
  static async take(store: EtcdStore, generation: string, guard: (txn: Transaction) => void, stale: () => XclusterError): Promise<ApplyClaim> {
    const key = store.keys.specApplyClaim()
    const record: ApplyClaimRecord = {generation, by: process.env.SUDO_USER ?? process.env.USER ?? 'unknown', host: hostname(), pid: process.pid, startedAt: new Date().toISOString()}
    const lease = await store.grantLease(settings.specApply.claimTtlSeconds)
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const txn = store.transaction().ifAbsent(key)
        guard(txn)
        const {applied, revision} = await txn.put(key, record, {lease: lease.id}).commitAt()
        if (applied) return new ApplyClaim(lease, revision)
        const [held] = (await store.transaction().get(key).commitAt()).reads[0] ?? []
        if (!held) throw stale()
        // Our own claim: the answer of its commit was lost and the retry found it in place.
        if (held.lease === lease.id) return new ApplyClaim(lease, held.createRevision)
        const holder = held.value as ApplyClaimRecord
        if (holder.host === record.host && !processAlive(holder.pid)) {
          // Its process is gone: its lease would only keep others waiting for the TTL.
          await store.revokeLease(held.lease)
          continue
        }
        throw new XclusterError(`Another config apply is running: by ${holder.by} on ${holder.host} (pid ${holder.pid}) since ${holder.startedAt}. Nothing was written.`, {
          code: 'APPLY_CONFLICT',
          exit: ExitStatus.precondition,
          suggestion: `Wait for it to finish, then re-run config apply (if that process died, its claim ends within ${settings.specApply.claimTtlSeconds} s).`,
          details: {claim: holder},
        })
      }
    } catch (err) {
      await lease.revoke().catch(() => undefined)
      throw err
    }
    await lease.revoke().catch(() => undefined)
    throw new XclusterError('Another config apply took the claim at the same moment. Nothing was written.', {
      code: 'APPLY_CONFLICT',
      exit: ExitStatus.precondition,
      suggestion: 'Re-run config apply: it plans again against the current state.',
    })
  }

  /** Ends the lease: the claim and any part still staged under it go with it. */
  async release(): Promise<void> {
    await this.lease.revoke().catch(() => undefined)
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
