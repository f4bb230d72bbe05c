import type {RunContext} from './context.js'

/** Anything a phase can act on: a lab node, a core node, a provisioning target. */
export interface TaskHost {
  name: string
}

/**
 * One step of an action (k0sctl style): a title, the hosts it applies to and what it does on
 * each. Only `id`, `title` and `run` are required; the rest are capabilities the runner checks for.
 */
export interface Phase<H extends TaskHost, C extends RunContext<H> = RunContext<H>> {
  /** Stable identifier used for checkpoints (`--resume`): never rename a shipped phase. */
  readonly id: string
  readonly title: string
  /** Hosts this phase runs on (default: all). */
  hosts?(ctx: C): H[]
  /** Skip the phase entirely (e.g. nothing to do). */
  shouldRun?(ctx: C): boolean | Promise<boolean>
  /** Read-only: runs in --dry-run too (connect, gather facts). Results are not checkpointed. */
  readonly readOnly?: boolean
  /**
   * Needs every one of its hosts: if any already failed, the phase runs on none of them (e.g.
   * bootstrap changes nothing until every core node passed its checks).
   */
  readonly requiresAll?: boolean
  /** Hosts worked on at once in this phase when fewer than the run's (e.g. 1: one etcd member joins at a time). */
  readonly concurrency?: number
  /** Per host. Every change goes through `ctx.wet(host, what, fn)`. */
  run(ctx: C, host: H): Promise<void>
  /** Undo what this phase did on a host after a later phase failed (runs in reverse order). */
  cleanUp?(ctx: C, host: H): Promise<void>
}
