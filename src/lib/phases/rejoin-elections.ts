import {ExitStatus, XclusterError} from '../errors.js'
import {listElections} from '../election/state.js'
import {commandLine} from '../output/command-line.js'
import {settings} from '../settings.js'
import type {Phase} from '../tasks/phase.js'
import type {UpdateRunContext} from '../update/context.js'
import type {NodeHost} from './context.js'

/**
 * After its undrain, a core node's serve campaigns again in every election it campaigned in
 * before the drain: only then may the next batch count it as a candidate to take over.
 */
export const rejoinElectionsPhase: Phase<NodeHost, UpdateRunContext> = {
  id: 'rejoin-elections',
  title: 'Wait until the node campaigns in its elections again',
  async run(ctx, host) {
    const expected = ctx.candidacies.get(host.name) ?? []
    if (ctx.dryRun || expected.length === 0) return
    const deadline = Date.now() + settings.update.rejoinTimeoutMs
    for (;;) {
      const elections = await listElections(ctx.store, ctx.spec)
      const missing = expected.filter((service) => !elections.find((e) => e.service === service)?.candidates.includes(host.name))
      if (missing.length === 0) return
      if (Date.now() > deadline) {
        throw new XclusterError(`${host.name} does not campaign for ${missing.join(', ')} ${settings.update.rejoinTimeoutMs / 1000} s after its undrain.`, {
          code: 'NODE_NOT_REJOINED',
          exit: ExitStatus.precondition,
          suggestion: `On ${host.name}: systemctl status xcluster-serve.service; then see: ${commandLine(['election', 'show', missing[0]!])}`,
        })
      }
      ctx.note(host, `waiting for its candidacy in ${missing.join(', ')}`)
      await new Promise((r) => setTimeout(r, settings.update.pollMs))
    }
  },
}
