/**
 * `xcluster frontend sync`: what etcd says each frontend node serves, put on it over SSH: the
 * endpoints' certificates and keys, the CA, the nginx site and the Rathole server's config. Pushed
 * from a host that holds the cluster secret (the admin host, or a core node), because a frontend
 * is the cluster's exposed edge: it holds no etcd credentials and no cluster secret, only the
 * keys of the certificates it serves.
 *
 * nginx takes new files only if `nginx -t` accepts them: the changed files are staged beside the
 * old ones, swapped in, tested, and put back as they were when nginx refuses them, so a bad
 * certificate never replaces a good one and nginx is never reloaded with it. A reload (graceful:
 * open connections finish on the old workers) follows only a passed test.
 */
import {createHash} from 'node:crypto'
import {posix} from 'node:path'

import {runOnNodes, type NodeActionOptions} from '../actions/node-run.js'
import {readCrl} from '../certs/revocation.js'
import {loadTrustBundle, loadIssuedCertificate} from '../certs/store.js'
import type {ClusterSecret} from '../certs/secret.js'
import {ExitStatus, preconditionError, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {commandLine} from '../output/command-line.js'
import {connectPhase} from '../phases/connect.js'
import type {NodeHost, NodeRunContext} from '../phases/context.js'
import {settings} from '../settings.js'
import type {SshHost} from '../ssh/index.js'
import {shellQuote} from '../ssh/shell.js'
import type {Phase} from '../tasks/phase.js'
import {assertRunSucceeded, type RunSummary} from '../tasks/runner.js'
import {readFrontendState} from './registry.js'
import {certPaths, defaultLayout, needsCrl, renderNodeConfig, servingFrontends, trustPaths, type FrontendState} from './render.js'

/** One file a frontend gets; `content` never leaves this module (keys, tokens). */
export interface FrontendFile {
  path: string
  mode: number
  /** Holds a private key or a token: never shown, never returned. */
  secret: boolean
  content: string
}

/** What a sync did on a node: the paths it changed (or would), nothing of their content. */
export interface NodeSyncReport {
  node: string
  changed: string[]
  reloaded: boolean
}

export interface FrontendSyncResult {
  nodes: NodeSyncReport[]
  run: RunSummary
}

const STAGED = '.xcluster-new'
const PREVIOUS = '.xcluster-prev'

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** Every file a frontend node gets for `state`: keys opened with the cluster secret. */
export async function frontendFiles(store: EtcdStore, state: FrontendState, node: string, secret: () => ClusterSecret): Promise<FrontendFile[]> {
  const layout = defaultLayout()
  const config = renderNodeConfig(state, node, layout, {redact: false})
  const site = config.files.find((f) => f.name === 'nginx-site.conf')
  const rathole = config.files.find((f) => f.name === 'rathole-server.toml')
  if (!site || !rathole) throw new Error(`frontendFiles: ${node} is not a frontend node`)
  const files: FrontendFile[] = [
    {path: trustPaths(layout.tlsDir).ca, mode: 0o644, secret: false, content: await loadTrustBundle(store)},
    {path: settings.frontend.nginxSite, mode: 0o644, secret: false, content: site.content},
    {path: settings.frontend.ratholeServerConfig, mode: 0o600, secret: true, content: rathole.content},
  ]
  if (needsCrl(state)) {
    const crl = await readCrl(store)
    // Read again after the state: a CRL cannot be unsigned, so it is there.
    if (crl) files.push({path: trustPaths(layout.tlsDir).crl, mode: 0o644, secret: false, content: crl.pem})
  }
  const certs = [...new Set(state.endpoints.flatMap((e) => (e.cert ? [e.cert] : [])))].sort()
  for (const name of certs) {
    const issued = await loadIssuedCertificate(store, name, secret())
    const paths = certPaths(layout.tlsDir, name)
    // nginx sends what ssl_certificate holds: an ACME certificate's intermediates must follow it (the CA's root is in browsers, they are not).
    files.push({path: paths.cert, mode: 0o644, secret: false, content: issued.certPem + (issued.chainPem ?? '')}, {path: paths.key, mode: 0o600, secret: true, content: issued.key.exportPem()})
  }
  return files
}

/** The files whose content, mode or owner differ on the node (one round trip). */
async function changedFiles(ssh: SshHost, files: FrontendFile[]): Promise<FrontendFile[]> {
  const probe = files
    .map((f) => `if [ -f ${shellQuote(f.path)} ]; then echo "$(stat -c '%a %U:%G' ${shellQuote(f.path)}) $(sha256sum < ${shellQuote(f.path)} | cut -d' ' -f1)"; else echo missing; fi`)
    .join('; ')
  const res = await ssh.run(probe, {sudo: true})
  const lines = res.stdout.trimEnd().split('\n')
  return files.filter((f, i) => lines[i] !== `${f.mode.toString(8)} root:root ${sha256(f.content)}`)
}

/**
 * Swaps the staged files in, runs `nginx -t`, and puts every file back as it was (or removes the
 * new ones) when it fails; exits 3 with nginx's words then.
 */
function swapAndTestCommand(paths: string[]): string {
  const q = paths.map((p) => ({path: shellQuote(p), staged: shellQuote(p + STAGED), previous: shellQuote(p + PREVIOUS)}))
  const swap = q.map((f) => `if [ -e ${f.path} ]; then cp -p ${f.path} ${f.previous}; else rm -f ${f.previous}; fi; mv -f ${f.staged} ${f.path}`)
  const restore = q.map((f) => `if [ -e ${f.previous} ]; then mv -f ${f.previous} ${f.path}; else rm -f ${f.path}; fi`)
  const forget = q.map((f) => `rm -f ${f.previous}`)
  return [...swap, `if ! out=$(nginx -t 2>&1); then ${restore.join('; ')}; echo "$out" >&2; exit 3; fi`, ...forget].join('; ')
}

/** Graceful: systemd's reload where systemd runs nginx, else the master's own signal (or a start when none runs). */
const RELOAD_NGINX =
  'if [ -d /run/systemd/system ] && systemctl is-enabled --quiet nginx 2>/dev/null; then systemctl reload-or-restart nginx; elif [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then nginx -s reload; else nginx; fi'

export interface FrontendSyncOptions extends NodeActionOptions {
  /** Opens the certificates' keys (read only when an endpoint has a certificate). */
  secret: () => ClusterSecret
}

/** Syncs the named frontend nodes, or every ready one. */
export async function syncFrontends(store: EtcdStore, names: string[], options: FrontendSyncOptions): Promise<FrontendSyncResult> {
  const state = await readFrontendState(store)
  const serving = servingFrontends(state.nodes).map((n) => n.name)
  const targets = names.length > 0 ? names : serving
  if (targets.length === 0) {
    throw preconditionError('FRONTEND_NONE_READY', 'No frontend node is ready to sync.', `Add one (${commandLine(['node', 'add', 'f1'])}), or see the nodes: ${commandLine(['node', 'list'])}`)
  }
  for (const name of targets) {
    const node = state.nodes.find((n) => n.name === name)
    if (node && node.type !== 'frontend')
      throw preconditionError('FRONTEND_NOT_FOR_NODE', `${name} is a ${node.type} node, not a frontend.`, `Sync the frontends: ${commandLine(['frontend', 'sync'])}`)
  }
  const reports = new Map<string, NodeSyncReport>()
  const wanted = new Map<string, FrontendFile[]>()

  const inspect: Phase<NodeHost, NodeRunContext> = {
    id: 'compare-files',
    title: 'Compare the certificates and configuration with etcd',
    readOnly: true,
    async run(ctx, host) {
      const files = await frontendFiles(store, state, host.name, options.secret)
      const changed = await changedFiles(await ctx.ssh(host), files)
      wanted.set(host.name, changed)
      reports.set(host.name, {node: host.name, changed: changed.map((f) => f.path), reloaded: false})
    },
  }

  const install: Phase<NodeHost, NodeRunContext> = {
    id: 'install-files',
    title: 'Install the changed files if nginx -t accepts them, then reload nginx',
    async run(ctx, host) {
      const changed = wanted.get(host.name) ?? []
      if (changed.length === 0) return
      const ssh = await ctx.ssh(host)
      const dirs = [...new Set(changed.map((f) => posix.dirname(f.path)))]
      await ctx.wet(host, `stage ${changed.map((f) => f.path).join(', ')}`, async () => {
        await ssh.run(`mkdir -p ${dirs.map(shellQuote).join(' ')}`, {sudo: true})
        for (const f of changed) await ssh.upload(f.content, f.path + STAGED, {mode: f.mode, owner: 'root', group: 'root'})
      })
      await ctx.wet(host, 'swap them in and check with nginx -t (put back if refused)', async () => {
        const res = await ssh.exec(swapAndTestCommand(changed.map((f) => f.path)), {sudo: true, timeoutMs: settings.frontend.nginxTestTimeoutMs})
        if (res.code === 0) return
        await ssh.exec(`rm -f ${changed.map((f) => shellQuote(f.path + STAGED)).join(' ')}`, {sudo: true})
        throw new XclusterError(
          `nginx on ${host.name} refused the new files, which were put back as they were (nginx keeps serving the old ones): ${res.stderr.trim().split('\n').slice(-3).join(' ')}`,
          {
            code: 'FRONTEND_NGINX_REFUSED',
            exit: ExitStatus.precondition,
            suggestion: `Check the endpoints' certificates (${commandLine(['frontend', 'list'])}); renew a bad one (${commandLine(['cert', 'renew', 'NAME'])}) and sync again.`,
          },
        )
      })
      await ctx.wet(host, 'reload nginx', async () => {
        await ssh.run(RELOAD_NGINX, {sudo: true})
        const report = reports.get(host.name)
        if (report) report.reloaded = true
      })
    },
  }

  const {summary} = await runOnNodes(store, 'frontend sync', targets, [connectPhase, inspect, install], options)
  assertRunSucceeded(summary)
  return {nodes: targets.map((n) => reports.get(n) ?? {node: n, changed: [], reloaded: false}), run: summary}
}
