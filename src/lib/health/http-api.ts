/**
 * The health API of `xcluster serve --http ADDR`, in Patroni's spirit: read-only, with status
 * codes made for load balancers and keepalived track scripts.
 *
 *   GET /health          200 when no check fails, else 503; the body is `xcluster health --json`
 *   GET /status          `xcluster status --json`
 *   GET /nodes           `xcluster node list --json`
 *   GET /leaders         each elected service's leader, token, since and candidates
 *   GET /leader/SERVICE  200 only on the node whose serve leads SERVICE now, else 503; 404 unknown
 *   GET /metrics         Prometheus text format (metrics.ts)
 *   GET /                the web dashboard, live through GET /events (dashboard.ts)
 *
 * Every etcd read is shared by the requests within settings.health.http.cacheMs of it, so a
 * stampede of probes is one read; /leader/SERVICE never reads etcd: the in-process campaign
 * knows whether it is a safe leader, and asking etcd would only be slower and less exact.
 */
import {X509Certificate} from 'node:crypto'
import {existsSync, readFileSync, unwatchFile, watchFile} from 'node:fs'
import {createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {createServer as createHttpsServer, type Server as HttpsServer} from 'node:https'
import {isIP} from 'node:net'
import {performance} from 'node:perf_hooks'

import {nodeTlsFiles} from '../certs/paths.js'
import type {CampaignPhase} from '../election/campaign.js'
import {XclusterError, usageError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {summarize, type NodeSummary} from '../nodes/record.js'
import {settings} from '../settings.js'
import {assessCluster} from './collect.js'
import {DASHBOARD_HEADERS, DashboardAssets, DashboardHub, EVENTS_PATH} from './dashboard.js'
import {clusterMetrics, METRICS_CONTENT_TYPE, renderMetrics} from './metrics.js'
import type {ClusterSnapshot} from './snapshot.js'

/** What this serve knows, from memory, of its own leadership of one service. */
export interface LocalLeadership {
  service: string
  node: string
  /** This node leads the service now: its lease cannot have expired and its instance runs. */
  leader: boolean
  /** Its campaign's phase, or `not-campaigning` when this serve does not run for the service. */
  phase: CampaignPhase | 'not-campaigning'
  /** Its own fencing token while it leads. */
  token: string | null
  /** Whom its campaign last saw leading (from its own reads of the election). */
  seenLeader: string | null
  /** Its instance of the service is running. */
  active: boolean
}

/** undefined: a service this serve knows nothing of (neither campaigns for nor found in its spec). */
export type LeaderOf = (service: string) => LocalLeadership | undefined

export interface ListenAddress {
  /** Empty: every address. */
  host: string
  port: number
}

export interface HealthApiOptions {
  address: ListenAddress
  store: EtcdStore
  leaderOf: LeaderOf
  /** HTTPS with this certificate and key (PEM files); plain HTTP without. */
  tls?: {certFile: string; keyFile: string}
  log?: (event: string, details: Record<string, unknown>) => void
  cacheMs?: number
}

export interface HealthApi {
  port: number
  url: string
  close(): Promise<void>
}

/** `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (every address). */
export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim())
  const host = m?.[1] ?? m?.[2] ?? ''
  const port = Number(m?.[3])
  if (!m || port > 65_535 || (m[1] !== undefined && isIP(host) !== 6)) {
    throw usageError(`"${text}" is not an address to listen on.`, 'Give HOST:PORT, e.g. --http 127.0.0.1:8008, --http [::1]:8008 or --http :8008 (every address).')
  }
  return {host, port}
}

/**
 * The certificate the API serves: the one given; else a core node's server certificate (its etcd
 * member's: the cluster CA's, for the node's name and IP) when it has one; else none, plain HTTP.
 */
export function healthApiTls(given: {certFile?: string; keyFile?: string} = {}): {certFile: string; keyFile: string} | undefined {
  if (given.certFile && given.keyFile) return {certFile: given.certFile, keyFile: given.keyFile}
  const f = nodeTlsFiles
  return existsSync(f.serverCert) && existsSync(f.serverKey) ? {certFile: f.serverCert, keyFile: f.serverKey} : undefined
}

/** One read shared by the requests that arrive while it runs and for `ttlMs` after it ended (its failure too). */
class SharedRead<T> {
  private last?: {value: Promise<T>; startedAt: number; endedAt?: number}

  constructor(
    private readonly read: () => Promise<T>,
    private readonly ttlMs: number,
  ) {}

  get(): Promise<T> {
    return this.fresh(-Infinity)
  }

  /** Shares only a read begun at or after `since`: the dashboard's, after a change it saw at `since`. */
  fresh(since: number): Promise<T> {
    const last = this.last
    if (last && last.startedAt >= since && (last.endedAt === undefined || performance.now() - last.endedAt < this.ttlMs)) return last.value
    const entry: {value: Promise<T>; startedAt: number; endedAt?: number} = {value: this.read(), startedAt: performance.now()}
    const ended = () => (entry.endedAt = performance.now())
    entry.value.then(ended, ended)
    this.last = entry
    return entry.value
  }
}

/**
 * Leaderships begun per service, counted from the keys of etcd's election history
 * (`history/<token>-elected`, in token order): those present at the first read, then each newer
 * one. A counter, though the history is trimmed: only keys above the last token seen are added.
 */
class LeadershipCounter {
  private readonly counts = new Map<string, number>()
  private readonly lastToken = new Map<string, bigint>()

  constructor(private readonly store: EtcdStore) {}

  async refresh(): Promise<ReadonlyMap<string, number>> {
    const prefix = this.store.keys.electionsPrefix()
    const {reads} = await this.store.transaction().getPrefix(prefix, {keysOnly: true}).commitAt()
    for (const kv of reads[0] ?? []) {
      const [service, kind, entry] = kv.key.slice(prefix.length).split('/')
      const token = kind === 'history' ? /^(\d+)-elected$/.exec(entry ?? '')?.[1] : undefined
      if (!service || token === undefined) continue
      if (BigInt(token) <= (this.lastToken.get(service) ?? -1n)) continue
      this.lastToken.set(service, BigInt(token))
      this.counts.set(service, (this.counts.get(service) ?? 0) + 1)
    }
    return new Map(this.counts)
  }
}

interface Answer {
  status: number
  body: string
  contentType: string
  headers?: Record<string, string>
}

const json = (status: number, value: unknown, headers?: Record<string, string>): Answer => ({
  status,
  body: `${JSON.stringify(value, null, 2)}\n`,
  contentType: 'application/json; charset=utf-8',
  ...(headers ? {headers} : {}),
})

const problem = (status: number, code: string, message: string, suggestion?: string, headers?: Record<string, string>): Answer =>
  json(status, {error: {code, message, ...(suggestion ? {suggestion} : {})}}, headers)

const PATHS = ['/', '/health', '/status', '/nodes', '/leaders', '/leader/SERVICE', '/metrics', EVENTS_PATH]

/** The node list of `node list --json`, from the snapshot: the leased address of a node without a fixed IP. */
function nodeSummaries(snapshot: ClusterSnapshot, now = Date.now()): NodeSummary[] {
  const leased = new Map(snapshot.leases.filter((l) => l.state === 'bound' && Date.parse(l.expiresAt) > now).map((l) => [l.mac, l.ip]))
  return snapshot.nodes
    .map((n) => {
      const ip = n.ip ? undefined : leased.get(n.mac)
      return ip ? {...summarize(n), leasedIp: ip} : summarize(n)
    })
    .sort((a, b) => a.name.localeCompare(b.name, 'en', {numeric: true}))
}

const pathOf = (req: IncomingMessage): string => (req.url ?? '/').split('?')[0] ?? '/'

/** A path segment decoded, or undefined when it is not valid percent-encoding (then: nothing there). */
function decoded(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment)
  } catch {
    return undefined
  }
}

async function loadTls(tls: NonNullable<HealthApiOptions['tls']>): Promise<{cert: Buffer; key: Buffer}> {
  try {
    return {cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile)}
  } catch (err) {
    throw new XclusterError(`Cannot read the health API's TLS certificate or key: ${(err as Error).message}.`, {
      code: 'HTTP_TLS_UNREADABLE',
      suggestion: `Check ${tls.certFile} and ${tls.keyFile} exist and are readable by serve, or pass other files with --http-cert and --http-key.`,
      cause: err,
    })
  }
}

/**
 * A renewed certificate is picked up without a restart: the files are polled (a rename over them,
 * as an atomic write does, is seen too) and a pair that loads is swapped in for new connections.
 * A pair that does not (a key not yet written beside its new certificate, a mismatch) leaves the
 * one in use, and is tried again at the next change.
 */
function reloadTlsOnChange(server: HttpsServer, tls: NonNullable<HealthApiOptions['tls']>, log: (event: string, details: Record<string, unknown>) => void): () => void {
  let current = ''
  const reload = () => {
    try {
      const pair = {cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile)}
      const fingerprint = new X509Certificate(pair.cert).fingerprint256
      if (fingerprint === current) return
      server.setSecureContext(pair)
      if (current) log('http-tls-reloaded', {cert: tls.certFile, fingerprint})
      current = fingerprint
    } catch (err) {
      log('http-tls-reload-failed', {cert: tls.certFile, error: String((err as Error)?.message ?? err)})
    }
  }
  reload()
  const every = {interval: settings.health.http.tlsReloadPollMs, persistent: false}
  for (const file of [tls.certFile, tls.keyFile]) watchFile(file, every, reload)
  return () => {
    for (const file of [tls.certFile, tls.keyFile]) unwatchFile(file, reload)
  }
}

export async function startHealthApi(options: HealthApiOptions): Promise<HealthApi> {
  const {store, leaderOf} = options
  const log = options.log ?? (() => {})
  const ttl = options.cacheMs ?? settings.health.http.cacheMs
  const logged =
    <T>(what: string, read: () => Promise<T>) =>
    () =>
      read().catch((err: unknown) => {
        log('http-read-failed', {read: what, error: String((err as Error)?.message ?? err)})
        throw err
      })
  // /health, /status, /nodes and /metrics answer from one assessment: they never disagree, and
  // a dashboard or a scraper asking all of them costs one set of reads.
  const picture = new SharedRead(
    logged('cluster', () => assessCluster(store)),
    ttl,
  )
  const counter = new LeadershipCounter(store)
  const assets = DashboardAssets.load()
  if (!assets.ready) log('dashboard-missing', {dir: assets.dir})
  const dashboard = new DashboardHub({
    store,
    read: async (since) => {
      const {status, snapshot} = await picture.fresh(since)
      return {status, ...(snapshot ? {nodes: nodeSummaries(snapshot)} : {})}
    },
    log,
  })
  const leaderships = new SharedRead(
    logged('leaderships', () => counter.refresh()),
    ttl,
  )

  const unreadable = (err: unknown): Answer =>
    err instanceof XclusterError
      ? problem(503, err.code, err.message, err.suggestion)
      : problem(503, 'READ_FAILED', `The cluster's state could not be read: ${String((err as Error)?.message ?? err)}`, 'Check etcd: xcluster etcd health.')

  const routes: Record<string, () => Promise<Answer>> = {
    '/health': async () => {
      const {report} = await picture.get()
      return json(report.status === 'fail' ? 503 : 200, report)
    },
    '/status': async () => json(200, (await picture.get()).status),
    '/nodes': async () => {
      const {snapshot, report} = await picture.get()
      if (snapshot) return json(200, nodeSummaries(snapshot))
      const why = report.checks.find((c) => c.name === 'etcd:read')
      return problem(503, 'ETCD_UNREACHABLE', why?.observed ?? "The cluster's keys cannot be read.", why?.next ?? 'Check etcd: xcluster etcd health.')
    },
    '/leaders': async () => json(200, (await picture.get()).status.services),
    '/metrics': async () => {
      const [{status, snapshot}, counts] = await Promise.all([picture.get(), leaderships.get().catch(() => new Map<string, number>())])
      return {status: 200, body: renderMetrics(clusterMetrics({status, snapshot, leaderships: counts})), contentType: METRICS_CONTENT_TYPE}
    },
  }

  const leader = (service: string): Answer => {
    const here = leaderOf(service)
    if (!here) return problem(404, 'SERVICE_UNKNOWN', `No service "${service}" is known to this serve.`, 'See the elected services at /leaders (or xcluster election list).')
    return json(here.leader ? 200 : 503, here)
  }

  async function answer(req: IncomingMessage): Promise<Answer> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return problem(405, 'METHOD_NOT_ALLOWED', `${req.method} is not answered here: this API only reads.`, 'Use GET or HEAD.', {allow: 'GET, HEAD'})
    }
    const path = pathOf(req)
    const asset = assets.find(path)
    if (asset) return {status: 200, ...asset, headers: {...DASHBOARD_HEADERS}}
    if (path === '/') return problem(500, 'DASHBOARD_MISSING', `The dashboard's files are not in ${assets.dir}.`, 'Reinstall xcluster: its package ships templates/dashboard/.')
    const route = routes[path]
    if (route) return route().catch(unreadable)
    const service = /^\/leader\/([^/]+)$/.exec(path)?.[1]
    const name = service === undefined ? undefined : decoded(service)
    if (name !== undefined) return leader(name)
    return problem(404, 'NOT_FOUND', `Nothing at ${path}.`, `Ask one of ${PATHS.join(', ')}.`)
  }

  const reply = (res: ServerResponse, a: Answer) => {
    // HEAD: Node sends the headers (with the length a GET would have) and drops the body.
    res.writeHead(a.status, {'content-type': a.contentType, 'content-length': Buffer.byteLength(a.body), 'cache-control': 'no-store', ...a.headers})
    res.end(a.body)
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (pathOf(req) === EVENTS_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
      if (!dashboard.full) return dashboard.subscribe(req, res)
      log('dashboard-full', {clients: dashboard.clientCount})
      const retry = {'retry-after': String(Math.ceil(settings.health.dashboard.reconnectMs / 1000))}
      return reply(res, problem(503, 'DASHBOARD_FULL', `${dashboard.clientCount} browsers follow this serve's dashboard, its most.`, "Close a dashboard tab, or open another core node's.", retry))
    }
    void answer(req)
      .catch((err: unknown) => problem(500, 'INTERNAL', String((err as Error)?.message ?? err)))
      .then((a) => reply(res, a))
  }

  const tls = options.tls ? await loadTls(options.tls) : undefined
  const server: Server = tls ? createHttpsServer(tls, handle) : createHttpServer(handle)
  server.requestTimeout = settings.health.http.requestTimeoutMs
  server.headersTimeout = settings.health.http.requestTimeoutMs
  const {host} = options.address
  await new Promise<void>((resolve, reject) => {
    const refused = (err: NodeJS.ErrnoException) =>
      reject(
        new XclusterError(`The health API cannot listen on ${host || '*'}:${options.address.port}: ${err.code ?? err.message}.`, {
          code: 'HTTP_LISTEN_FAILED',
          suggestion:
            err.code === 'EADDRINUSE' ? `Something listens there already (ss -ltnp 'sport = :${options.address.port}'): choose another --http address.` : 'Give --http an address of this host.',
          cause: err,
        }),
      )
    server.once('error', refused)
    server.listen(options.address.port, host || undefined, () => {
      server.off('error', refused)
      resolve()
    })
  })
  const bound = server.address()
  const port = bound && typeof bound === 'object' ? bound.port : options.address.port
  const shown = host === '' ? 'localhost' : isIP(host) === 6 ? `[${host}]` : host
  const url = `${tls ? 'https' : 'http'}://${shown}:${port}`
  log('http-listening', {address: host || '*', port, tls: Boolean(tls), url})
  const stopReloading = options.tls ? reloadTlsOnChange(server as HttpsServer, options.tls, log) : () => undefined
  return {
    port,
    url,
    async close() {
      stopReloading()
      await dashboard.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
