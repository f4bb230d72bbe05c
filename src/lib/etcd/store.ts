import {readFileSync} from 'node:fs'

import {
  ComparatorBuilder,
  Etcd3,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  isRecoverableError,
  Range,
  type IKeyValue,
  type IOptions,
} from 'etcd3'

import {NSApplicator} from 'etcd3/lib/util.js'
import {circuitBreaker, ConsecutiveBreaker, handleWhen, retry} from 'cockatiel'

import {ExitStatus, XclusterError} from '../errors.js'
import {settings} from '../settings.js'
import {KeySchema} from './keys.js'

export interface EtcdConnection {
  endpoints: string[]
  cluster: string
  ca?: string
  cert?: string
  key?: string
}

/** A JSON value read from etcd with the revisions a transaction can compare against. */
export interface Versioned<T> {
  key: string
  value: T
  modRevision: string
  createRevision: string
}

/** A key as stored, its value not interpreted: what paged reads and watches hand out. */
export interface StoredKv {
  key: string
  value: Buffer
  modRevision: string
  createRevision: string
}

export const storedKv = (kv: IKeyValue): StoredKv => ({
  key: kv.key.toString(),
  value: kv.value,
  modRevision: String(kv.mod_revision),
  createRevision: String(kv.create_revision),
})

/** etcd refused a read at a revision it has compacted away: start the read again. */
export const isCompacted = (err: unknown): boolean => /compacted/i.test(String((err as Error)?.message ?? err))

type Compare =
  | {kind: 'absent'; key: string}
  | {kind: 'modRevision'; key: string; revision: string}
  | {kind: 'value'; key: string; value: unknown}
  | {kind: 'createRevision'; key: string; revision: string}
type Op = {kind: 'put'; key: string; value: unknown} | {kind: 'delete'; key: string}

/**
 * All-or-nothing writes: every compare must hold or no operation is applied.
 * Built by {@link EtcdStore.transaction}.
 */
export class Transaction {
  private readonly compares: Compare[] = []
  private readonly ops: Op[] = []

  constructor(private readonly store: EtcdStore) {}

  /** Succeeds only if the key does not exist (create-only). */
  ifAbsent(key: string): this {
    this.compares.push({kind: 'absent', key})
    return this
  }

  /** Succeeds only if nobody changed the key since it was read at `revision`. */
  ifUnchanged(key: string, revision: string): this {
    this.compares.push({kind: 'modRevision', key, revision})
    return this
  }

  /** Succeeds only if the key was created at `revision` (a leader key: its fencing token). */
  ifCreatedAt(key: string, revision: string): this {
    this.compares.push({kind: 'createRevision', key, revision})
    return this
  }

  ifValue(key: string, value: unknown): this {
    this.compares.push({kind: 'value', key, value})
    return this
  }

  put(key: string, value: unknown): this {
    this.ops.push({kind: 'put', key, value})
    return this
  }

  delete(key: string): this {
    this.ops.push({kind: 'delete', key})
    return this
  }

  get size(): number {
    return this.ops.length
  }

  /** etcd limits compares and operations separately (each to --max-txn-ops). */
  get compareCount(): number {
    return this.compares.length
  }

  /** Commits; resolves `true` when applied, `false` when a compare failed (nothing written). */
  async commit(): Promise<boolean> {
    return (await this.commitAt()).applied
  }

  /**
   * Commits and also returns the revision the transaction ran at: when applied, the mod revision
   * of every key it wrote (lets a cache keep revisions for later compares without re-reading).
   */
  async commitAt(): Promise<{applied: boolean; revision: string}> {
    return this.store.call('transaction', async (client) => {
      let txn = new ComparatorBuilder(client.kv, NSApplicator.default)
      for (const c of this.compares) {
        if (c.kind === 'absent') txn = txn.and(c.key, 'Version', '==', 0)
        else if (c.kind === 'modRevision') txn = txn.and(c.key, 'Mod', '==', c.revision)
        else if (c.kind === 'createRevision') txn = txn.and(c.key, 'Create', '==', c.revision)
        else txn = txn.and(c.key, 'Value', '==', encode(c.value))
      }
      const ops = this.ops.map((o) => (o.kind === 'put' ? client.put(o.key).value(encode(o.value)) : client.delete().key(o.key)))
      const res = await txn.then(...ops).commit()
      return {applied: Boolean(res.succeeded), revision: String(res.header.revision)}
    })
  }
}

const encode = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value))

function isUnavailable(err: unknown): boolean {
  if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError) return true
  const message = String((err as Error)?.message ?? err)
  return /UNAVAILABLE|RST_STREAM|ECONNREFUSED|No connection established|circuit breaker|Broken circuit|deadline/i.test(message)
}

/**
 * Typed access to the cluster's state in etcd. Wraps the (unmaintained) etcd3 client: retries
 * calls that fail with gRPC UNAVAILABLE / RST_STREAM while a member restarts or an election runs,
 * and turns an etcd that stays unreachable into one clear error naming the endpoints.
 */
export class EtcdStore {
  readonly keys: KeySchema
  readonly client: Etcd3

  constructor(readonly connection: EtcdConnection) {
    this.keys = new KeySchema(connection.cluster)
    const tls = connection.ca || connection.cert
    const options: IOptions = {
      hosts: connection.endpoints.map((e) => (/^[a-z]+:\/\//.test(e) ? e : `${tls ? 'https' : 'http'}://${e}`)),
      dialTimeout: settings.etcdCallTimeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : {deadline: Date.now() + settings.etcdCallTimeoutMs}),
      // etcd3's default breaker shuts a host out for 5 s after three failures, which turns a
      // member restart of a few hundred ms into seconds of errors. Skip a failing member only
      // briefly, try each member once per call, and let call() below do the patient retrying.
      faultHandling: {
        host: () =>
          circuitBreaker(handleWhen(isRecoverableError), {
            halfOpenAfter: settings.etcdMemberBackoffMs,
            breaker: new ConsecutiveBreaker(2),
          }),
        global: retry(handleWhen(isRecoverableError), {maxAttempts: Math.max(0, connection.endpoints.length - 1)}),
      },
    }
    if (tls) {
      options.credentials = {
        rootCertificate: connection.ca ? readFileSync(connection.ca) : Buffer.alloc(0),
        ...(connection.cert && connection.key
          ? {certChain: readFileSync(connection.cert), privateKey: readFileSync(connection.key)}
          : {}),
      }
    }
    this.client = new Etcd3(options)
  }

  /**
   * Runs one etcd call, retrying while etcd is unavailable (a member restarting, a leader
   * election) for up to `settings.etcdUnavailableRetryMs`.
   */
  async call<R>(what: string, fn: (client: Etcd3) => Promise<R>): Promise<R> {
    const deadline = Date.now() + settings.etcdUnavailableRetryMs
    let delay = 50
    for (;;) {
      try {
        return await fn(this.client)
      } catch (err) {
        if (!isUnavailable(err)) throw err
        if (Date.now() + delay > deadline) throw this.unreachable(what, err)
        await new Promise((r) => setTimeout(r, delay))
        delay = Math.min(delay * 2, 500)
      }
    }
  }

  private unreachable(what: string, err: unknown): XclusterError {
    const endpoints = this.connection.endpoints.join(', ')
    return new XclusterError(`etcd is unreachable at ${endpoints} (during ${what}).`, {
      code: 'ETCD_UNREACHABLE',
      exit: ExitStatus.precondition,
      suggestion: 'Check that etcd is running and reachable, or point --etcd (or XCLUSTER_ETCD) at a live endpoint.',
      details: {endpoints: this.connection.endpoints, reason: String((err as Error)?.message ?? err)},
      cause: err,
    })
  }

  async getJson<T>(key: string): Promise<Versioned<T> | undefined> {
    const res = await this.call('get', (c) => c.get(key).exec())
    const kv = res.kvs[0]
    if (!kv) return undefined
    return {
      key,
      value: JSON.parse(kv.value.toString()) as T,
      modRevision: String(kv.mod_revision),
      createRevision: String(kv.create_revision),
    }
  }

  /** Every key under `prefix` in key order, as of one revision, read page by page. */
  async listJson<T>(prefix: string): Promise<Versioned<T>[]> {
    const rows: Versioned<T>[] = []
    await this.readPrefixes([prefix], (page) => {
      for (const kv of page) rows.push({key: kv.key, value: JSON.parse(kv.value.toString()) as T, modRevision: kv.modRevision, createRevision: kv.createRevision})
    })
    return rows
  }

  /**
   * Reads every key under each prefix, in key order, all as of one revision (returned), in pages
   * of `settings.etcdPageSize` keys: one range response must stay under the gRPC message limit
   * (4 MiB in the client), whatever the prefix holds. A page refused because etcd compacted the
   * revision meanwhile restarts the whole read (`onRestart` lets the caller drop what it got).
   */
  async readPrefixes(prefixes: string[], onPage: (kvs: StoredKv[]) => void, onRestart: () => void = () => {}): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        let revision: string | undefined
        for (const prefix of prefixes) revision = await this.readPages(prefix, revision, onPage)
        return revision ?? '0'
      } catch (err) {
        if (!isCompacted(err) || attempt >= 3) throw err
        onRestart()
      }
    }
  }

  private async readPages(prefix: string, at: string | undefined, onPage: (kvs: StoredKv[]) => void): Promise<string> {
    const end = Range.prefix(prefix).end
    let from = Buffer.from(prefix)
    let revision = at
    for (;;) {
      const res = await this.call('list', (c) => {
        const range = c.getAll().inRange(new Range(from, end)).sort('Key', 'Ascend').limit(settings.etcdPageSize)
        return (revision ? range.revision(revision) : range).exec()
      })
      revision ??= String(res.header.revision)
      onPage(res.kvs.map(storedKv))
      const last = res.kvs.at(-1)
      if (!res.more || !last) return revision
      from = Buffer.concat([last.key, Buffer.from([0])])
    }
  }

  async put(key: string, value: unknown): Promise<void> {
    await this.call('put', (c) => c.put(key).value(encode(value)).exec())
  }

  async delete(key: string): Promise<void> {
    await this.call('delete', (c) => c.delete().key(key).exec())
  }

  /** Every key and raw value under the cluster's prefix: used to prove a refused write changed nothing. */
  async snapshot(): Promise<Record<string, string>> {
    const res = await this.call('snapshot', (c) => c.getAll().prefix(this.keys.prefix).strings())
    return res
  }

  transaction(): Transaction {
    return new Transaction(this)
  }

  async close(): Promise<void> {
    this.client.close()
  }
}
