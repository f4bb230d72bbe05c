import {ROLES} from '../nodes/roles.js'
import type {NodeType} from '../nodes/record.js'
import type {SystemctlAction} from '../ssh/index.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

interface UnitGoal {
  id: string
  title: string
  units: (type: NodeType) => string[]
  /** The systemctl queries whose answers tell whether the unit is already as wanted. */
  probes: SystemctlAction[]
  done: (answers: string[]) => boolean
  /** What to run when it is not, e.g. `enable --now`. */
  action: string
  describe: string
  /** Only units enabled on the node (what it is meant to run), e.g. when restarting after a drain. */
  enabledOnly?: boolean
}

/** A phase that brings each of the role's units to a state, checking each one first. */
function unitsPhase(goal: UnitGoal): Phase<NodeHost, NodeRunContext> {
  return {
    id: goal.id,
    title: goal.title,
    async run(ctx, host) {
      const ssh = await ctx.ssh(host)
      for (const unit of goal.units(host.node.type)) {
        // A role unit this node does not have (not installed yet) has nothing to start or stop.
        const loaded = await ssh.exec(`systemctl show -p LoadState --value ${unit}.service`)
        if (loaded.stdout.trim() === 'not-found') continue
        if (goal.enabledOnly && (await ssh.systemctl('is-enabled', `${unit}.service`)).stdout.trim() !== 'enabled') continue
        const answers: string[] = []
        for (const probe of goal.probes) answers.push((await ssh.systemctl(probe, `${unit}.service`)).stdout.trim())
        if (goal.done(answers)) continue
        await ctx.wet(host, `${goal.describe} ${unit}`, () => ssh.run(`systemctl ${goal.action} ${unit}.service`, {sudo: true}))
      }
    },
  }
}

/** Enables and starts the role's services (node add). */
export const servicesPhase = unitsPhase({
  id: 'services',
  title: 'Enable role services',
  units: (type) => ROLES[type].services,
  // Both: packages are installed under policy-rc.d, which leaves a service enabled but not started.
  probes: ['is-enabled', 'is-active'],
  done: ([enabled, active]) => enabled === 'enabled' && active === 'active',
  action: 'enable --now',
  describe: 'enable and start',
})

/** Stops the role's stateful services once their leaderships moved away (drain). */
export const stopStatefulPhase = unitsPhase({
  id: 'stop-stateful',
  title: 'Stop stateful services',
  units: (type) => ROLES[type].statefulServices,
  probes: ['is-active'],
  done: ([active]) => active !== 'active',
  action: 'stop',
  describe: 'stop',
})

/** Starts the enabled ones again (undrain). */
export const startStatefulPhase = unitsPhase({
  id: 'start-stateful',
  title: 'Start stateful services',
  units: (type) => ROLES[type].statefulServices,
  probes: ['is-active'],
  done: ([active]) => active === 'active',
  action: 'start',
  describe: 'start',
  enabledOnly: true,
})
