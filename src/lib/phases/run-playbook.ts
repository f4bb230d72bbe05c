import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {basename, join} from 'node:path'

import type {UpdateRunContext} from '../update/context.js'
import {prepareAnsible, runPlaybook} from '../update/playbook.js'
import type {Phase} from '../tasks/phase.js'
import type {NodeHost} from './context.js'

/**
 * The playbook on the drained batch: one `ansible-playbook --limit BATCH` run, shared by the
 * batch's hosts, each failing with what Ansible said of it. The inventory is exported once per
 * run (the pinned keys only), on first use.
 */
export const runPlaybookPhase: Phase<NodeHost, UpdateRunContext> = {
  id: 'playbook',
  title: 'Run the playbook',
  async run(ctx, host) {
    const index = ctx.batchOf(host.name)
    const batch = ctx.update.batches[index] ?? [host.name]
    const what = `ansible-playbook ${basename(ctx.update.playbook)} --limit ${batch.join(',')}`
    const outcome = await ctx.wet(host, what, () => {
      let run = ctx.playbookRuns.get(index)
      if (!run) {
        const dir = (ctx.workspaceDir ??= mkdtempSync(join(tmpdir(), 'xcluster-update-')))
        // Exported again before each batch: the pins as etcd holds them now.
        run = prepareAnsible(ctx.store, dir, ctx.update.executable, ctx.update.access, batch).then(async (workspace) => {
          const unknown = batch.filter((n) => workspace.refused.has(n))
          const outcome = await runPlaybook(workspace, ctx.update.playbook, batch, String(index + 1), (line) => {
            // Ansible's task headers are the progress worth a line.
            if (line.startsWith('TASK [') || line.startsWith('PLAY [')) for (const name of batch) ctx.note({name}, line.replace(/\s*\*+$/, ''))
          })
          // Ansible refused them for want of a key: say why there was none.
          for (const n of unknown) outcome.failures.set(n, `no pinned host key in known_hosts (${workspace.refused.get(n)}): see xcluster inventory export DIR`)
          return outcome
        })
        ctx.playbookRuns.set(index, run)
      }
      return run
    })
    const failure = outcome?.failures.get(host.name)
    if (failure) throw new Error(`the playbook failed on ${host.name}: ${failure}`)
  },
}
