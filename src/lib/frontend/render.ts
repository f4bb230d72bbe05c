/**
 * What each node gets for the public endpoints, rendered from templates/frontend/:
 *
 *   frontend node:  nginx-site.conf      TLS on each endpoint's public port, proxied to the tunnel's
 *                                        loopback port; ACME HTTP-01 challenges to the answerer
 *                   rathole-server.toml  the Rathole server: control port for the core nodes'
 *                                        clients, one service per endpoint bound on loopback
 *   core node:      rathole-client-<frontend>.toml, one per serving frontend (a Rathole client
 *                                        has one remote_addr), each service to the endpoint's target
 *
 * Rathole keeps one control channel per service and drops the previous one when a second client
 * connects (server.rs), so a core node's clients must run on one core node at a time (the
 * leader of an elected service), never on all of them at once.
 *
 * TLS files on a frontend (written by cert-sync, read by nginx): <tlsDir>/certs/<cert>.crt and
 * <tlsDir>/private/<cert>.key (0600), as /etc/ssl keeps them; tlsDir is settings.frontend.tlsDir.
 * Pure: the state comes in (src/lib/frontend/registry.ts reads it from etcd), text goes out.
 */
import {preconditionError} from '../errors.js'
import type {NodeState, NodeType} from '../nodes/record.js'
import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'
import {isIpv4} from '../spec/ipv4.js'
import {targetText, type FrontendRecord} from './endpoint.js'

/** Ports and paths the rendered files use; the defaults are settings.frontend's. */
export interface FrontendLayout {
  tlsDir: string
  httpPort: number
  acmePort: number
  ratholePort: number
  /** The address nginx and the Rathole server listen on publicly; '' for every address. */
  listenAddress: string
}

export const defaultLayout = (): FrontendLayout => ({
  tlsDir: settings.frontend.tlsDir,
  httpPort: settings.frontend.httpPort,
  acmePort: settings.frontend.acmePort,
  ratholePort: settings.frontend.ratholePort,
  listenAddress: '',
})

export interface FrontendNode {
  name: string
  type: NodeType
  state: NodeState
  ip?: string
}

/** What the rendering reads from etcd. */
export interface FrontendState {
  endpoints: FrontendRecord[]
  nodes: FrontendNode[]
  /** Each endpoint certificate's SANs (nginx's server_name takes the DNS names). */
  certSans: Record<string, string[]>
  /** Each spec service's VIP: a service target is reached there. */
  serviceVips: Record<string, string | undefined>
  /**
   * Where ACME HTTP-01 challenges are answered: the admin VIP, where the core nodes' `serve
   * --acme-http` answers from etcd (a frontend holds no etcd credentials). Loopback without one.
   */
  acmeAnswerer?: string
  /** Whether the cluster CA has signed a CRL (certs/crl): nginx checks client certificates against it. */
  crl?: boolean
}

export interface RenderedFile {
  /** The file's name (in --out, and under its directory on the node). */
  name: string
  content: string
  /** Whether it holds Rathole tokens. */
  secret: boolean
}

export interface NodeFrontendConfig {
  node: string
  type: 'frontend' | 'core'
  files: RenderedFile[]
}

/** What printed configs hold instead of a token. */
export const REDACTED = '<redacted>'

export const certPaths = (tlsDir: string, cert: string) => ({cert: `${tlsDir}/certs/${cert}.crt`, key: `${tlsDir}/private/${cert}.key`})

/** The cluster's trust file and CRL on a frontend: what nginx verifies client certificates with. */
export const trustPaths = (tlsDir: string) => ({ca: `${tlsDir}/ca.crt`, crl: `${tlsDir}/crl.pem`})

/** Whether the frontends need the CRL: an endpoint checks client certificates, and one has been signed. */
export const needsCrl = (state: FrontendState): boolean => state.crl === true && state.endpoints.some((e) => e.clientAuth)

/** The frontends that serve the endpoints: ready, with an address. */
export const servingFrontends = (nodes: FrontendNode[]): FrontendNode[] => nodes.filter((n) => n.type === 'frontend' && n.state === 'ready' && n.ip !== undefined)

const byName = <T extends {name: string}>(items: T[]): T[] => [...items].sort((a, b) => a.name.localeCompare(b.name))

const listen = (layout: FrontendLayout, port: number): string => (layout.listenAddress ? `${layout.listenAddress}:${port}` : String(port))

/** The nginx site of every frontend node (the same on each). */
export function renderNginxSite(state: FrontendState, layout: FrontendLayout = defaultLayout()): string {
  const endpoints = byName(state.endpoints).map((e) => {
    const dnsNames = e.cert ? (state.certSans[e.cert] ?? []).filter((san) => !isIpv4(san)) : []
    return {
      name: e.name,
      target: targetText(e.target),
      listen: listen(layout, e.port),
      tunnelPort: e.tunnelPort,
      serverNames: dnsNames.length > 0 ? dnsNames.join(' ') : '_',
      tls: e.cert ? certPaths(layout.tlsDir, e.cert) : undefined,
      plain: e.cert === undefined,
      clientAuth: e.cert && e.clientAuth ? trustPaths(layout.tlsDir).ca : undefined,
      // Without a CRL nothing was ever revoked: nginx needs none to check against.
      crl: e.cert && e.clientAuth && state.crl ? trustPaths(layout.tlsDir).crl : undefined,
    }
  })
  const acmeUpstream = `${state.acmeAnswerer ?? '127.0.0.1'}:${layout.acmePort}`
  return renderTemplate('frontend/nginx-site.conf', {httpListen: listen(layout, layout.httpPort), acmeUpstream, tlsDir: layout.tlsDir, endpoints})
}

/** The Rathole server of a frontend node. */
export function renderRatholeServer(node: string, state: FrontendState, layout: FrontendLayout = defaultLayout(), options: {redact: boolean} = {redact: true}): string {
  const services = byName(state.endpoints).map((e) => ({name: e.name, bindAddr: `127.0.0.1:${e.tunnelPort}`, token: token(e, options.redact)}))
  return renderTemplate('frontend/rathole-server.toml', {node, bindAddr: `${layout.listenAddress || '0.0.0.0'}:${layout.ratholePort}`, services})
}

/** The Rathole client (on a core node) that serves every endpoint through one frontend. */
export function renderRatholeClient(frontend: FrontendNode, state: FrontendState, layout: FrontendLayout = defaultLayout(), options: {redact: boolean} = {redact: true}): string {
  if (!frontend.ip) throw preconditionError('FRONTEND_NO_ADDRESS', `Frontend node ${frontend.name} has no address yet.`, 'Give it a fixed ip: in the spec, or wait for its DHCP lease.')
  const services = byName(state.endpoints).map((e) => ({name: e.name, localAddr: localAddress(e, state), token: token(e, options.redact)}))
  return renderTemplate('frontend/rathole-client.toml', {frontend: frontend.name, remoteAddr: `${frontend.ip}:${layout.ratholePort}`, services})
}

/** The name of the Rathole client config that serves every endpoint through FRONTEND. */
export const ratholeClientFileName = (frontend: string): string => `rathole-client-${frontend}.toml`

/** Whether a file name is one ratholeClientFileName gives. */
export const isRatholeClientFileName = (name: string): boolean => /^rathole-client-[a-z0-9._-]+\.toml$/.test(name)

/** A core node's Rathole clients: one per serving frontend, by the frontend's name. */
export function renderRatholeClients(state: FrontendState, layout: FrontendLayout = defaultLayout(), options: {redact: boolean} = {redact: true}): RenderedFile[] {
  return byName(servingFrontends(state.nodes)).map((f) => ({name: ratholeClientFileName(f.name), content: renderRatholeClient(f, state, layout, options), secret: true}))
}

/** Every file NODE gets: a frontend its nginx site and Rathole server, a core node one client per serving frontend. */
export function renderNodeConfig(state: FrontendState, nodeName: string, layout: FrontendLayout = defaultLayout(), options: {redact: boolean} = {redact: true}): NodeFrontendConfig {
  const node = state.nodes.find((n) => n.name === nodeName)
  if (!node) throw preconditionError('NODE_NOT_FOUND', `No node named "${nodeName}".`, 'List the nodes with: xcluster node list')
  if (node.type === 'frontend') {
    return {
      node: node.name,
      type: 'frontend',
      files: [
        {name: 'nginx-site.conf', content: renderNginxSite(state, layout), secret: false},
        {name: 'rathole-server.toml', content: renderRatholeServer(node.name, state, layout, options), secret: true},
      ],
    }
  }
  if (node.type === 'core') {
    return {node: node.name, type: 'core', files: renderRatholeClients(state, layout, options)}
  }
  throw preconditionError(
    'FRONTEND_NOT_FOR_NODE',
    `Node ${node.name} is a ${node.type} node: only frontend nodes (nginx, Rathole server) and core nodes (Rathole clients) get frontend configuration.`,
    'Render a frontend or a core node (xcluster node list shows their types).',
  )
}

function localAddress(e: FrontendRecord, state: FrontendState): string {
  if (e.target.kind === 'host') return `${e.target.host}:${e.target.port}`
  const vip = state.serviceVips[e.target.service]
  if (!vip) {
    throw preconditionError(
      'FRONTEND_TARGET_UNRESOLVED',
      `Endpoint ${e.name} goes to service ${e.target.service}, which the spec no longer gives a VIP.`,
      `Give the service a vip: in the spec, or expose the endpoint again with --to HOST:${e.target.port}.`,
    )
  }
  return `${vip}:${e.target.port}`
}

function token(e: FrontendRecord, redact: boolean): string {
  if (redact) return REDACTED
  // Goes into a TOML string as it is: only what newToken() makes may.
  if (!/^[\w-]+$/.test(e.token)) throw new Error(`frontend ${e.name}: its token is not base64url`)
  return e.token
}
