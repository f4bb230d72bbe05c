/**
 * The web dashboard of `serve --http`: its static files (templates/dashboard/, plain HTML, CSS
 * and ES modules: nothing to build) and the live stream the page follows.
 *
 *   GET /                  the page
 *   GET /dashboard/FILE    its stylesheet, scripts and icon
 *   GET /events            server-sent events: `status` (the status and the recent leadership
 *                          changes) on every change, `nodes` when the node list changed
 *
 * One etcd watch per serve, opened while at least one browser follows, wakes one read for all
 * of them: changes are coalesced to at most one read per coalesceMs, and a slow refresh catches
 * what no key shows (etcd member health, leases running out).
 */
import {readdirSync, readFileSync} from 'node:fs'
import type {IncomingMessage, ServerResponse} from 'node:http'
import {extname, join} from 'node:path'
import {performance} from 'node:perf_hooks'

import type {HistoryEntry} from '../election/records.js'
import type {PrefixWatch} from '../etcd/watch.js'
import type {EtcdStore} from '../etcd/store.js'
import type {NodeSummary} from '../nodes/record.js'
import {TEMPLATES_DIR} from '../render/template.js'
import {settings} from '../settings.js'
import type {ClusterStatus} from './types.js'

export const DASHBOARD_DIR = join(TEMPLATES_DIR, 'dashboard')
export const EVENTS_PATH = '/events'
const ASSET_PREFIX = '/dashboard/'

/**
 * Everything the page loads comes from this server, and nothing it shows can become markup or
 * script: node names, reasons and the rest come from etcd, which other tools may write.
 */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml; charset=utf-8',
}

export interface DashboardAsset {
  body: string
  contentType: string
}

/**
 * The dashboard's files, read once at start: a path is answered only when it names one of them,
 * so nothing else of the disk can be reached through it.
 */
export class DashboardAssets {
  private constructor(
    private readonly files: ReadonlyMap<string, DashboardAsset>,
    readonly dir: string,
  ) {}

  static load(dir: string = DASHBOARD_DIR): DashboardAssets {
    const files = new Map<string, DashboardAsset>()
    let names: string[] = []
    try {
      names = readdirSync(dir)
    } catch {
      // A package without its templates: the page is missing, the health API still answers.
    }
    for (const name of names) {
      const contentType = CONTENT_TYPES[extname(name)]
      if (contentType) files.set(name, {body: readFileSync(join(dir, name), 'utf8'), contentType})
    }
    return new DashboardAssets(files, dir)
  }

  get ready(): boolean {
    return this.files.has('index.html')
  }

  /** The file a request path names (`/` is the page), or undefined. */
  find(path: string): DashboardAsset | undefined {
    if (path === '/') return this.files.get('index.html')
    return path.startsWith(ASSET_PREFIX) ? this.files.get(path.slice(ASSET_PREFIX.length)) : undefined
  }
}

/** What the page shows besides the node list, as one `status` event. */
export interface DashboardUpdate {
  status: ClusterStatus
  /** Leadership changes of every shown service, newest first. */
  changes: HistoryEntry[]
}

/** What one read gives the stream; `nodes` is absent when they could not be read (the page keeps the last list). */
export interface DashboardView {
  status: ClusterStatus
  nodes?: NodeSummary[]
}

const byNewest = (a: HistoryEntry, b: HistoryEntry): number => {
  const ta = BigInt(a.token)
  const tb = BigInt(b.token)
  return ta === tb ? b.at.localeCompare(a.at) : tb > ta ? 1 : -1
}

/**
 * The latest leadership changes across services, from the history each election keeps in etcd
 * (bounded per service): it outlives this serve and says why each change happened. One
 * transaction per etcdMaxTxnOps services. Tokens are etcd revisions, so they order changes
 * across services too, whatever the nodes' clocks say.
 */
export async function recentChanges(store: EtcdStore, services: readonly string[], limit: number): Promise<HistoryEntry[]> {
  const prefixes = services.flatMap((s) => {
    try {
      return [store.keys.electionHistoryPrefix(s)]
    } catch {
      return [] // a name no key can hold: it has no history either
    }
  })
  const chunks: string[][] = []
  for (let i = 0; i < prefixes.length; i += settings.etcdMaxTxnOps) chunks.push(prefixes.slice(i, i + settings.etcdMaxTxnOps))
  const reads = await Promise.all(
    chunks.map(async (chunk) => {
      const txn = store.transaction()
      for (const prefix of chunk) txn.getPrefix(prefix)
      return (await txn.commitAt()).reads.flat()
    }),
  )
  return reads
    .flat()
    .map((kv) => kv.value as HistoryEntry)
    .filter((e) => typeof e === 'object' && e !== null && /^\d+$/.test(String(e.token)) && typeof e.at === 'string')
    .sort(byNewest)
    .slice(0, limit)
}

type Tuning = {-readonly [K in keyof typeof settings.health.dashboard]: number}

export interface DashboardHubOptions {
  store: EtcdStore
  /** The status and nodes as read no earlier than `since` (performance.now()): a change seen then is in them. */
  read(since: number): Promise<DashboardView>
  log?: (event: string, details: Record<string, unknown>) => void
  tuning?: Partial<Tuning>
}

const frame = (event: string, data: string): string => `event: ${event}\ndata: ${data}\n\n`

/**
 * The browsers following /events and the one etcd watch that feeds them all. The latest frames
 * are kept, so a browser that joins gets the picture at once; a slow one is dropped before what
 * it has not read grows past maxBufferedBytes (it reconnects to a fresh picture).
 */
export class DashboardHub {
  private readonly clients = new Set<ServerResponse>()
  private readonly tuning: Tuning
  private readonly log: NonNullable<DashboardHubOptions['log']>
  private watch?: PrefixWatch
  private timers: NodeJS.Timeout[] = []
  private nextRead?: NodeJS.Timeout
  /** When the first change not yet read was seen; undefined when there is none. */
  private pendingSince?: number
  private reading = false
  private lastReadAt = -Infinity
  private statusText?: string
  private nodesText?: string
  private frames: {status?: string; nodes?: string} = {}
  private closed = false

  constructor(private readonly options: DashboardHubOptions) {
    this.tuning = {...settings.health.dashboard, ...options.tuning}
    this.log = options.log ?? (() => {})
  }

  get clientCount(): number {
    return this.clients.size
  }

  /** No room for another browser (or shutting down): answer 503 instead of subscribing. */
  get full(): boolean {
    return this.closed || this.clients.size >= this.tuning.maxClients
  }

  /** Takes over the response: an event stream until the browser leaves or serve stops. HEAD gets the headers alone. */
  subscribe(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no', ...DASHBOARD_HEADERS})
    if (req.method === 'HEAD') {
      res.end()
      return
    }
    res.socket?.setNoDelay(true)
    this.clients.add(res)
    res.on('close', () => this.leave(res))
    this.send(res, `retry: ${this.tuning.reconnectMs}\n${frame('hello', JSON.stringify({refreshMs: this.tuning.refreshMs, reconnectMs: this.tuning.reconnectMs}))}`)
    for (const f of [this.frames.status, this.frames.nodes]) if (f) this.send(res, f)
    if (this.clients.size === 1) this.follow()
  }

  async close(): Promise<void> {
    this.closed = true
    for (const res of this.clients) res.end()
    this.clients.clear()
    await this.unfollow()
  }

  private follow(): void {
    const k = this.options.store.keys
    // What the status and node list are made of; not host keys, MACs, checkpoints, certificates.
    const shown = [k.nodesPrefix(), k.leasesPrefix(), k.runsPrefix(), k.electionsPrefix()]
    const changed = (key?: string) => {
      if (key === undefined || key === k.spec() || shown.some((p) => key.startsWith(p))) this.schedule()
    }
    this.watch = this.options.store.watchPrefix(k.prefix, {onPut: (kv) => changed(kv.key), onDelete: (key) => changed(key), onReset: () => changed()})
    this.timers = [setInterval(() => this.schedule(), this.tuning.refreshMs), setInterval(() => this.broadcast(': keepalive\n\n'), this.tuning.keepaliveMs)]
    // No change to wait for yet: the first browser may have a read /status has just made.
    this.pendingSince = -Infinity
    this.schedule()
  }

  /** Nobody watches: stop reading, and forget the picture (it would be stale for the next browser). */
  private async unfollow(): Promise<void> {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    clearTimeout(this.nextRead)
    this.nextRead = undefined
    this.pendingSince = undefined
    this.frames = {}
    this.statusText = this.nodesText = undefined
    const watch = this.watch
    this.watch = undefined
    await watch?.cancel()
  }

  private leave(res: ServerResponse): void {
    if (this.clients.delete(res) && this.clients.size === 0) void this.unfollow()
  }

  /** One read soon: after settleMs, and no sooner than coalesceMs after the last one began; changes meanwhile join it. */
  private schedule(): void {
    this.pendingSince ??= performance.now()
    if (this.reading || this.nextRead || this.clients.size === 0) return
    const wait = Math.max(this.tuning.settleMs, this.lastReadAt + this.tuning.coalesceMs - performance.now())
    this.nextRead = setTimeout(() => {
      this.nextRead = undefined
      void this.refresh()
    }, wait)
  }

  private async refresh(): Promise<void> {
    const since = this.pendingSince ?? performance.now()
    this.pendingSince = undefined
    this.reading = true
    this.lastReadAt = performance.now()
    try {
      const view = await this.options.read(since)
      const changes = await recentChanges(
        this.options.store,
        view.status.services.map((s) => s.service),
        this.tuning.changesShown,
      )
      if (this.clients.size > 0) this.publish(view, changes)
    } catch (err) {
      const e = err as {message?: string; code?: string; suggestion?: string}
      this.log('dashboard-read-failed', {error: String(e?.message ?? err)})
      this.broadcast(frame('unavailable', JSON.stringify({message: String(e?.message ?? err), ...(e?.code ? {code: e.code} : {}), ...(e?.suggestion ? {suggestion: e.suggestion} : {})})))
    } finally {
      this.reading = false
      if (this.pendingSince !== undefined) this.schedule()
    }
  }

  /** The status goes out on every read (its time says how fresh it is); the node list only when it changed. */
  private publish(view: DashboardView, changes: HistoryEntry[]): void {
    const update: DashboardUpdate = {status: view.status, changes}
    const status = JSON.stringify(update)
    if (status !== this.statusText) {
      this.statusText = status
      this.frames.status = frame('status', status)
      this.broadcast(this.frames.status)
    }
    if (!view.nodes) return
    const nodes = JSON.stringify(view.nodes)
    if (nodes === this.nodesText) return
    this.nodesText = nodes
    this.frames.nodes = frame('nodes', nodes)
    this.broadcast(this.frames.nodes)
  }

  private broadcast(text: string): void {
    for (const res of this.clients) this.send(res, text)
  }

  private send(res: ServerResponse, text: string): void {
    res.write(text)
    if (res.writableLength > this.tuning.maxBufferedBytes) {
      this.log('dashboard-client-dropped', {reason: 'too slow', unreadBytes: res.writableLength})
      res.destroy()
    }
  }
}
