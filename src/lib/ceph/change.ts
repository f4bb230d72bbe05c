import {XclusterError} from '../errors.js'
import type {CephCall, CephCli} from './cli.js'

/**
 * A change to Ceph as the ceph/rbd calls that make it, decided before any of them runs. One gate
 * (applyChange) runs them or, under --dry-run, only returns their command lines: the lines a dry
 * run prints are the ones a real run executes.
 */
export interface CephChange {
  /** The node whose CLIs run it. */
  node: string
  dryRun: boolean
  /** The exact command lines, in order (run, or that would run). */
  commands: string[]
}

export async function applyChange(cli: CephCli, calls: readonly CephCall[], dryRun: boolean): Promise<CephChange> {
  if (!dryRun) {
    for (const [i, call] of calls.entries()) {
      try {
        await cli.run(call)
      } catch (error) {
        // Ceph has no transaction across calls: say what the earlier ones already changed.
        if (i === 0 || !(error instanceof XclusterError)) throw error
        const done = calls.slice(0, i).map((c) => `  ${cli.line(c)}`)
        throw new XclusterError(`${error.message}\nAlready done before it:\n${done.join('\n')}`, {
          code: error.code,
          exit: error.exit,
          suggestion: error.suggestion,
          details: {...(error.details as object), done: calls.slice(0, i).map((c) => cli.line(c))},
          cause: error,
        })
      }
    }
  }
  return {node: cli.host.name, dryRun, commands: calls.map((c) => cli.line(c))}
}
