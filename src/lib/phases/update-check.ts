import {ExitStatus, XclusterError} from '../errors.js'
import {checkBatch, readCluster} from '../update/checks.js'
import type {UpdateRunContext} from '../update/context.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost} from './context.js'

/**
 * Right before a batch drains, its checks again against the cluster as it is now (quorum, the
 * last candidate of each election, Ceph's ok-to-stop): the plan's verdict may be stale by then.
 * Read-only; one check per batch, shared by its hosts. Also notes the elections each node
 * campaigns in, for the rejoin after its undrain.
 */
export const updateCheckPhase: Phase<NodeHost, UpdateRunContext> = {
  id: 'update-check',
  title: 'Check quorum, election candidates and Ceph before the drain',
  readOnly: true,
  // The plan made these checks already; a dry run shows those.
  shouldRun: (ctx) => !ctx.dryRun,
  async run(ctx, host) {
    const index = ctx.batchOf(host.name)
    let checked = ctx.batchChecks.get(index)
    if (!checked) {
      const batch = ctx.update.batches[index] ?? [host.name]
      checked = readCluster(ctx.store, ctx.spec).then((reads) => {
        for (const name of batch)
          ctx.candidacies.set(
            name,
            reads.elections.filter((e) => e.candidates.includes(name)).map((e) => e.service),
          )
        return checkBatch(index + 1, batch, ctx.spec, reads, (node) => ctx.ssh(ctx.hosts.find((h) => h.name === node)!))
      })
      ctx.batchChecks.set(index, checked)
    }
    const refused = (await checked).checks.filter((c) => c.status === 'refused')
    if (refused.length > 0) {
      throw new XclusterError(`batch ${index + 1} refused before its drain: ${refused.map((c) => `${c.check}: ${c.observed}`).join('; ')}`, {
        code: 'UPDATE_BATCH_REFUSED',
        exit: ExitStatus.precondition,
        suggestion: refused[0]!.fix,
      })
    }
  },
}
