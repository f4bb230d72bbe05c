import {ROLES} from '../nodes/roles.js'
import type {NodeType} from '../nodes/record.js'
import {parseKeyValueLines} from '../ssh/index.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

/** What systemd says of a unit (`systemctl show`). */
interface UnitState {
  LoadState: string
  UnitFileState: string
  ActiveState: string
  ConditionResult: string
  ConditionTimestamp: string
}

/**
 * systemd checked the unit's conditions on this machine and chose not to run it (chrony's
 * ConditionCapability=CAP_SYS_TIME in a container): starting it again would change nothing.
 */
const skippedByCondition = (u: UnitState): boolean => u.ConditionResult === 'no' && u.ConditionTimestamp !== ''

interface UnitGoal {
  id: string
  title: string
  units: (type: NodeType) => string[]
  /** Whether the unit is already as wanted. */
  done: (unit: UnitState) => boolean
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
        const shown = await ssh.exec(`systemctl show -p LoadState -p UnitFileState -p ActiveState -p ConditionResult -p ConditionTimestamp ${unit}.service`)
        const state = parseKeyValueLines(shown.stdout) as unknown as UnitState
        // A role unit this node does not have (not installed yet) has nothing to start or stop.
        if (state.LoadState === 'not-found') continue
        if (goal.enabledOnly && state.UnitFileState !== 'enabled') continue
        if (goal.done(state)) continue
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
  // Running too: packages are installed under policy-rc.d, which leaves a service enabled but stopped.
  done: (u) => u.UnitFileState === 'enabled' && (u.ActiveState === 'active' || skippedByCondition(u)),
  action: 'enable --now',
  describe: 'enable and start',
})

/** Stops the role's stateful services once their leaderships moved away (drain). */
export const stopStatefulPhase = unitsPhase({
  id: 'stop-stateful',
  title: 'Stop stateful services',
  units: (type) => ROLES[type].statefulServices,
  done: (u) => u.ActiveState !== 'active',
  action: 'stop',
  describe: 'stop',
})

/** Starts the enabled ones again (undrain). */
export const startStatefulPhase = unitsPhase({
  id: 'start-stateful',
  title: 'Start stateful services',
  units: (type) => ROLES[type].statefulServices,
  done: (u) => u.ActiveState === 'active' || skippedByCondition(u),
  action: 'start',
  describe: 'start',
  enabledOnly: true,
})
