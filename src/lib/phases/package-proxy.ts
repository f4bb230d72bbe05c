import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'
import type {ClusterSpec} from '../spec/types.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'
import {ensureFile} from './ensure-file.js'

/** The package cache nodes use (http://<gateway>:3128, the bootstrap host's Squid, unless the spec says), or none. */
export function packageProxyUrl(spec: ClusterSpec): string | undefined {
  return `http://${spec.network.gateway}:${settings.packageProxyPort}`
}

/** Points apt at the cluster's package cache (or removes our setting when the spec names none). */
export const packageProxyPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'package-proxy',
  title: 'Point apt at the package cache',
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const proxyUrl = packageProxyUrl(ctx.spec)
    const path = '/etc/apt/apt.conf.d/90xcluster-proxy'
    if (proxyUrl) {
      await ensureFile(ctx, host, ssh, {path, content: renderTemplate('node/apt-proxy.conf', {proxyUrl})})
    } else if ((await ssh.exec(`test -e ${path}`)).code === 0) {
      await ctx.wet(host, `remove ${path}`, () => ssh.run(`rm -f ${path}`, {sudo: true}))
    }
  },
}
