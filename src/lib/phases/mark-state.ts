import {transitionNode} from '../nodes/lifecycle.js'
import type {NodeState} from '../nodes/record.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

/**
 * A phase that moves each node to `to` when it is in one of `from` (a no-op otherwise), with the
 * reason `reason` gives (kept on the record while it is draining, drained or failed).
 */
export function markStatePhase(id: string, title: string, from: readonly NodeState[], to: NodeState, reason?: (ctx: NodeRunContext) => string | undefined): Phase<NodeHost, NodeRunContext> {
  return {
    id,
    title,
    async run(ctx, host) {
      if (!from.includes(host.node.state)) return
      const why = reason?.(ctx)
      await ctx.wet(host, `set state ${to}`, async () => {
        host.node = await transitionNode(ctx.store, host.name, to, {from, ...(why ? {reason: why} : {})})
      })
    },
  }
}

export const markProvisioningPhase = markStatePhase('mark-provisioning', 'Mark nodes provisioning', ['registered', 'discovered', 'failed', 'drained'], 'provisioning')
// A failed node that got through every phase this time is ready again.
export const markReadyPhase = markStatePhase('mark-ready', 'Mark nodes ready', ['provisioning', 'failed'], 'ready')
