import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'
import {ensureFile} from './ensure-file.js'

/** Points apt at the cluster's Squid package cache on the bootstrap host. */
export const packageProxyPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'package-proxy',
  title: 'Point apt at the package cache',
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const proxyUrl = `http://${ctx.spec.network.gateway}:${settings.packageProxyPort}`
    await ensureFile(ctx, host, ssh, {path: '/etc/apt/apt.conf.d/90xcluster-proxy', content: renderTemplate('node/apt-proxy.conf', {proxyUrl})})
  },
}
