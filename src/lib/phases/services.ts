import {ROLES} from '../nodes/roles.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

/** Enables and starts the role's services that are not enabled yet. */
export const servicesPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'services',
  title: 'Enable role services',
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    for (const unit of ROLES[host.node.type].services) {
      const enabled = await ssh.systemctl('is-enabled', `${unit}.service`)
      if (enabled.stdout.trim() === 'enabled') continue
      await ctx.wet(host, `enable and start ${unit}`, () => ssh.run(`systemctl enable --now ${unit}.service`, {sudo: true}))
    }
  },
}
