import {packageSettings} from '../admin-services/packages.js'
import {renderTemplate} from '../render/template.js'
import type {ClusterSpec} from '../spec/types.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'
import {ensureFile} from './ensure-file.js'

/** The package cache nodes use (by default the admin host's Squid), or undefined with `packages.proxy: none`. */
export function packageProxyUrl(spec: ClusterSpec): string | undefined {
  return packageSettings(spec).nodeProxy
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
    const proxyUrl = packageProxyUrl(ctx.spec) ?? 'DIRECT'
    await ensureFile(ctx, host, ssh, {path: '/etc/apt/apt.conf.d/90xcluster-proxy', content: renderTemplate('node/apt-proxy.conf', {proxyUrl})})
  },
}
