import type {BootstrapContext} from '../../bootstrap/context.js'
import {issueClientCertificate} from '../../certs/cluster-pki.js'
import {certificateInfo, issuedBy, trustBundle} from '../../certs/authority.js'
import {identity} from '../../certs/identities.js'
import {adminTlsPaths, nodeTlsFiles} from '../../certs/paths.js'
import {writeAdminCredentials} from '../../certs/cluster-pki.js'
import {ExitStatus, XclusterError} from '../../errors.js'
import {migrateClusterState} from '../../etcd/migrate.js'
import {readOperatorContext, writeOperatorContext} from '../../etcd/operator-context.js'
import {settings} from '../../settings.js'
import {shellQuote} from '../../ssh/index.js'
import type {RunSummary} from '../../tasks/runner.js'
import type {Phase} from '../../tasks/phase.js'
import {existsSync, readFileSync} from 'node:fs'
import type {NodeHost} from '../context.js'
import {adminPart, seedHost} from './hosts.js'

/** The operator's own client certificate, on the admin host beside the cluster secret: kept while valid. */
async function ensureAdminCredentials(ctx: BootstrapContext): Promise<void> {
  const paths = adminTlsPaths(ctx.bootstrap.cluster)
  const ca = await ctx.ca()
  if (existsSync(paths.cert) && existsSync(paths.key) && existsSync(paths.ca)) {
    const pem = readFileSync(paths.cert, 'utf8')
    const info = certificateInfo(pem)
    if (info.commonName === identity.admin && Date.parse(info.notAfter) > Date.now() + settings.certs.renewBeforeDays * 86_400_000 && (await issuedBy(ca, pem))) return
  }
  await ctx.wet(ctx.seed, `write the operator's etcd client certificate (${identity.admin}) to ${paths.cert}`, async () => {
    writeAdminCredentials(ctx.bootstrap.cluster, trustBundle(ca), await issueClientCertificate(ca, identity.admin))
  })
}

/**
 * The cluster's state (spec, nodes, MACs, host-key pins, the CA sealed, this run's journal) moves
 * from the admin host's etcd into the cluster's own, in one verified copy; the run goes on there.
 * The operator's commands use the cluster from now on: bootstrap leaves a context (endpoints and
 * TLS files) beside the operator's credentials, so `xcluster node list` needs no flags.
 */
export const migrateStatePhase: Phase<NodeHost, BootstrapContext> = {
  id: 'migrate-state',
  title: "Move the cluster's state into its own etcd",
  hosts: seedHost,
  shouldRun: adminPart,
  async run(ctx, host) {
    await ensureAdminCredentials(ctx)
    if (ctx.onClusterStore) return
    if (ctx.dryRun) {
      ctx.plan.set(host.name, [
        ...(ctx.plan.get(host.name) ?? []),
        `copy the cluster's state from ${ctx.initialStore.connection.endpoints.join(',')} to ${ctx.bootstrap.endpoints.join(',')} and verify it`,
      ])
      return
    }
    const cluster = await ctx.clusterStore()
    const report = await migrateClusterState(ctx.store, cluster)
    ctx.note(host, `copied ${report.copied} keys in ${report.batches} transactions; ${report.target.keys} keys, sha256 ${report.target.sha256.slice(0, 12)} on both sides`)
    if (report.copied > 0)
      ctx.addChanges(host.name, [`copy ${report.copied} keys of cluster state into the cluster's etcd (verified: ${report.target.keys} keys, sha256 ${report.target.sha256.slice(0, 12)})`])
    await ctx.moveToClusterStore(cluster)
    const paths = adminTlsPaths(ctx.bootstrap.cluster)
    if (!readOperatorContext(ctx.bootstrap.cluster))
      writeOperatorContext({cluster: ctx.bootstrap.cluster, endpoints: ctx.bootstrap.endpoints, ca: paths.ca, cert: paths.cert, key: paths.key, writtenAt: new Date().toISOString()})
  },
}

/** The command the seed carries the bootstrap on with: as its serve identity at first (it mints the operator's role from the CA). */
export function continuationCommand(ctx: BootstrapContext, runId: string): string {
  const f = nodeTlsFiles
  return `${settings.serveUnit.bin} bootstrap --continue ${runId} --cluster ${ctx.bootstrap.cluster} --etcd ${ctx.bootstrap.endpoints.join(',')} --etcd-ca ${f.ca} --etcd-cert ${f.clientCert} --etcd-key ${f.clientKey}`
}

/**
 * The admin host's last step: the seed carries the run on (provisioning its peers with the
 * cluster key, joining them to etcd, deploying the services) in a transient systemd unit of its
 * own, so the operator's laptop may go away now. While it stays, it follows the seed's progress
 * and reports how the run ended; a failure there is resumed from here as from anywhere.
 */
export const handOverPhase: Phase<NodeHost, BootstrapContext> = {
  id: 'hand-over',
  title: 'Carry the bootstrap on from the seed (the laptop may go)',
  hosts: seedHost,
  shouldRun: adminPart,
  async run(ctx, host) {
    if (ctx.dryRun) {
      ctx.plan.set(host.name, [...(ctx.plan.get(host.name) ?? []), `run the rest of the bootstrap on ${host.name}: ${continuationCommand(ctx, 'RUN')}`])
      return
    }
    const runId = ctx.runId as string
    const ssh = await ctx.ssh(host)
    const unit = settings.bootstrap.continuationUnit
    await ctx.journal?.handOver(runId)
    await ssh.run(
      `rm -f ${shellQuote(settings.bootstrap.continuationSummary)}; systemctl reset-failed ${unit} 2>/dev/null; systemd-run --quiet --collect --unit=${unit} --setenv=NO_COLOR=1 ${continuationCommand(ctx, runId)}`,
      {sudo: true},
    )
    const deadline = Date.now() + settings.bootstrap.followTimeoutMs
    let shown = ''
    for (;;) {
      const state = await ssh.exec(`systemctl is-active ${unit}; journalctl -u ${unit} -o cat --no-pager -n 1 2>/dev/null`, {sudo: true})
      const [active = '', last = ''] = state.stdout.trim().split('\n')
      if (last && last !== shown && !last.includes('/run/systemd/transient/')) ctx.note(host, (shown = last))
      if (active !== 'active' && active !== 'activating') break
      if (Date.now() > deadline) {
        throw new XclusterError(`The seed is still carrying the bootstrap on after ${settings.bootstrap.followTimeoutMs / 60_000} minutes; stopped following it.`, {
          code: 'BOOTSTRAP_FOLLOW_TIMEOUT',
          exit: ExitStatus.failure,
          suggestion: `Follow it on ${host.name} (journalctl -fu ${unit}) or with xcluster runs show ${runId}.`,
        })
      }
      await new Promise((r) => setTimeout(r, 500))
    }
    const summaryText = await ssh.exec(`cat ${shellQuote(settings.bootstrap.continuationSummary)}`, {sudo: true})
    const summary = summaryText.code === 0 ? (JSON.parse(summaryText.stdout) as RunSummary) : undefined
    for (const [name, made] of Object.entries(summary?.plan ?? {})) ctx.addChanges(name, made)
    if (summary?.result !== 'succeeded') {
      const log = await ssh.exec(`journalctl -u ${unit} -o cat --no-pager -n 15`, {sudo: true})
      const failures = (summary?.hosts ?? []).filter((h) => h.failure).map((h) => `${h.name} (${h.failure?.phase}): ${h.failure?.message}`)
      throw new XclusterError(`The seed could not finish the bootstrap (run ${runId}): ${failures.join('; ') || log.stdout.trim().split('\n').slice(-3).join(' | ')}`, {
        code: 'BOOTSTRAP_CONTINUATION_FAILED',
        exit: ExitStatus.partial,
        suggestion: 'Fix the cause, then resume from here: xcluster bootstrap --resume ' + runId,
      })
    }
  },
}
