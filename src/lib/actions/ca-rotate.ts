/**
 * `xcluster cert ca rotate [--finish]`: a new cluster CA, trusted beside the old one until every
 * certificate is reissued, then the old one dropped. The order keeps etcd serving throughout:
 *
 * 1. begin (etcd, one transaction): the new CA signs from now on; the old one stays trusted;
 * 2. trust, one core node at a time: its trust file gets both CAs, its etcd member restarts
 *    (etcd reads trusted CAs only at start) and is waited for until healthy, then its serve
 *    (whose etcd client reads the file at start);
 * 3. reissue, one core node at a time and only once every node trusts both: the member's peer
 *    and server certificates and serve's, from the new CA (etcd loads its own certificate afresh
 *    on each handshake; serve restarts to use its new one);
 * 4. the operator's own certificate, and every stored certificate whose key etcd keeps;
 * 5. `--finish`, once nothing comes from the old CA: each node's trust file narrowed to the new
 *    CA (member and serve restarted again, one node at a time), then the old CA dropped.
 *
 * Every step compares first, so a run that stopped part-way is carried on by running it again.
 */
import {existsSync, readFileSync} from 'node:fs'

import {certificateInfo, createCa, issuedBy, pemCertificates, trustBundle, type CertificateAuthority} from '../certs/authority.js'
import {beginCaRotation, endCaRotation, readCaRotation, reissueFromPreviousCa, staleRefusal, type CaRotationState} from '../certs/ca-rotation.js'
import {issueClientCertificate} from '../certs/cluster-pki.js'
import {nodeTlsFiles} from '../certs/paths.js'
import {writePrivateFile, type ClusterSecret} from '../certs/secret.js'
import {loadCa} from '../certs/store.js'
import {ExitStatus, preconditionError, XclusterError} from '../errors.js'
import {withMemberEndpoint} from '../etcd/maintenance.js'
import {EtcdStore} from '../etcd/store.js'
import {NodeRegistry} from '../nodes/registry.js'
import {commandLine} from '../output/command-line.js'
import {connectPhase} from '../phases/connect.js'
import type {NodeHost, NodeRunContext} from '../phases/context.js'
import {installNodeTls, installNodeTrust, nodeTlsState} from '../phases/node-tls.js'
import {unitsStartedBefore} from '../phases/unit-age.js'
import {settings} from '../settings.js'
import {shellQuote} from '../ssh/index.js'
import type {Phase} from '../tasks/phase.js'
import {assertRunSucceeded, type RunSummary} from '../tasks/runner.js'
import {runOnNodes, type NodeActionOptions} from './node-run.js'

export interface CaRotateOptions extends NodeActionOptions {
  finish: boolean
  /** The new CA's validity (default settings.certs.caDays). */
  days?: number
  secret: () => ClusterSecret
}

export interface CaRotateResult {
  step: 'begun' | 'carried on' | 'finished' | 'would begin' | 'would carry on' | 'would finish'
  /** Where the CAs stand after the run (before it, with --dry-run). */
  ca: CaRotationState
  /** Stored certificates reissued from the new CA. */
  reissued: {name: string; oldSerial: string; serial: string}[]
  /** The operator's files rewritten (paths only). */
  operator: string[]
  /** The task list on the core nodes; absent when etcd records none (no node holds the CA then). */
  run?: RunSummary
}

const ETCD_UNIT = 'etcd-member.service'

export async function rotateCa(store: EtcdStore, options: CaRotateOptions): Promise<CaRotateResult> {
  return options.finish ? finishRotation(store, options) : carryRotation(store, options)
}

async function carryRotation(store: EtcdStore, options: CaRotateOptions): Promise<CaRotateResult> {
  const secret = options.secret()
  const before = await readCaRotation(store)
  let ca: CertificateAuthority
  let begun = false
  if (options.dryRun) {
    // A rotation not begun yet is planned with a CA made for the plan alone (never stored).
    ca = before.previous ? await loadCa(store, secret) : await plannedCa(store, secret, options.days)
  } else {
    ;({ca, begun} = await beginCaRotation(store, secret, {...(options.days ? {days: options.days} : {})}))
  }
  const operator: string[] = []
  // The operator must trust the new CA before any member presents a certificate from it.
  if (!options.dryRun) operator.push(...writeOperatorTrust(store, ca))
  const cluster = options.dryRun ? store : new EtcdStore(store.connection)
  try {
    const run = await runOnCoreNodes(cluster, [trustPhase(ca), reissuePhase(ca)], options)
    const reissued = []
    if (!options.dryRun) {
      operator.push(...(await reissueOperatorCertificate(store, ca)))
      reissued.push(...(await reissueFromPreviousCa(cluster, ca, secret)).reissued)
    }
    const step = options.dryRun ? (before.previous ? 'would carry on' : 'would begin') : begun ? 'begun' : 'carried on'
    return {step, ca: options.dryRun ? before : await readCaRotation(cluster), reissued, operator, run}
  } finally {
    if (cluster !== store) await cluster.close()
  }
}

async function finishRotation(store: EtcdStore, options: CaRotateOptions): Promise<CaRotateResult> {
  const before = await readCaRotation(store)
  if (!before.previous) {
    throw preconditionError('CA_ROTATION_NONE', `No CA rotation is under way: the cluster trusts its CA alone (${before.current.fingerprint}).`, `Begin one: ${commandLine(['cert', 'ca', 'rotate'])}`)
  }
  if (before.stale.length > 0) throw staleRefusal(before.stale.map((c) => c.name))
  const secret = options.secret()
  const ca = await loadCa(store, secret)
  const operator: string[] = []
  if (!options.dryRun) operator.push(...(await reissueOperatorCertificate(store, ca)))
  // A certificate of the old CA, reissued just now, is about to be refused: go on with the new one.
  const cluster = operator.length > 0 ? new EtcdStore(store.connection) : store
  try {
    // The new CA alone: what every trust file holds once the rotation is over.
    const narrowed: CertificateAuthority = {...ca, trustPem: ca.certPem}
    const run = await runOnCoreNodes(cluster, [reissuedCheckPhase(ca), trustPhase(narrowed)], options)
    if (options.dryRun) return {step: 'would finish', ca: before, reissued: [], operator, run}
    operator.push(...writeOperatorTrust(cluster, narrowed))
    await endCaRotation(cluster)
    return {step: 'finished', ca: await readCaRotation(cluster), reissued: [], operator, run}
  } finally {
    if (cluster !== store) await cluster.close()
  }
}

async function plannedCa(store: EtcdStore, secret: ClusterSecret, days?: number): Promise<CertificateAuthority> {
  const current = await loadCa(store, secret)
  const next = await createCa({cluster: store.keys.cluster, ...(days ? {days} : {})})
  return {...next, trustPem: trustBundle(next) + current.certPem}
}

async function runOnCoreNodes(store: EtcdStore, phases: Phase<NodeHost, NodeRunContext>[], options: CaRotateOptions): Promise<RunSummary | undefined> {
  const core = (await new NodeRegistry(store).list()).filter((n) => n.type === 'core' && n.state !== 'removed').map((n) => n.name)
  if (core.length === 0) return undefined
  const {summary} = await runOnNodes(store, 'cert ca rotate', core, [connectPhase, ...phases], options)
  assertRunSucceeded(summary)
  return summary
}

/** The node's trust file as `ca` wants it; when it changes, its member and serve restart to read it, one node at a time. */
function trustPhase(ca: CertificateAuthority): Phase<NodeHost, NodeRunContext> {
  return {
    id: ca.trustPem === ca.certPem ? 'trust-new-ca-only' : 'trust-both-cas',
    title: ca.trustPem === ca.certPem ? "Trust the new CA alone (each node's etcd member and serve restarted in turn)" : "Trust both CAs (each node's etcd member and serve restarted in turn)",
    concurrency: 1,
    requiresAll: true,
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      const now = await ssh.exec(`cat ${shellQuote(nodeTlsFiles.ca)}`, {sudo: true})
      const written = now.code === 0 && now.stdout === trustBundle(ca)
      if (!written) {
        const fingerprints = pemCertificates(trustBundle(ca)).map((p) => certificateInfo(p).fingerprint.slice(0, 23))
        await ctx.wet(host, `write ${nodeTlsFiles.ca} trusting ${fingerprints.join(' and ')}`, () => installNodeTrust(ssh, ca))
      }
      // A run that stopped between the write and a restart left a process reading the old file.
      const stale = written ? await unitsStartedBefore(ssh, nodeTlsFiles.ca, [ETCD_UNIT, settings.serveUnit.name]) : [ETCD_UNIT, settings.serveUnit.name]
      if (stale.includes(ETCD_UNIT)) await restartMember(ctx, host)
      if (stale.includes(settings.serveUnit.name)) await ctx.wet(host, `restart ${settings.serveUnit.name}`, () => ssh.run(`systemctl restart ${settings.serveUnit.name}`, {sudo: true}))
    },
  }
}

/** The node's member and serve certificates from the new CA (its trust file already holds both). */
function reissuePhase(ca: CertificateAuthority): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'reissue-node-certificates',
    title: "Reissue each core node's etcd and serve certificates from the new CA",
    concurrency: 1,
    requiresAll: true,
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      if ((await nodeTlsState(ssh, ca, host.name, host.ip as string)) === 'current') return
      await ctx.wet(host, `issue ${host.name}'s etcd peer, server and serve certificates from the new CA into ${settings.certs.nodeDir}`, () =>
        installNodeTls(ssh, ca, host.name, host.ip as string, {leaveTrust: true}),
      )
      // etcd loads its certificate afresh on every handshake; serve reads its own at start.
      await ctx.wet(host, `restart ${settings.serveUnit.name}`, () => ssh.run(`systemctl restart ${settings.serveUnit.name}`, {sudo: true}))
      await waitMemberHealthy(ctx, host)
    },
  }
}

/** Before the old CA is dropped: every node's certificates come from the new one. */
function reissuedCheckPhase(ca: CertificateAuthority): Phase<NodeHost, NodeRunContext> {
  return {
    id: 'check-node-certificates',
    title: "Check that each core node's certificates come from the new CA",
    readOnly: true,
    requiresAll: true,
    async run(ctx, host) {
      if ((await nodeTlsState(await ctx.ssh(host), ca, host.name, host.ip as string)) !== 'certificates') return
      throw preconditionError('CA_ROTATION_UNFINISHED', `${host.name}'s etcd or serve certificates are not the new CA's yet.`, `Carry the rotation on first: ${commandLine(['cert', 'ca', 'rotate'])}`)
    },
  }
}

async function restartMember(ctx: NodeRunContext, host: NodeHost): Promise<void> {
  const ssh = await ctx.ssh(host)
  // Restarting a member while another is down would take quorum away.
  if (!ctx.dryRun) await requireOthersHealthy(ctx, host)
  await ctx.wet(host, `restart ${ETCD_UNIT}`, () => ssh.run(`systemctl restart ${ETCD_UNIT}`, {sudo: true}))
  await waitMemberHealthy(ctx, host)
}

const memberEndpoint = (ctx: NodeRunContext, ip: string): string =>
  `${ctx.store.connection.endpoints.some((e) => e.startsWith('https://')) ? 'https' : 'http'}://${ip}:${settings.etcdMember.clientPort}`

async function requireOthersHealthy(ctx: NodeRunContext, host: NodeHost): Promise<void> {
  const others = ctx.cluster.filter((n) => n.type === 'core' && n.state !== 'removed' && n.name !== host.name && n.ip)
  for (const node of others) {
    const probe = await withMemberEndpoint(ctx.store.connection, memberEndpoint(ctx, node.ip as string), (m) => m.probe())
    if (probe.problem) {
      throw new XclusterError(`Not restarting ${host.name}'s etcd member: ${node.name}'s is not healthy (${probe.problem}), and quorum would be lost.`, {
        code: 'ETCD_QUORUM_AT_RISK',
        exit: ExitStatus.precondition,
        suggestion: `Bring ${node.name} back (${commandLine(['etcd', 'health'])}), then run the rotation again.`,
      })
    }
  }
}

async function waitMemberHealthy(ctx: NodeRunContext, host: NodeHost): Promise<void> {
  if (ctx.dryRun) return
  const deadline = Date.now() + settings.certs.rotateMemberTimeoutMs
  for (;;) {
    const probe = await withMemberEndpoint(ctx.store.connection, memberEndpoint(ctx, host.ip as string), (m) => m.probe())
    if (!probe.problem) return
    if (Date.now() > deadline) {
      throw new XclusterError(`${host.name}'s etcd member is not healthy ${settings.certs.rotateMemberTimeoutMs / 1000} s after its restart: ${probe.problem}`, {
        code: 'ETCD_MEMBER_NOT_BACK',
        exit: ExitStatus.failure,
        suggestion: `See its log (journalctl -u ${ETCD_UNIT} on ${host.name}); once it is back, run the rotation again.`,
      })
    }
    ctx.note(host, `waiting for its etcd member: ${probe.problem}`)
    await new Promise((r) => setTimeout(r, settings.update.pollMs))
  }
}

/** The operator's trust file (the connection's --etcd-ca) rewritten to hold what `ca` trusts. */
function writeOperatorTrust(store: EtcdStore, ca: CertificateAuthority): string[] {
  const path = store.connection.ca
  if (!path || (existsSync(path) && readFileSync(path, 'utf8') === trustBundle(ca))) return []
  writePrivateFile(path, trustBundle(ca))
  return [path]
}

/** The operator's own client certificate (the connection's --etcd-cert), reissued from `ca` with the same name unless it already comes from it. */
async function reissueOperatorCertificate(store: EtcdStore, ca: CertificateAuthority): Promise<string[]> {
  const {cert, key} = store.connection
  if (!cert || !key || !existsSync(cert)) return []
  const pem = readFileSync(cert, 'utf8')
  if (await issuedBy(ca, pem)) return []
  const issued = await issueClientCertificate(ca, certificateInfo(pem).commonName)
  writePrivateFile(key, issued.key.exportPem())
  writePrivateFile(cert, issued.certPem)
  return [cert, key]
}
