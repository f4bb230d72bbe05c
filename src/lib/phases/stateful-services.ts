import {ROLES} from '../nodes/roles.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

/** Stops the role's stateful services that are running (drain), after leaderships moved away. */
export const stopStatefulPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'stop-stateful',
  title: 'Stop stateful services',
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    for (const unit of ROLES[host.node.type].statefulServices) {
      const active = await ssh.systemctl('is-active', `${unit}.service`)
      if (active.stdout.trim() !== 'active') continue
      await ctx.wet(host, `stop ${unit}`, () => ssh.run(`systemctl stop ${unit}.service`, {sudo: true}))
    }
  },
}

/** Starts them again (undrain). */
export const startStatefulPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'start-stateful',
  title: 'Start stateful services',
  async run(ctx, host) {
    const ssh = await ctx.ssh(host)
    for (const unit of ROLES[host.node.type].statefulServices) {
      const active = await ssh.systemctl('is-active', `${unit}.service`)
      if (active.stdout.trim() === 'active') continue
      await ctx.wet(host, `start ${unit}`, () => ssh.run(`systemctl start ${unit}.service`, {sudo: true}))
    }
  },
}
