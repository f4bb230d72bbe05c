import {ROLES} from '../nodes/roles.js'
import type {NodeType} from '../nodes/record.js'
import type {SystemctlAction} from '../ssh/index.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

interface UnitGoal {
  id: string
  title: string
  units: (type: NodeType) => string[]
  /** The systemctl query whose answer tells whether the unit is already as wanted. */
  probe: SystemctlAction
  done: (answer: string) => boolean
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
        const answer = await ssh.systemctl(goal.probe, `${unit}.service`)
        if (goal.done(answer.stdout.trim())) continue
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
  probe: 'is-enabled',
  done: (answer) => answer === 'enabled',
  action: 'enable --now',
  describe: 'enable and start',
})

/** Stops the role's stateful services once their leaderships moved away (drain). */
export const stopStatefulPhase = unitsPhase({
  id: 'stop-stateful',
  title: 'Stop stateful services',
  units: (type) => ROLES[type].statefulServices,
  probe: 'is-active',
  done: (answer) => answer !== 'active',
  action: 'stop',
  describe: 'stop',
})

/** Starts the enabled ones again (undrain). */
export const startStatefulPhase = unitsPhase({
  id: 'start-stateful',
  title: 'Start stateful services',
  units: (type) => ROLES[type].statefulServices,
  probe: 'is-active',
  done: (answer) => answer === 'active',
  action: 'start',
  describe: 'start',
  enabledOnly: true,
})
