import {planPrune, type ReleasePhase} from '../release/deployment.js'
import {listCommand, parseListing, removeCommand} from '../release/remote.js'

/**
 * Keeps the newest releases (settings.release.keep, `current` always among them), removes the
 * others, the runtimes no kept release uses, and the staging directories of uploads that were
 * interrupted long ago.
 */
export const releasePrunePhase: ReleasePhase = {
  id: 'release-prune',
  title: 'Remove old releases',
  async run(ctx, host) {
    const {bundle, layout, keep} = ctx.release
    const ssh = await ctx.ssh(host)
    const listing = parseListing((await ssh.run(listCommand(layout), {sudo: true})).stdout)
    // In a dry run the bundle is not current yet, but it would be by now: plan as the real run would.
    const plan = planPrune(listing, bundle, keep, ctx.dryRun ? bundle.id : listing.current)
    for (const id of plan.releases) await ctx.wet(host, `remove release ${id}`, () => ssh.run(removeCommand([layout.release(id)]), {sudo: true}))
    for (const dir of plan.runtimes) await ctx.wet(host, `remove runtime ${dir}`, () => ssh.run(removeCommand([layout.runtime(dir)]), {sudo: true}))
    const stale = plan.stale.filter((p) => p.startsWith(`${layout.releases}/.incoming-`) || p.startsWith(`${layout.runtimes}/.incoming-`))
    if (stale.length > 0) {
      await ctx.wet(host, `remove ${stale.length} staging director${stale.length > 1 ? 'ies' : 'y'} of interrupted uploads`, () => ssh.run(removeCommand(stale), {sudo: true}))
    }
  },
}
