import {renderTemplate} from '../render/template.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'
import {ensureFile} from './ensure-file.js'

/** Hostname and /etc/hosts naming every addressed node of the cluster. */
export const identityPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'identity',
  title: 'Set hostname and /etc/hosts',
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    const peers = ctx.cluster.filter((n) => n.ip).map((n) => ({name: n.name, ip: n.ip}))
    const vars = {name: host.name, domain: ctx.spec.network.domain, adminVip: ctx.spec.network.adminVip, peers}
    await ensureFile(ctx, host, ssh, {path: '/etc/hostname', content: renderTemplate('node/hostname', vars)})
    await ensureFile(ctx, host, ssh, {path: '/etc/hosts', content: renderTemplate('node/hosts', vars)})
    if (ctx.factsOf(host).hostname !== host.name) {
      await ctx.wet(host, `set the running hostname to ${host.name}`, () => ssh.run(`hostname ${host.name}`, {sudo: true}))
    }
  },
}
