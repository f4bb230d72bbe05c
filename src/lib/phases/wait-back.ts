import {XclusterError, ExitStatus} from '../errors.js'
import {etcdChecks, probeEtcd, sshChecks, type HealthCheck} from '../health/index.js'
import {commandLine} from '../output/command-line.js'
import {settings} from '../settings.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost, NodeRunContext} from './context.js'

/** A node's health as `xcluster health` judges it: SSH with its pinned key and its clock; for a core node its etcd member and quorum. */
async function nodeHealth(ctx: NodeRunContext, host: NodeHost): Promise<HealthCheck[]> {
  // The pins as etcd holds them now, never a new key.
  const pinned = (await ctx.hostKeys.get(host.name))?.fingerprints ?? []
  const checks = await sshChecks([{...host.target, hostKey: {pinned, acceptNewHostKey: false}}])
  if (host.node.type === 'core') {
    const etcd = etcdChecks(await probeEtcd(ctx.store))
    checks.push(...etcd.filter((c) => c.name === 'etcd:quorum' || c.name === `etcd:member:${host.name}`))
  }
  return checks
}

/**
 * Waits until the node is back after its playbook (which may have rebooted it) and healthy: no
 * failing check, a warning (chrony still syncing) is no reason to hold the update.
 */
export const waitBackPhase: Phase<NodeHost, NodeRunContext> = {
  id: 'wait-back',
  title: 'Wait until the node answers SSH with its pinned key and is healthy',
  async run(ctx, host) {
    if (ctx.dryRun) return
    // A connection pooled before a reboot is dead, whatever it still believes.
    await ctx.pool.drop(host.name)
    const deadline = Date.now() + settings.update.backTimeoutMs
    for (;;) {
      const failing = (await nodeHealth(ctx, host)).filter((c) => c.status === 'fail')
      if (failing.length === 0) return
      const seen = failing.map((c) => `${c.name}: ${c.observed}`).join('; ')
      if (Date.now() > deadline) {
        throw new XclusterError(`${host.name} is not back and healthy after ${settings.update.backTimeoutMs / 1000} s: ${seen}`, {
          code: 'NODE_NOT_BACK',
          exit: ExitStatus.precondition,
          suggestion: failing[0]?.next ?? commandLine(['health', '--ssh']),
        })
      }
      ctx.note(host, `waiting: ${seen}`)
      await new Promise((r) => setTimeout(r, settings.update.pollMs))
    }
  },
}
