import type {TaskHost} from './phase.js'

/**
 * Shared state of one run. `wet()` is the single gate for every change to a host or to etcd:
 * in dry-run it records the sentence instead of acting, so the dry-run plan is honest by
 * construction.
 */
export class RunContext<H extends TaskHost = TaskHost> {
  /** What each host would undergo, in order (dry-run), or underwent (real run). */
  readonly plan = new Map<string, string[]>()
  /** Number of changes actually made, per host (0 everywhere = the run changed nothing). */
  readonly changes = new Map<string, number>()
  /** Where a phase's progress line for a host goes (the task list's line for it), set by the runner. */
  readonly notes = new Map<string, (line: string) => void>()
  /** The steps (`phase/host`) an earlier attempt of a resumed run finished, set by the runner. */
  readonly finishedEarlier = new Set<string>()

  constructor(
    readonly hosts: H[],
    readonly dryRun: boolean,
  ) {}

  async wet<T>(host: TaskHost, what: string, fn: () => Promise<T>): Promise<T | undefined> {
    const list = this.plan.get(host.name) ?? []
    list.push(what)
    this.plan.set(host.name, list)
    if (this.dryRun) return undefined
    const result = await fn()
    this.changes.set(host.name, (this.changes.get(host.name) ?? 0) + 1)
    return result
  }

  /** Shows a progress line for a host while its phase runs (e.g. what a long wait is waiting for). */
  note(host: TaskHost, line: string): void {
    this.notes.get(host.name)?.(line)
  }

  /** Records changes made elsewhere on a host's behalf (another process's run, when it reports back). */
  addChanges(host: string, made: string[]): void {
    if (made.length === 0) return
    this.plan.set(host, [...(this.plan.get(host) ?? []), ...made])
    this.changes.set(host, (this.changes.get(host) ?? 0) + made.length)
  }

  /** Total changes made across hosts. */
  get changeCount(): number {
    let n = 0
    for (const c of this.changes.values()) n += c
    return n
  }
}
