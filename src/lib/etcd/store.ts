import {X509Certificate} from 'node:crypto'
import {readFileSync} from 'node:fs'

import {Etcd3, EtcdPermissionDeniedError, GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError, Range, type IKeyValue, type IOptions} from 'etcd3'

import {handleWhen, noop, retry} from 'cockatiel'

import {ExitStatus, XclusterError} from '../errors.js'
import {settings} from '../settings.js'
import {KeySchema} from './keys.js'
import {LeaseKeeper, revokeLease} from './lease-keeper.js'
import {MemberGate, MemberSkippedError} from './member-gate.js'
import {decode, watchPrefix, type PrefixWatch, type PrefixWatchHandlers} from './watch.js'

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
  /** The lease the key lives under ('0': none). */
  lease: string
}

export const storedKv = (kv: IKeyValue | WireKv): StoredKv => ({
  key: kv.key.toString(),
  value: kv.value,
  modRevision: String(kv.mod_revision),
  createRevision: String(kv.create_revision),
  lease: String(kv.lease ?? '0'),
})

/** What a consistent read covers: every key under a prefix, or one key. */
export type KeyRange = {prefix: string} | {key: string}

/** Several key ranges read as of one revision (see EtcdStore.readRanges). */
export interface RangeRead {
  ranges: KeyRange[]
  /** Read these too, in the same request and revision, only while `key` exists. */
  whilePresent?: {key: string; ranges: KeyRange[]}
}

export interface RangeReadResult {
  revision: string
  /** The keys of each range, in key order: `ranges` first, then (when present) `whilePresent.ranges`. */
  kvs: StoredKv[][]
  /** Whether `whilePresent.key` existed (its ranges were read). */
  present: boolean
}

/** etcd refused a read at a revision it has compacted away: start the read again. */
export const isCompacted = (err: unknown): boolean => /compacted/i.test(String((err as Error)?.message ?? err))

type Compare =
  | {kind: 'absent'; key: string}
  | {kind: 'modRevision'; key: string; revision: string}
  | {kind: 'value'; key: string; value: unknown}
  | {kind: 'createRevision'; key: string; revision: string}
  | {kind: 'rangeUnchanged'; prefix: string; revision: string}
type Op =
  | {kind: 'put'; key: string; value: unknown; lease?: string}
  | {kind: 'detachLease'; key: string}
  | {kind: 'delete'; key: string}
  | {kind: 'deleteRange'; from: string; to: string}
  | {kind: 'get'; key: string}
  | {kind: 'getPrefix'; prefix: string; keysOnly: boolean}

/** A key as a transaction read it: the JSON value, its revisions and the lease it lives under ('0': none). */
export interface RawKv {
  key: string
  value: unknown
  createRevision: string
  modRevision: string
  lease: string
}

export interface CommitOptions {
  /**
   * One attempt with this deadline instead of retrying while etcd is unavailable: for a daemon
   * whose own clock matters more than any one call (an election step, a lease-bound write).
   */
  timeoutMs?: number
}

export interface CommitResult {
  applied: boolean
  /** The revision the transaction ran at: when applied, the mod revision of every key it wrote. */
  revision: string
  /** What each get/getPrefix returned, in the order they were added (applied transactions only). */
  reads: RawKv[][]
}

type TxnRequest = Parameters<Etcd3['kv']['txn']>[0]
type RequestOp = NonNullable<TxnRequest['success']>[number]
type RequestCompare = NonNullable<TxnRequest['compare']>[number]

/**
 * All-or-nothing: every compare must hold or no operation is applied (and nothing is read).
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

  /**
   * Succeeds only if no key under `prefix` was created or changed after `revision` (one compare
   * however many keys: etcd compares every key in the range). A key deleted since is not seen.
   */
  ifRangeUnchangedSince(prefix: string, revision: string): this {
    this.compares.push({kind: 'rangeUnchanged', prefix, revision})
    return this
  }

  /** Writes a JSON value; under `lease`, the key goes when the lease ends (see EtcdStore.grantLease). */
  put(key: string, value: unknown, options: {lease?: string} = {}): this {
    this.ops.push({kind: 'put', key, value, ...(options.lease ? {lease: options.lease} : {})})
    return this
  }

  /** Keeps the key's value and takes it off its lease: it stays when the lease ends. */
  detachLease(key: string): this {
    this.ops.push({kind: 'detachLease', key})
    return this
  }

  delete(key: string): this {
    this.ops.push({kind: 'delete', key})
    return this
  }

  /** Deletes every key in [from, to): one operation. */
  deleteRange(from: string, to: string): this {
    this.ops.push({kind: 'deleteRange', from, to})
    return this
  }

  /** Reads a key in the same revision as the writes (see CommitResult.reads). */
  get(key: string): this {
    this.ops.push({kind: 'get', key})
    return this
  }

  getPrefix(prefix: string, options: {keysOnly?: boolean} = {}): this {
    this.ops.push({kind: 'getPrefix', prefix, keysOnly: options.keysOnly ?? false})
    return this
  }

  /** Operations that write (etcd's --max-txn-ops counts every operation). */
  get size(): number {
    return this.ops.length
  }

  /** etcd limits compares and operations separately (each to --max-txn-ops). */
  get compareCount(): number {
    return this.compares.length
  }

  /** Commits; resolves `true` when applied, `false` when a compare failed (nothing written). */
  async commit(options: CommitOptions = {}): Promise<boolean> {
    return (await this.commitAt(options)).applied
  }

  /** Commits and returns the revision it ran at and what it read. */
  async commitAt(options: CommitOptions = {}): Promise<CommitResult> {
    const request: TxnRequest = {compare: this.compares.map(toCompare), success: this.ops.map(toRequestOp)}
    const run = async (client: Etcd3) => {
      const res = await client.kv.txn(request, options.timeoutMs === undefined ? undefined : {deadline: Date.now() + options.timeoutMs})
      const reads: RawKv[][] = []
      if (res.succeeded) {
        this.ops.forEach((op, i) => {
          if (op.kind === 'get' || op.kind === 'getPrefix') reads.push((res.responses[i]?.response_range?.kvs ?? []).map(rawKv))
        })
      }
      return {applied: Boolean(res.succeeded), revision: String(res.header.revision), reads}
    }
    return options.timeoutMs === undefined ? this.store.call('transaction', run) : run(this.store.client)
  }

  /**
   * Does etcd hold exactly what this transaction writes (every put's value and lease, every
   * deleted key absent)? A commit whose answer was lost (a deadline, a dropped connection) is
   * retried by EtcdStore.call, and the retry's compares then fail against our own write: asking
   * this tells "someone else changed it" from "it was us".
   */
  async isInPlace(): Promise<boolean> {
    for (const op of this.ops) {
      if (op.kind === 'deleteRange') {
        const res = await this.store.call('read back', (c) => c.getAll().inRange(new Range(op.from, op.to)).count())
        if (res > 0) return false
        continue
      }
      if (op.kind !== 'put' && op.kind !== 'delete' && op.kind !== 'detachLease') continue
      const res = await this.store.call('read back', (c) => c.get(op.key).exec())
      const kv = res.kvs[0]
      if (op.kind === 'delete') {
        if (kv) return false
      } else if (op.kind === 'detachLease') {
        if (!kv || String(kv.lease) !== '0') return false
      } else if (!kv || !bytes(encode(op.value)).equals(kv.value) || (op.lease !== undefined && String(kv.lease) !== op.lease)) return false
    }
    return true
  }

  /** Commits; a failed compare whose writes are nonetheless all in place (our own earlier attempt) counts as applied. */
  async commitIdempotent(): Promise<boolean> {
    return (await this.commit()) || (this.ops.some((o) => o.kind === 'put' || o.kind === 'delete') && (await this.isInPlace()))
  }
}

/** An etcd lease kept alive until revoked (or until this process dies, then its TTL runs out): see LeaseKeeper. */
export interface HeldLease {
  id: string
  revoke(): Promise<unknown>
}

const bytes = (s: string | Buffer): Buffer => (Buffer.isBuffer(s) ? s : Buffer.from(s))

function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix)
  end[end.length - 1]++
  return end
}

function toCompare(c: Compare): RequestCompare {
  const key = bytes(c.kind === 'rangeUnchanged' ? c.prefix : c.key)
  switch (c.kind) {
    case 'absent':
      return {key, target: 'Version', result: 'Equal', version: 0}
    case 'modRevision':
      return {key, target: 'Mod', result: 'Equal', mod_revision: c.revision}
    case 'createRevision':
      return {key, target: 'Create', result: 'Equal', create_revision: c.revision}
    case 'value':
      return {key, target: 'Value', result: 'Equal', value: bytes(encode(c.value))}
    case 'rangeUnchanged':
      return {key: bytes(c.prefix), range_end: prefixEnd(c.prefix), target: 'Mod', result: 'Less', mod_revision: String(BigInt(c.revision) + 1n)}
  }
}

function toRequestOp(op: Op): RequestOp {
  switch (op.kind) {
    case 'put':
      return {request_put: {key: bytes(op.key), value: bytes(encode(op.value)), ...(op.lease ? {lease: op.lease} : {})}}
    case 'detachLease':
      return {request_put: {key: bytes(op.key), ignore_value: true}}
    case 'delete':
      return {request_delete_range: {key: bytes(op.key)}}
    case 'deleteRange':
      return {request_delete_range: {key: bytes(op.from), range_end: bytes(op.to)}}
    case 'get':
      return {request_range: {key: bytes(op.key)}}
    case 'getPrefix':
      return {request_range: {key: bytes(op.prefix), range_end: prefixEnd(op.prefix), keys_only: op.keysOnly}}
  }
}

interface WireKv {
  key: Buffer
  value: Buffer
  create_revision: string | number
  mod_revision: string | number
  lease: string | number
}

function rawKv(kv: WireKv): RawKv {
  return {
    key: kv.key.toString(),
    value: decode(kv.value.toString()),
    createRevision: String(kv.create_revision),
    modRevision: String(kv.mod_revision),
    lease: String(kv.lease),
  }
}

const encode = (value: unknown): string | Buffer => (typeof value === 'string' || Buffer.isBuffer(value) ? value : JSON.stringify(value))

/** OpenSSL's words for a TLS handshake one side refused: no retry makes them pass. */
const TLS_REFUSAL =
  /alert (bad certificate|certificate required|unknown ca|certificate unknown|handshake failure)|certificate verify failed|unable to (get local issuer|verify the first) certificate|self[- ]signed certificate|Hostname\/IP does not match/i

function tlsRefusal(err: unknown): string | undefined {
  const message = String((err as Error)?.message ?? err)
  return TLS_REFUSAL.exec(message)?.[0]
}

/**
 * Node warns (DEP0123) whenever a TLS client is given an IP address as server name, which gRPC
 * does for every https://<IP> endpoint; the certificate is still checked against its IP SANs.
 * Drop that one warning so commands print only what they mean to.
 */
function ignoreIpServerNameWarning(): void {
  const marker = Symbol.for('xcluster.ignoreDep0123')
  const proc = process as NodeJS.Process & {[marker]?: boolean}
  if (proc[marker]) return
  proc[marker] = true
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void
  process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as {code?: string}).code : rest[1]
    if (code === 'DEP0123') return
    emit(warning, ...rest)
  }) as typeof process.emitWarning
}

/** The CN of a client certificate file: with etcd auth on, the etcd user it acts as. */
function certificateIdentity(certFile: string): string | undefined {
  try {
    return /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(readFileSync(certFile)).subject)?.[1]
  } catch {
    return undefined
  }
}

function isUnavailable(err: unknown): boolean {
  if (err instanceof MemberSkippedError) return true
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
  /** The client certificate's CN (the etcd user with auth on); undefined without a certificate. */
  readonly identity?: string
  private readonly hosts: string[]
  private readonly credentials: IOptions['credentials']
  private members?: Etcd3[]
  private readonly gate: MemberGate

  constructor(readonly connection: EtcdConnection) {
    this.keys = new KeySchema(connection.cluster)
    const tls = connection.ca || connection.cert
    this.hosts = connection.endpoints.map((e) => (/^[a-z]+:\/\//.test(e) ? e : `${tls ? 'https' : 'http'}://${e}`))
    this.gate = new MemberGate(this.hosts, settings.etcdMemberGate)
    const options: IOptions = {
      hosts: this.hosts,
      dialTimeout: settings.etcdCallTimeoutMs,
      // One consistent read carries the first page of several prefixes: more than gRPC's default 4 MiB may come back.
      grpcOptions: {'grpc.max_receive_message_length': settings.etcdMaxResponseBytes},
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : {deadline: Date.now() + settings.etcdCallTimeoutMs}),
      // etcd3's default breaker shuts a host out for 5 s after three failures, which turns a
      // member restart of a few hundred ms into seconds of errors, yet sends calls to a dead
      // member's machine until then, each paying a connect timeout. The gate sends calls to
      // members whose connection is up (see MemberGate); call() below does the patient retrying.
      faultHandling: {
        host: (host) => this.gate.policy(host),
        global: retry(handleWhen(isRecoverableError), {maxAttempts: Math.max(0, connection.endpoints.length - 1)}),
      },
    }
    if (tls) {
      ignoreIpServerNameWarning()
      if (connection.cert) this.identity = certificateIdentity(connection.cert)
      options.credentials = {
        rootCertificate: connection.ca ? readFileSync(connection.ca) : Buffer.alloc(0),
        ...(connection.cert && connection.key ? {certChain: readFileSync(connection.cert), privateKey: readFileSync(connection.key)} : {}),
      }
    }
    this.credentials = options.credentials
    this.client = new Etcd3(options)
  }

  /**
   * One client per member, each bound to its endpoint with no retrying or circuit breaking of
   * its own: for work that must reach every member at once rather than any one of them in turn
   * (lease keepalives, see LeaseKeeper).
   */
  memberClients(): Etcd3[] {
    this.members ??= this.hosts.map((host) => new Etcd3({hosts: [host], credentials: this.credentials, dialTimeout: settings.etcdCallTimeoutMs, faultHandling: {host: () => noop, global: noop}}))
    return this.members
  }

  /** Grants a lease and keeps it alive on every member until it is closed or revoked. */
  grantLease(ttlSeconds: number): Promise<LeaseKeeper> {
    return LeaseKeeper.grant(this.client, this.memberClients(), ttlSeconds)
  }

  /** Follows every change under `prefix`, resuming after disconnects and compactions (see watchPrefix). */
  watchPrefix(prefix: string, handlers: PrefixWatchHandlers, fromRevision?: string): PrefixWatch {
    return watchPrefix(this.client, prefix, handlers, fromRevision)
  }

  /** Seconds etcd still gives a lease (null when it is gone). */
  async leaseTtl(id: string): Promise<number | null> {
    const res = await this.call('lease TTL', (c) => c.leaseClient.leaseTimeToLive({ID: id}, {deadline: Date.now() + settings.election.callTimeoutMs}))
    return Number(res.TTL) >= 0 ? Number(res.TTL) : null
  }

  /** Revokes a lease by id, e.g. one a crashed predecessor held; true when it is gone. */
  revokeLease(id: string): Promise<boolean> {
    return revokeLease(this.client, id)
  }

  /**
   * Runs one etcd call, retrying while etcd is unavailable (a member restarting, a leader
   * election) for up to `settings.etcdUnavailableRetryMs`. A TLS handshake that was refused and
   * a permission etcd denied are final: reported at once, naming the identity used.
   */
  async call<R>(what: string, fn: (client: Etcd3) => Promise<R>): Promise<R> {
    const deadline = Date.now() + settings.etcdUnavailableRetryMs
    let delay = 50
    for (;;) {
      try {
        return await fn(this.client)
      } catch (err) {
        if (err instanceof EtcdPermissionDeniedError) throw this.denied(what, err)
        const refusal = tlsRefusal(err)
        if (refusal) throw this.tlsRefused(what, refusal, err)
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

  private denied(what: string, err: unknown): XclusterError {
    const who = this.identity ? `identity "${this.identity}"` : 'this connection (no client certificate)'
    return new XclusterError(`etcd denied ${what} to ${who}.`, {
      code: 'ETCD_PERMISSION_DENIED',
      exit: ExitStatus.precondition,
      suggestion: "Use a client certificate whose identity may do this: the operator's (--etcd-cert/--etcd-key, env XCLUSTER_ETCD_CERT/XCLUSTER_ETCD_KEY).",
      details: {operation: what, identity: this.identity ?? null},
      cause: err,
    })
  }

  private tlsRefused(what: string, refusal: string, err: unknown): XclusterError {
    const endpoints = this.connection.endpoints.join(', ')
    return new XclusterError(`The TLS handshake with etcd at ${endpoints} failed (${refusal}) during ${what}.`, {
      code: 'ETCD_TLS_REFUSED',
      exit: ExitStatus.precondition,
      suggestion: this.connection.cert
        ? 'Check that --etcd-cert/--etcd-key were issued by the cluster CA and that --etcd-ca is that CA.'
        : 'This etcd requires a client certificate: pass --etcd-ca, --etcd-cert and --etcd-key (env XCLUSTER_ETCD_CA, XCLUSTER_ETCD_CERT, XCLUSTER_ETCD_KEY).',
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
   * Reads every key under each prefix, in key order, all as of one revision (returned): see
   * readRanges. `onPage` gets each prefix's keys in the order the prefixes were given.
   */
  async readPrefixes(prefixes: string[], onPage: (kvs: StoredKv[]) => void): Promise<string> {
    const {revision, kvs} = await this.readRanges({ranges: prefixes.map((prefix) => ({prefix}))})
    for (const page of kvs) onPage(page)
    return revision
  }

  /**
   * Reads several key ranges as of one revision in as few round trips as etcd allows: ONE
   * transaction carries the first page of every range (and, only while `whilePresent.key`
   * exists, of its ranges too), then each range with more keys goes on in pages of
   * `settings.etcdPageSize` at that revision, the ranges side by side. A CLI read costs one round
   * trip plus one per further page of its largest prefix, however many prefixes it reads. A page
   * refused because etcd compacted the revision meanwhile restarts the whole read.
   */
  async readRanges(read: RangeRead): Promise<RangeReadResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.readRangesOnce(read)
      } catch (err) {
        if (!isCompacted(err) || attempt >= 3) throw err
      }
    }
  }

  private async readRangesOnce(read: RangeRead): Promise<RangeReadResult> {
    const page = settings.etcdPageSize
    const rangeOp = (r: KeyRange): RequestOp => ('key' in r ? {request_range: {key: bytes(r.key)}} : {request_range: {key: bytes(r.prefix), range_end: prefixEnd(r.prefix), limit: page}})
    const extra = read.whilePresent?.ranges ?? []
    const request: TxnRequest = {
      compare: read.whilePresent ? [{key: bytes(read.whilePresent.key), target: 'Version', result: 'Greater', version: 0}] : [],
      success: [...read.ranges, ...extra].map(rangeOp),
      failure: read.ranges.map(rangeOp),
    }
    const res = await this.call('read', (c) => c.kv.txn(request))
    const present = read.whilePresent !== undefined && Boolean(res.succeeded)
    const revision = String(res.header.revision)
    const ranges = present ? [...read.ranges, ...extra] : read.ranges
    const kvs = await Promise.all(
      ranges.map(async (r, i) => {
        const first = res.responses[i]?.response_range
        const rows = (first?.kvs ?? []).map((kv) => storedKv(kv as WireKv))
        if ('key' in r || !first?.more || rows.length === 0) return rows
        await this.readPages(r.prefix, revision, Buffer.concat([bytes(rows.at(-1)!.key), Buffer.from([0])]), (kvs) => rows.push(...kvs))
        return rows
      }),
    )
    return {revision, kvs, present}
  }

  private async readPages(prefix: string, revision: string, start: Buffer, onPage: (kvs: StoredKv[]) => void): Promise<void> {
    const end = Range.prefix(prefix).end
    let from = start
    for (;;) {
      const res = await this.call('list', (c) => c.getAll().inRange(new Range(from, end)).sort('Key', 'Ascend').limit(settings.etcdPageSize).revision(revision).exec())
      onPage(res.kvs.map(storedKv))
      const last = res.kvs.at(-1)
      if (!res.more || !last) return
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
    this.gate.close()
    this.client.close()
    for (const m of this.members ?? []) m.close()
  }
}
