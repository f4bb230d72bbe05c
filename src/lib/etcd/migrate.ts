import {createHash} from 'node:crypto'

import {Range} from 'etcd3'

import {ExitStatus, preconditionError, usageError, XclusterError} from '../errors.js'
import {settings} from '../settings.js'
import type {EtcdStore} from './store.js'

/** One key and its raw value, as read at one revision. */
interface Entry {
  key: string
  value: Buffer
}

export interface ClusterState {
  /** Keys under the cluster prefix that belong to no lease, sorted by key. */
  entries: Entry[]
  /** Keys held under a lease (live election state): they die with their lease, so never copied. */
  leased: string[]
  revision: string
}

/** Count and SHA-256 of a cluster's keys and values: equal on both sides means the same state. */
export interface StateDigest {
  keys: number
  sha256: string
}

export interface MigrationReport {
  cluster: string
  dryRun: boolean
  /** Keys copied (or, with dryRun, that would be). */
  copied: number
  /** Keys the target already held with the same value (a re-run, or a copy cut short). */
  alreadyPresent: number
  /** Leased keys of the source left behind (they belong to the source's leases). */
  skippedLeased: number
  /** Transactions written, each within etcd's operation and request-size limits. */
  batches: number
  source: StateDigest
  target: StateDigest
}

/**
 * Copies every key under the cluster prefix from one etcd to another (bootstrap moves the admin
 * host's state into the cluster's etcd this way), then proves the copy by comparing both sides.
 *
 * - Reads the source at one revision, in pages.
 * - Refuses, writing nothing, when the target holds different data for the cluster: a key the
 *   source lacks or a value that differs. A target holding a subset with equal values (a copy
 *   cut short) is completed; an equal target is left alone.
 * - Writes in transactions of at most settings.etcdMaxTxnOps keys and
 *   settings.etcdMigrateBatchBytes bytes, each create-only on its keys, so nothing written to
 *   the target meanwhile is overwritten.
 * - Keys under a lease (live election seats) are not copied: their lease is the source's.
 * - Verifies: count and SHA-256 of keys and values equal on both sides, read afresh.
 *
 * Values never appear in the report or in errors (they include sealed keys).
 */
export async function migrateClusterState(from: EtcdStore, to: EtcdStore, options: {dryRun?: boolean} = {}): Promise<MigrationReport> {
  if (from.keys.cluster !== to.keys.cluster) {
    throw usageError(`Cannot copy cluster "${from.keys.cluster}" into cluster "${to.keys.cluster}": the key prefixes differ.`, 'Use the same --cluster for both sides.')
  }
  const source = await readClusterState(from)
  const target = await readClusterState(to)
  const have = new Map(target.entries.map((e) => [e.key, e.value]))
  const wanted = new Map(source.entries.map((e) => [e.key, e.value]))
  const differing = target.entries.filter((e) => !wanted.get(e.key)?.equals(e.value)).map((e) => e.key)
  if (differing.length > 0) {
    throw preconditionError(
      'MIGRATION_TARGET_DIFFERS',
      `The target etcd already holds different data for cluster "${from.keys.cluster}": ${differing.length} key(s) absent from the source or with another value (${differing.slice(0, 5).join(', ')}${differing.length > 5 ? ', ...' : ''}).`,
      'Nothing was copied. Check which side is right; if the target is a leftover of an earlier attempt, clear its cluster prefix and run again.',
      {differing: differing.length, examples: differing.slice(0, 20)},
    )
  }
  const missing = source.entries.filter((e) => !have.has(e.key))
  const batches = batch(missing)
  const report = (targetDigest: StateDigest, sourceDigest: StateDigest): MigrationReport => ({
    cluster: from.keys.cluster,
    dryRun: options.dryRun ?? false,
    copied: missing.length,
    alreadyPresent: source.entries.length - missing.length,
    skippedLeased: source.leased.length,
    batches: batches.length,
    source: sourceDigest,
    target: targetDigest,
  })
  if (options.dryRun) return report(digest(target.entries), digest(source.entries))

  for (const [i, entries] of batches.entries()) {
    const txn = to.transaction()
    for (const e of entries) txn.ifAbsent(e.key).put(e.key, e.value)
    if (!(await txn.commit())) {
      throw preconditionError(
        'MIGRATION_TARGET_CHANGED',
        `Something wrote to the target etcd during the copy (batch ${i + 1} of ${batches.length} found a key already there).`,
        'Stop whatever writes to the target cluster, then run again: the keys copied so far are kept and compared.',
      )
    }
  }

  const sourceAfter = digest((await readClusterState(from)).entries)
  const targetAfter = digest((await readClusterState(to)).entries)
  if (sourceAfter.keys !== targetAfter.keys || sourceAfter.sha256 !== targetAfter.sha256) {
    throw new XclusterError(`The copy of cluster "${from.keys.cluster}" does not match its source (${sourceAfter.keys} keys in the source, ${targetAfter.keys} in the target).`, {
      code: 'MIGRATION_VERIFY_FAILED',
      exit: ExitStatus.failure,
      suggestion: 'Something changed one side during the copy: stop writers to both etcds and run again.',
      details: {source: sourceAfter, target: targetAfter},
    })
  }
  return report(targetAfter, sourceAfter)
}

/** Every key under the store's cluster prefix at one revision, read in pages. */
export async function readClusterState(store: EtcdStore): Promise<ClusterState> {
  const {start, end} = Range.prefix(store.keys.prefix)
  const entries: Entry[] = []
  const leased: string[] = []
  let from: Buffer = start
  let revision: string | undefined
  for (;;) {
    const res = await store.call('read cluster state', (c) => c.kv.range({key: from, range_end: end, limit: settings.etcdMigratePageKeys, ...(revision ? {revision} : {})}))
    revision ??= String(res.header.revision)
    for (const kv of res.kvs) {
      const key = kv.key.toString()
      if (String(kv.lease ?? '0') !== '0') leased.push(key)
      else entries.push({key, value: Buffer.from(kv.value)})
    }
    const last = res.kvs.at(-1)
    if (!res.more || !last) break
    from = Buffer.concat([last.key, Buffer.from([0])])
  }
  return {entries, leased, revision: revision ?? '0'}
}

/** Count and SHA-256 over the keys and values in key order (each length-prefixed: no ambiguity). */
export function digest(entries: Entry[]): StateDigest {
  const hash = createHash('sha256')
  const sorted = [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)))
  const length = (n: number) => {
    const b = Buffer.alloc(8)
    b.writeBigUInt64BE(BigInt(n))
    return b
  }
  for (const e of sorted) {
    const key = Buffer.from(e.key)
    hash.update(length(key.length)).update(key).update(length(e.value.length)).update(e.value)
  }
  return {keys: sorted.length, sha256: hash.digest('hex')}
}

/** Splits entries into transactions within etcd's operation count and request size limits. */
function batch(entries: Entry[]): Entry[][] {
  const batches: Entry[][] = []
  let current: Entry[] = []
  let bytes = 0
  for (const e of entries) {
    const size = Buffer.byteLength(e.key) * 2 + e.value.length
    if (current.length > 0 && (current.length >= settings.etcdMaxTxnOps || bytes + size > settings.etcdMigrateBatchBytes)) {
      batches.push(current)
      current = []
      bytes = 0
    }
    current.push(e)
    bytes += size
  }
  if (current.length > 0) batches.push(current)
  return batches
}
