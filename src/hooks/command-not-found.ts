import type {Hook} from '@oclif/core'

import {ExitStatus, XclusterError} from '../lib/errors.js'
import {makeColor} from '../lib/output/color.js'

/** Edit distance between two words (insertions, deletions, substitutions). */
function distance(a: string, b: string): number {
  const row = Array.from({length: b.length + 1}, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = current
    }
  }
  return row[b.length]
}

/** The commands closest to what was typed, nearest first (by edit distance, then by a shared topic). */
export function closestCommands(typed: string, ids: string[], count = 3): string[] {
  const words = typed.split(' ')
  return ids
    .map((id) => {
      const parts = id.split(' ')
      const sameTopic = parts.length > 1 && parts[0] === words[0] ? 0 : 0.5
      return {id, score: distance(typed, id) + sameTopic}
    })
    .sort((a, b) => a.score - b.score || a.id.localeCompare(b.id))
    .slice(0, count)
    .map((c) => c.id)
}

/**
 * An unknown command gets the same treatment as any error: a code, the closest command names,
 * a next step that runs as printed, and exit 2 (a usage error).
 */
const hook: Hook<'command_not_found'> = async function (options) {
  const separator = options.config.topicSeparator ?? ' '
  const ids = options.config.commands.filter((c) => !c.hidden).map((c) => c.id.replaceAll(':', ' '))
  const typed = options.id.replaceAll(':', ' ').replaceAll(separator, ' ')
  const closest = closestCommands(typed, ids)
  const error = new XclusterError(`Unknown command "${typed}". Closest: ${closest.join(', ')}.`, {
    code: 'UNKNOWN_COMMAND',
    exit: ExitStatus.usage,
    suggestion: `See what ${closest[0]} does: xcluster ${closest[0]} --help (every command: xcluster --help)`,
    details: {closest},
  })
  if ((options.argv ?? []).includes('--json')) {
    process.stdout.write(`${JSON.stringify({error: error.toJSON()}, null, 2)}\n`)
  } else {
    const color = makeColor(!(options.argv ?? []).includes('--no-color'))
    process.stderr.write(`${color.red('Error')} [${error.code}]: ${error.message}\n${color.bold('Try this:')} ${error.suggestion}\n`)
  }
  process.exitCode = error.exit
  this.exit(error.exit)
}

export default hook
