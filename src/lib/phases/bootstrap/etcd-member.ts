import type {BootstrapContext} from '../../bootstrap/context.js'
import {identity} from '../../certs/identities.js'
import {nodeTlsFiles} from '../../certs/paths.js'
import {configureAccess, describeChange} from '../../etcd/access.js'
import {nodeMemberTls, renderEtcdMemberUnit, renderMemberConfig, type EtcdMemberPlan} from '../../etcd/cluster-config.js'
import type {EtcdStore} from '../../etcd/store.js'
import {preconditionError} from '../../errors.js'
import {settings} from '../../settings.js'
import {shellQuote, type SshHost} from '../../ssh/index.js'
import type {Phase} from '../../tasks/phase.js'
import type {NodeHost} from '../context.js'
import {ensureFile} from '../ensure-file.js'
import {corePart, peerHosts, seedHost} from './hosts.js'

const UNIT = 'etcd-member.service'

/** Whether the member on this node has its data (was started once): its config no longer matters then. */
async function memberInitialized(ssh: SshHost): Promise<boolean> {
  return (await ssh.exec(`test -d ${shellQuote(`${settings.etcdMember.dataDir}/member`)}`, {sudo: true})).code === 0
}

/** etcdctl on the node itself, as its serve identity (a certificate is all a health check needs). */
function nodeEtcdctl(member: EtcdMemberPlan, args: string): string {
  const f = nodeTlsFiles
  return `ETCDCTL_API=3 etcdctl --endpoints=${member.clientUrl} --cacert=${f.ca} --cert=${f.clientCert} --key=${f.clientKey} --dial-timeout=2s --command-timeout=3s ${args}`
}

/** Waits until the member answers a health check (it has joined a quorum). */
async function waitMemberHealthy(ssh: SshHost, member: EtcdMemberPlan): Promise<void> {
  const deadline = Date.now() + settings.bootstrap.memberHealthyTimeoutMs
  for (;;) {
    if ((await ssh.exec(nodeEtcdctl(member, 'endpoint health'), {sudo: true})).code === 0) return
    if (Date.now() > deadline) {
      const log = await ssh.exec(`journalctl -u ${UNIT} -n 20 --no-pager -o cat`, {sudo: true})
      throw preconditionError(
        'ETCD_MEMBER_UNHEALTHY',
        `The etcd member on ${member.name} did not become healthy in ${settings.bootstrap.memberHealthyTimeoutMs / 1000} s: ${log.stdout.trim().split('\n').slice(-5).join(' | ')}`,
        `Look at journalctl -u ${UNIT} on ${member.name}, then resume the run.`,
      )
    }
    await new Promise((r) => setTimeout(r, 500))
  }
}

/** Debian's own etcd.service (started by the package on install) is not ours: stopped and masked. */
async function maskPackagedEtcd(ctx: BootstrapContext, host: NodeHost, ssh: SshHost): Promise<void> {
  const state = (await ssh.exec('systemctl is-enabled etcd.service 2>/dev/null', {sudo: true})).stdout.trim()
  if (state === 'masked' || state === '') return
  await ctx.wet(host, "stop and mask Debian's etcd.service", () => ssh.run('systemctl disable --now etcd.service; systemctl mask etcd.service', {sudo: true}))
}

/** The member's config file and unit, written only before its first start (etcd ignores initial-* after). */
async function installMember(ctx: BootstrapContext, host: NodeHost, ssh: SshHost, members: EtcdMemberPlan[], state: 'new' | 'existing'): Promise<void> {
  await maskPackagedEtcd(ctx, host, ssh)
  await ensureFile(ctx, host, ssh, {
    path: settings.etcdMember.configFile,
    content: renderMemberConfig(ctx.bootstrap.cluster, members, host.name, {tls: nodeMemberTls, clusterState: state}),
    mode: 0o640,
  })
  if (await ensureFile(ctx, host, ssh, {path: `/etc/systemd/system/${UNIT}`, content: renderEtcdMemberUnit()})) {
    await ctx.wet(host, 'reload systemd', () => ssh.systemctl('daemon-reload'))
  }
}

async function startMember(ctx: BootstrapContext, host: NodeHost, ssh: SshHost, member: EtcdMemberPlan): Promise<void> {
  const active = (await ssh.systemctl('is-active', UNIT)).stdout.trim() === 'active'
  const enabled = (await ssh.systemctl('is-enabled', UNIT)).stdout.trim() === 'enabled'
  if (!active || !enabled) await ctx.wet(host, `enable and start ${UNIT}`, () => ssh.run(`systemctl enable --now ${UNIT}`, {sudo: true}))
  if (!ctx.dryRun) await waitMemberHealthy(ssh, member)
}

/**
 * The seed forms the cluster alone (a one-member etcd with TLS and client-certificate
 * authentication), then etcd's RBAC is set up with a root certificate minted for the run: the
 * operator's identity gets the admin role, each core node's serve daemon the serve role, and
 * authentication goes on last. Its peers join one by one later, from the seed.
 */
export const etcdSeedPhase: Phase<NodeHost, BootstrapContext> = {
  id: 'etcd-seed',
  title: "Form the cluster's etcd on the seed (TLS, client certificates, RBAC)",
  hosts: seedHost,
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const member = ctx.bootstrap.members.find((m) => m.name === host.name) as EtcdMemberPlan
    if (!(await memberInitialized(ssh))) await installMember(ctx, host, ssh, [member], 'new')
    await startMember(ctx, host, ssh, member)
    if (ctx.dryRun && !(await memberInitialized(ssh))) {
      ctx.plan.set(host.name, [...(ctx.plan.get(host.name) ?? []), 'set up etcd users and roles (admin, serve per core node) and enable authentication'])
      return
    }
    const root = await ctx.rootStore()
    try {
      const report = await configureAccess(root, {admins: [identity.admin], serve: ctx.bootstrap.core.map((n) => identity.serve(n.name))}, {dryRun: true})
      if (report.changes.length > 0) {
        await ctx.wet(host, `etcd access: ${report.changes.map(describeChange).join('; ')}`, () =>
          configureAccess(root, {admins: [identity.admin], serve: ctx.bootstrap.core.map((n) => identity.serve(n.name))}),
        )
      }
    } finally {
      await root.close()
    }
  },
}

/**
 * Adds a member. etcd refuses while the cluster has not been fully connected for a while
 * ("unhealthy cluster": the member added just before is still settling), so this waits that out.
 */
async function addMember(root: EtcdStore, member: EtcdMemberPlan): Promise<void> {
  const deadline = Date.now() + settings.bootstrap.memberHealthyTimeoutMs
  for (;;) {
    try {
      await root.client.cluster.memberAdd({peerURLs: [member.peerUrl]}, {deadline: Date.now() + settings.etcdCallTimeoutMs})
      return
    } catch (err) {
      const message = String((err as Error)?.message ?? err)
      // An add whose answer was lost may have gone through: then the member is listed.
      if ((await memberList(root).catch(() => [])).some((m) => m.peerURLs.includes(member.peerUrl))) return
      if (Date.now() > deadline || !/unhealthy cluster|not enough started members|UNAVAILABLE|deadline/i.test(message)) throw err
      await new Promise((r) => setTimeout(r, 1000))
    }
  }
}

/** The cluster's members as etcd lists them: name (empty until started) and peer URLs. */
async function memberList(store: EtcdStore): Promise<{id: string; name: string; peerURLs: string[]}[]> {
  const res = await store.call('list etcd members', (c) => c.cluster.memberList({}))
  return res.members.map((m) => ({id: String(m.ID), name: m.name, peerURLs: m.peerURLs}))
}

/**
 * A peer joins the running cluster: added as a member (by its peer URL, with root), configured
 * with the members so far and `existing`, started, and healthy before the next one is added:
 * etcd refuses to add a member while an added one has not started (it would count against the
 * quorum), so peers join one at a time.
 */
export const etcdJoinPhase: Phase<NodeHost, BootstrapContext> = {
  id: 'etcd-join',
  title: "Join the other core nodes to the cluster's etcd, one at a time",
  hosts: peerHosts,
  shouldRun: corePart,
  concurrency: 1,
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const member = ctx.bootstrap.members.find((m) => m.name === host.name) as EtcdMemberPlan
    if (ctx.dryRun && !ctx.onClusterStore) {
      ctx.plan.set(host.name, [...(ctx.plan.get(host.name) ?? []), `add ${host.name} to the cluster's etcd and start its member`])
      return
    }
    const root = await ctx.rootStore()
    try {
      const listed = await memberList(root)
      const known = listed.find((m) => m.peerURLs.includes(member.peerUrl))
      if (!known) await ctx.wet(host, `add ${host.name} (${member.peerUrl}) as an etcd member`, () => addMember(root, member))
      if (!(await memberInitialized(ssh))) {
        // The cluster as it will be with this member: everyone listed so far, plus this one.
        const names = new Map(ctx.bootstrap.members.map((m) => [m.peerUrl, m]))
        const members = [...(await memberList(root).catch(() => listed))].map((m) => names.get(m.peerURLs[0] ?? '')).filter((m): m is EtcdMemberPlan => m !== undefined)
        if (!members.some((m) => m.name === host.name)) members.push(member)
        await installMember(ctx, host, ssh, members, 'existing')
      }
      await startMember(ctx, host, ssh, member)
    } finally {
      await root.close()
    }
  },
}
