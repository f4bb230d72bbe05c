/**
 * `xcluster frontend expose|unexpose|list|render` against etcd: the endpoints under
 * `frontends/<name>`, checked against the certificates `cert issue` stored and the spec's
 * services, and the state the render module needs. No token leaves this module except into
 * a rendered file the operator asked for (render --out).
 */
import {existsSync, statSync} from 'node:fs'
import {join} from 'node:path'

import {DAY_MS, msLeft, renewalDue} from '../certs/expiry.js'
import {writePrivateFile} from '../certs/secret.js'
import type {StoredCertificate, StoredCertificateSummary} from '../certs/store.js'
import {listIssuedCertificates} from '../certs/store.js'
import {readCrl} from '../certs/revocation.js'
import {preconditionError, usageError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {nodeSummaries} from '../nodes/summary.js'
import {commandLine} from '../output/command-line.js'
import {settings} from '../settings.js'
import {readStoredSpecIfAny} from '../spec/store.js'
import {checkPublicPort, freeTunnelPort, newToken, parseTarget, targetText, withoutToken, type FrontendPublic, type FrontendRecord, type FrontendTarget} from './endpoint.js'
import {renderNodeConfig, servingFrontends, type FrontendNode, type FrontendState} from './render.js'

export interface ExposeRequest {
  name: string
  /** SERVICE_OR_HOST:PORT. */
  to: string
  port: number
  cert?: string
  /** Require client certificates of the cluster CA (needs `cert`). */
  clientAuth?: boolean
}

/**
 * An endpoint's certificate as list shows it: `expiring` once its renewal is due (the rule of cert
 * list and health, src/lib/certs/expiry.ts), `missing` when it was deleted since.
 */
export interface CertificateStatus {
  name: string
  notAfter?: string
  daysLeft?: number
  status: 'ok' | 'expiring' | 'expired' | 'missing'
}

/** An endpoint as shown (the `--json` of list, expose and unexpose): never its token. */
export type FrontendView = FrontendPublic & {
  to: string
  certificate?: CertificateStatus
  /** The frontend nodes that serve it: every ready one (nginx and the Rathole server run on each). */
  servedBy: {node: string; ip: string}[]
}

export interface ExposeResult {
  frontend: FrontendView
  dryRun: boolean
}

/** Attempts when another endpoint was added between our read and our write (a tunnel port may have gone). */
const EXPOSE_ATTEMPTS = 3

/** Records a public endpoint, create-only; refused with nothing written on a bad request or a clash. */
export async function exposeFrontend(store: EtcdStore, request: ExposeRequest, options: {dryRun?: boolean} = {}): Promise<ExposeResult> {
  const key = store.keys.frontend(request.name)
  const port = checkPublicPort(request.port)
  const to = parseTarget(request.to)
  const spec = await readStoredSpecIfAny(store)
  const target = resolveTarget(to, spec?.services ?? [])
  if (request.clientAuth && request.cert === undefined) {
    throw usageError(
      '--client-auth needs --cert: client certificates are checked during a TLS handshake.',
      `Give the endpoint a certificate: ${commandLine(['frontend', 'expose', request.name, '--to', request.to, '--port', String(request.port), '--cert', 'NAME', '--client-auth'])}`,
    )
  }
  const certificate = request.cert === undefined ? undefined : await requireCertificate(store, request.cert)
  for (let attempt = 1; ; attempt++) {
    const prefix = store.keys.frontendsPrefix()
    const existing: FrontendRecord[] = []
    const revision = await store.readPrefixes([prefix], (kvs) => existing.push(...kvs.map((kv) => JSON.parse(kv.value.toString()) as FrontendRecord)))
    if (existing.some((e) => e.name === request.name)) {
      throw preconditionError(
        'FRONTEND_EXISTS',
        `An endpoint named "${request.name}" is already exposed.`,
        `See it with ${commandLine(['frontend', 'list'])}, or remove it first: ${commandLine(['frontend', 'unexpose', request.name])}`,
      )
    }
    const sharing = existing.find((e) => e.port === port)
    if (sharing) {
      throw preconditionError('FRONTEND_PORT_TAKEN', `Port ${port} is already endpoint ${sharing.name}'s (one endpoint per public port).`, `Choose another --port, or unexpose ${sharing.name} first.`)
    }
    const tunnelPort = freeTunnelPort(existing.map((e) => e.tunnelPort))
    if (tunnelPort === undefined) {
      const {first, last} = settings.frontend.tunnelPorts
      throw preconditionError('FRONTEND_TUNNELS_FULL', `Every tunnel port (${first}-${last}) is taken.`, 'Unexpose an endpoint no longer needed.')
    }
    const record: FrontendRecord = {
      name: request.name,
      target,
      port,
      ...(certificate ? {cert: certificate.name} : {}),
      ...(request.clientAuth ? {clientAuth: true} : {}),
      tunnelPort,
      token: newToken(),
      createdAt: new Date().toISOString(),
    }
    const nodes = await frontendNodes(store)
    const view = viewOf(record, certificate ? {[certificate.name]: certificate} : {}, nodes)
    if (options.dryRun) return {frontend: view, dryRun: true}
    if (await store.transaction().ifAbsent(key).ifRangeUnchangedSince(prefix, revision).put(key, record).commit()) return {frontend: view, dryRun: false}
    if (attempt >= EXPOSE_ATTEMPTS) throw preconditionError('FRONTEND_CHANGED', 'The endpoints kept changing while this one was being added.', 'Run the command again.')
  }
}

/** The endpoint as it is now, and the removal of it, which fails if it changed meanwhile. */
export async function planUnexpose(store: EtcdStore, name: string): Promise<{frontend: FrontendView; commit(): Promise<FrontendView>}> {
  const key = store.keys.frontend(name)
  const stored = await store.getJson<FrontendRecord>(key)
  if (!stored) throw preconditionError('FRONTEND_MISSING', `No endpoint named "${name}" is exposed.`, `List them: ${commandLine(['frontend', 'list'])}`)
  const [certs, nodes] = await Promise.all([certificatesByName(store), frontendNodes(store)])
  const frontend = viewOf(stored.value, certs, nodes)
  return {
    frontend,
    async commit() {
      if (!(await store.transaction().ifUnchanged(key, stored.modRevision).delete(key).commit())) {
        throw preconditionError('FRONTEND_CHANGED', `Endpoint ${name} changed (or went) while it was being removed.`, 'Look again with xcluster frontend list, then run the command again.')
      }
      return frontend
    },
  }
}

/** Every endpoint, by name, with its certificate's days left and the frontends that serve it. */
export async function listFrontends(store: EtcdStore): Promise<FrontendView[]> {
  const [records, certs, nodes] = await Promise.all([store.listJson<FrontendRecord>(store.keys.frontendsPrefix()), certificatesByName(store), frontendNodes(store)])
  return records.map((r) => viewOf(r.value, certs, nodes)).sort((a, b) => a.name.localeCompare(b.name))
}

/** What the render module needs: endpoints (with their tokens), nodes, certificate SANs, service VIPs. */
export async function readFrontendState(store: EtcdStore): Promise<FrontendState> {
  const [records, certs, nodes, spec, crl] = await Promise.all([
    store.listJson<FrontendRecord>(store.keys.frontendsPrefix()),
    certificatesByName(store),
    frontendNodes(store),
    readStoredSpecIfAny(store),
    readCrl(store),
  ])
  return {
    endpoints: records.map((r) => r.value),
    nodes,
    certSans: Object.fromEntries(Object.values(certs).map((c) => [c.name, c.sans])),
    serviceVips: Object.fromEntries((spec?.services ?? []).map((s) => [s.name, s.vip])),
    ...(spec?.network.adminVip ? {acmeAnswerer: spec.network.adminVip} : {}),
    ...(crl ? {crl: true} : {}),
  }
}

/** What `frontend render` shows: each file's text (tokens redacted), or where --out wrote it (tokens in, 0600). */
export interface RenderResult {
  node: string
  type: 'frontend' | 'core'
  files: {name: string; secret: boolean; content?: string; path?: string}[]
}

/** Renders NODE's frontend files: printed with the tokens redacted, or written whole (0600) into `outDir`. */
export async function renderFrontendFiles(store: EtcdStore, node: string, options: {outDir?: string} = {}): Promise<RenderResult> {
  const {outDir} = options
  if (outDir !== undefined && !(existsSync(outDir) && statSync(outDir).isDirectory())) {
    throw usageError(`--out ${outDir} is not a directory.`, `Create it first (mkdir -p ${outDir}), or leave --out out to print the files (tokens redacted).`)
  }
  store.keys.node(node)
  const config = renderNodeConfig(await readFrontendState(store), node, undefined, {redact: outDir === undefined})
  if (outDir === undefined) return {node: config.node, type: config.type, files: config.files.map((f) => ({name: f.name, secret: f.secret, content: f.content}))}
  const files = config.files.map((f) => {
    const path = join(outDir, f.name)
    writePrivateFile(path, f.content)
    return {name: f.name, secret: f.secret, path}
  })
  return {node: config.node, type: config.type, files}
}

/** A spec service by that name is reached at its VIP (the Rathole client runs on a core node, not beside it). */
function resolveTarget(to: {host: string; port: number}, services: {name: string; vip?: string}[]): FrontendTarget {
  const service = services.find((s) => s.name === to.host)
  if (!service) return {kind: 'host', host: to.host, port: to.port}
  if (!service.vip) {
    throw preconditionError(
      'SERVICE_NO_VIP',
      `Service ${service.name} has no VIP: the tunnel's client, on a core node, could not find where it runs.`,
      `Give it a vip: in the spec (xcluster config apply), or target its host: --to HOST:${to.port}`,
    )
  }
  return {kind: 'service', service: service.name, port: to.port}
}

async function requireCertificate(store: EtcdStore, name: string): Promise<StoredCertificateSummary> {
  const stored = await store.getJson<StoredCertificate>(store.keys.issuedCert(name))
  if (!stored) {
    throw preconditionError(
      'CERT_MISSING',
      `No certificate named "${name}" in etcd.`,
      `Issue it first: ${commandLine(['cert', 'issue', name, '--san', 'www.example.org'])} (or see ${commandLine(['cert', 'list'])})`,
    )
  }
  const {sealedKey, certPem: _pem, chainPem: _chain, ...rest} = stored.value
  if (!sealedKey) {
    throw preconditionError(
      'CERT_NO_KEY',
      `The certificate "${name}" was stored without its private key: no frontend could serve it.`,
      `Issue one for the endpoint: ${commandLine(['cert', 'issue', `${name}-frontend`, '--san', '...'])}`,
    )
  }
  if (Date.parse(rest.notAfter) <= Date.now()) throw preconditionError('CERT_EXPIRED', `The certificate "${name}" expired on ${rest.notAfter}.`, 'Issue a new one and expose with it.')
  return {...rest, hasKey: true}
}

async function certificatesByName(store: EtcdStore): Promise<Record<string, StoredCertificateSummary>> {
  return Object.fromEntries((await listIssuedCertificates(store)).map((c) => [c.name, c]))
}

async function frontendNodes(store: EtcdStore): Promise<FrontendNode[]> {
  return (await nodeSummaries(store)).map((n) => {
    const ip = n.ip ?? n.leasedIp
    return {name: n.name, type: n.type, state: n.state, ...(ip ? {ip} : {})}
  })
}

function certificateStatus(name: string, cert: StoredCertificateSummary | undefined, now = Date.now()): CertificateStatus {
  if (!cert) return {name, status: 'missing'}
  const left = msLeft(cert, now)
  const status = left <= 0 ? 'expired' : renewalDue(cert, now) ? 'expiring' : 'ok'
  return {name, notAfter: cert.notAfter, daysLeft: Math.floor(left / DAY_MS), status}
}

function viewOf(record: FrontendRecord, certs: Record<string, StoredCertificateSummary>, nodes: FrontendNode[]): FrontendView {
  return {
    ...withoutToken(record),
    to: targetText(record.target),
    ...(record.cert ? {certificate: certificateStatus(record.cert, certs[record.cert])} : {}),
    servedBy: servingFrontends(nodes).map((n) => ({node: n.name, ip: n.ip!})),
  }
}
