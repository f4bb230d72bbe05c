import type {RunSummary} from '../tasks/runner.js'

/** The end-of-run report: the plan per host in dry-run, otherwise what changed. */
export function describeRun(summary: RunSummary): string[] {
  if (summary.dryRun) {
    const lines = ['Dry run: nothing was changed. Planned changes:']
    for (const [host, steps] of Object.entries(summary.plan)) {
      lines.push(`  ${host}:`)
      for (const step of steps) lines.push(`    - ${step}`)
    }
    const untouched = summary.hosts.filter((h) => !summary.plan[h.name]?.length).map((h) => h.name)
    if (untouched.length) lines.push(`  no changes: ${untouched.join(' ')}`)
    return lines
  }
  const id = summary.runId ? ` (run ${summary.runId})` : ''
  if (summary.changed === 0) return [`No changes: ${summary.hosts.length} host(s) already as wanted${id}.`]
  const changed = Object.entries(summary.plan).filter(([, steps]) => steps.length > 0)
  return [`${summary.changed} change(s) on ${changed.length} host(s)${id}:`, ...changed.map(([host, steps]) => `  ${host}: ${steps.join('; ')}`)]
}
