import type {BootstrapContext} from '../../bootstrap/context.js'
import {renderDnsmasqConfig} from '../../dhcp/dnsmasq.js'
import {renderKeepalivedConfig} from '../../election/keepalived.js'
import {renderServeEnv, renderServeUnit} from '../../election/units.js'
import {renderTemplate} from '../../render/template.js'
import {IN_PROCESS_SERVICES} from '../../spec/validate.js'
import {settings} from '../../settings.js'
import {shellQuote, type SshHost} from '../../ssh/index.js'
import type {Phase} from '../../tasks/phase.js'
import type {NodeHost} from '../context.js'
import {ensureFile} from '../ensure-file.js'
import {unitsStartedBefore} from '../unit-age.js'
import {installLayout} from '../../release/layout.js'
import {coreHosts, corePart} from './hosts.js'

/**
 * Makes a systemd unit enabled and running, restarting it when its configuration changed in this
 * run (or starting it when it is not running); a unit already as wanted is left alone.
 */
async function ensureUnit(ctx: BootstrapContext, host: NodeHost, ssh: SshHost, unit: string, changed: boolean, why = 'its configuration changed'): Promise<void> {
  const enabled = (await ssh.systemctl('is-enabled', unit)).stdout.trim() === 'enabled'
  const active = (await ssh.systemctl('is-active', unit)).stdout.trim() === 'active'
  if (!enabled) await ctx.wet(host, `enable ${unit}`, () => ssh.run(`systemctl enable ${unit}`, {sudo: true}))
  if (!active) await ctx.wet(host, `start ${unit}`, () => ssh.run(`systemctl start ${unit}`, {sudo: true}))
  else if (changed) await ctx.wet(host, `restart ${unit} (${why})`, () => ssh.run(`systemctl restart ${unit}`, {sudo: true}))
}

/** Writes a unit file; reloads systemd when it changed. Returns whether it changed. */
async function ensureUnitFile(ctx: BootstrapContext, host: NodeHost, ssh: SshHost, unit: string, content: string): Promise<boolean> {
  const changed = await ensureFile(ctx, host, ssh, {path: `/etc/systemd/system/${unit}`, content})
  if (changed) await ctx.wet(host, 'reload systemd', () => ssh.systemctl('daemon-reload'))
  return changed
}

/** The services a core node campaigns for: every one in the spec that may run there (dhcp and provision have their own flags). */
function electedHere(ctx: BootstrapContext, node: string): string[] {
  return (ctx.spec.services ?? []).filter((s) => !(IN_PROCESS_SERVICES as readonly string[]).includes(s.name) && (!s.nodes || s.nodes.includes(node))).map((s) => s.name)
}

/**
 * `xcluster serve` on every core node: the DHCP/PXE server (answering only as the fenced dhcp
 * leader), the elections of the spec's services, as the serve identity of the node, over TLS, and
 * the health API over HTTPS with the node's server certificate.
 */
export const serveUnitPhase: Phase<NodeHost, BootstrapContext> = {
  id: 'serve-unit',
  title: 'Run xcluster serve on the core nodes (DHCP, elections, the health API)',
  hosts: coreHosts,
  shouldRun: corePart,
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const env = renderServeEnv({
      etcd: ctx.bootstrap.endpoints.join(','),
      cluster: ctx.bootstrap.cluster,
      elect: electedHere(ctx, host.name),
      extraArgs: ['--dhcp', '--interface', settings.keepalived.interface, '--provision', '--certs', '--http', `:${settings.serveUnit.httpPort}`, '--acme-http', `:${settings.frontend.acmePort}`],
      tls: true,
    })
    const envChanged = await ensureFile(ctx, host, ssh, {path: settings.serveUnit.envFile, content: env, mode: 0o640})
    const unitChanged = await ensureUnitFile(ctx, host, ssh, settings.serveUnit.name, renderServeUnit())
    // A release switched since serve started (a re-run with a new build) leaves it running the old one.
    const oldRelease = (await unitsStartedBefore(ssh, installLayout().current, [settings.serveUnit.name])).length > 0
    const why = envChanged || unitChanged ? 'its configuration changed' : 'it runs the release before the one switched to'
    await ensureUnit(ctx, host, ssh, settings.serveUnit.name, envChanged || unitChanged || oldRelease, why)
  },
}

/** keepalived holding the admin VIP on the healthy core node with the highest priority. */
export const keepalivedPhase: Phase<NodeHost, BootstrapContext> = {
  id: 'keepalived',
  title: 'Hold the admin VIP with keepalived on the core nodes',
  hosts: coreHosts,
  shouldRun: corePart,
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const check = renderTemplate('node/xcluster-admin-healthy', {etcdUnit: 'etcd-member.service', serveUnit: settings.serveUnit.name})
    const checkChanged = await ensureFile(ctx, host, ssh, {path: settings.keepalived.trackScript, content: check, mode: 0o755})
    const config = renderKeepalivedConfig(ctx.spec, {node: host.name})
    const configChanged = await ensureFile(ctx, host, ssh, {path: '/etc/keepalived/keepalived.conf', content: config})
    await ensureUnit(ctx, host, ssh, 'keepalived.service', checkChanged || configChanged)
  },
}

/** DNS for the cluster's names and TFTP for the iPXE binaries, on every core node (dnsmasq, DHCP off). */
export const dnsTftpPhase: Phase<NodeHost, BootstrapContext> = {
  id: 'dns-tftp',
  title: 'Serve DNS and TFTP from the core nodes',
  hosts: coreHosts,
  shouldRun: corePart,
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const {configFile, tftpRoot, unit} = settings.coreDns
    // The iPXE binaries come with Debian's ipxe package; TFTP serves them from its own root.
    const linked = await ssh.exec(`test -L ${shellQuote(tftpRoot)}`)
    if (linked.code !== 0)
      await ctx.wet(host, `link ${tftpRoot} to the iPXE binaries`, () => ssh.run(`mkdir -p $(dirname ${shellQuote(tftpRoot)}) && ln -sfn /usr/lib/ipxe ${shellQuote(tftpRoot)}`, {sudo: true}))
    const config = renderDnsmasqConfig(ctx.spec, {interface: settings.keepalived.interface, tftpRoot})
    const configChanged = await ensureFile(ctx, host, ssh, {path: configFile, content: config})
    const unitChanged = await ensureUnitFile(ctx, host, ssh, unit, renderTemplate('node/xcluster-dns.service', {configFile}))
    await ensureUnit(ctx, host, ssh, unit, configChanged || unitChanged)
  },
}
