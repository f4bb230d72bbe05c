import {execFile} from 'node:child_process'
import {promisify} from 'node:util'

import {startNativeServices, writeComposeBundle} from '../../admin-services/index.js'
import {packageSettings} from '../../admin-services/packages.js'
import {ensureAdminClusterKey} from '../../bootstrap/cluster-key.js'
import type {BootstrapContext} from '../../bootstrap/context.js'
import {preconditionError} from '../../errors.js'
import {mirrorUrlPatterns} from '../../admin-services/packages.js'
import {renderTemplate} from '../../render/template.js'
import {settings} from '../../settings.js'
import type {Phase} from '../../tasks/phase.js'
import type {NodeHost} from '../context.js'
import {ensureFile} from '../ensure-file.js'
import {clusterCacheUrl} from '../package-proxy.js'
import {adminPart, coreHosts, corePart, seedHost} from './hosts.js'

/** Whether a container engine answers here (`docker info`). */
async function containerEngine(): Promise<boolean> {
  return promisify(execFile)('docker', ['info'], {timeout: 10_000}).then(
    () => true,
    () => false,
  )
}

/**
 * The admin host's bootstrap services (NTP, DNS/TFTP with iPXE, HTTP, the package cache,
 * Ansible's files), from the spec: with --native as processes here (the lab: no container
 * engine), otherwise as a Docker Compose bundle started with `docker compose up -d`. The core
 * nodes fetch their packages and time from them until the cluster runs its own.
 */
export const adminServicesPhase: Phase<NodeHost, BootstrapContext> = {
  id: 'admin-services',
  title: 'Start the bootstrap services on the admin host',
  hosts: seedHost,
  shouldRun: adminPart,
  async run(ctx, host) {
    // The enlist script the HTTP server hands out authorizes the cluster's key on new machines.
    const clusterPublicKey = (await ensureAdminClusterKey(ctx.bootstrap.cluster, ctx.dryRun))?.publicKey
    const render = {dryRun: ctx.dryRun, ...(clusterPublicKey ? {clusterPublicKey} : {})}
    if (ctx.options.native) {
      const result = await startNativeServices(ctx.spec, render)
      const made = result.actions.map((a) => `admin host: ${a.action} ${a.service} (${a.detail})`)
      if (ctx.dryRun) ctx.plan.set(host.name, [...(ctx.plan.get(host.name) ?? []), ...made])
      else ctx.addChanges(host.name, made)
      return
    }
    const dir = settings.adminServices.composeDir
    const bundle = writeComposeBundle(dir, ctx.spec, render)
    if (bundle.written.length > 0) ctx.addChanges(host.name, [`admin host: write the Compose bundle in ${bundle.dir} (${bundle.written.length} files)`])
    if (ctx.dryRun) return
    if (!(await containerEngine())) {
      throw preconditionError(
        'ADMIN_NO_CONTAINER_ENGINE',
        `No container engine answers here (docker info failed); the Compose bundle is in ${bundle.dir}.`,
        `Run it yourself (cd ${bundle.dir} && docker compose up -d), or run the services as processes: xcluster bootstrap -f ${ctx.options.specFile ?? 'xcluster.yaml'} --native`,
      )
    }
    await ctx.wet(host, `admin host: docker compose up -d in ${bundle.dir}`, () => promisify(execFile)('docker', ['compose', 'up', '-d'], {cwd: bundle.dir, timeout: 10 * 60_000}))
  },
}

/**
 * The cluster's own package cache on every core node (Squid, Debian's unit), reached at the admin
 * VIP: the same mirrors and upstream as the admin host's, so nodes added later need no laptop.
 */
export const packageCachePhase: Phase<NodeHost, BootstrapContext> = {
  id: 'package-cache',
  title: "Run the cluster's package cache on the core nodes",
  hosts: coreHosts,
  shouldRun: (ctx) => corePart(ctx) && packageSettings(ctx.spec).adminCache,
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const packages = packageSettings(ctx.spec)
    const upstream = packages.upstream ? new URL(packages.upstream) : undefined
    const a = settings.adminServices
    const config = renderTemplate('node/squid.conf', {
      node: host.name,
      cluster: ctx.spec.cluster,
      domain: ctx.spec.network.domain,
      adminVip: ctx.spec.network.adminVip,
      port: settings.packageProxyPort,
      subnet: ctx.spec.network.subnet,
      cacheMb: a.squidCacheMb,
      maxObjectMb: a.squidMaxObjectMb,
      memoryMb: a.squidMemoryMb,
      mirrors: mirrorUrlPatterns(packages.mirrors),
      upstream: upstream ? {host: upstream.hostname, port: Number(upstream.port || 80)} : undefined,
    })
    const changed = await ensureFile(ctx, host, ssh, {path: '/etc/squid/squid.conf', content: config})
    const enabled = (await ssh.systemctl('is-enabled', 'squid.service')).stdout.trim() === 'enabled'
    const active = (await ssh.systemctl('is-active', 'squid.service')).stdout.trim() === 'active'
    if (!enabled) await ctx.wet(host, 'enable squid.service', () => ssh.run('systemctl enable squid.service', {sudo: true}))
    if (!active) await ctx.wet(host, `start squid.service (${clusterCacheUrl(ctx.spec)} once the VIP is here)`, () => ssh.run('systemctl start squid.service', {sudo: true}))
    else if (changed) await ctx.wet(host, 'reload squid.service (its configuration changed)', () => ssh.run('systemctl reload squid.service', {sudo: true}))
  },
}
