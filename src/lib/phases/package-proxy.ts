import {packageSettings} from '../admin-services/packages.js'
import type {NodeType} from '../nodes/record.js'
import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'
import type {ClusterSpec} from '../spec/types.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'
import {ensureFile} from './ensure-file.js'

/** The cluster's own package cache: Squid on every core node, reached at the admin VIP. */
export const clusterCacheUrl = (spec: ClusterSpec): string => `http://${spec.network.adminVip}:${settings.packageProxyPort}`

/**
 * The proxy a node's apt uses, or undefined with `packages.proxy: none`. Core nodes are set up by
 * bootstrap while only the admin host's cache exists, so they use the spec's proxy; every other
 * node is provisioned from a running cluster, which runs its own cache (a mirror of the admin
 * host's: same mirrors, same upstream) behind the admin VIP, so the laptop is not needed.
 */
export function packageProxyUrl(spec: ClusterSpec, type: NodeType = 'core'): string | undefined {
  const packages = packageSettings(spec)
  if (!packages.nodeProxy) return undefined
  return type !== 'core' && packages.adminCache ? clusterCacheUrl(spec) : packages.nodeProxy
}

/**
 * Points apt at the proxy the spec names (by default the admin host's Squid cache); with
 * `packages.proxy: none`, at no proxy ("DIRECT"), so a proxy set before is undone too.
 */
export const packageProxyPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'package-proxy',
  title: 'Point apt at the package cache',
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const proxyUrl = packageProxyUrl(ctx.spec, host.node.type) ?? 'DIRECT'
    await ensureFile(ctx, host, ssh, {path: '/etc/apt/apt.conf.d/90xcluster-proxy', content: renderTemplate('node/apt-proxy.conf', {proxyUrl})})
  },
}
