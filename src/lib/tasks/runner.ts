import {Listr, PRESET_TIMER, type ListrTask} from 'listr2'

import {ExitStatus, XclusterError} from '../errors.js'
import {resumeCommand} from '../output/command-line.js'
import {settings} from '../settings.js'
import type {RunContext} from './context.js'
import type {RunFailure, RunJournal, RunRecord, RunResultState} from './journal.js'
import type {Phase, TaskHost} from './phase.js'

export type ProgressMode = 'live' | 'plain' | 'silent'

export interface RunOptions {
  action: string
  args: string[]
  concurrency?: number
  /** live: listr2's updating view (TTY); plain: one line per event; silent: nothing (--json). */
  progress: ProgressMode
  /** Journal in etcd for checkpoints and the audit trail (in dry-run only read, for --resume). */
  journal?: RunJournal
  resume?: string
  /** Told the run's id as soon as its record exists (a phase may need it: bootstrap moves and hands over its run). */
  onRecord?: (id: string) => void
  /**
   * Ansible's max_fail_percentage 0: once any host failed, no later phase starts on any host (a
   * rolling update leaves the rest untouched). By default the other hosts go on.
   */
  stopAtFirstFailure?: boolean
}

export interface HostOutcome {
  name: string
  status: 'ok' | 'failed'
  failure?: RunFailure
}

export interface RunSummary {
  runId?: string
  /** The command that continues this run when it did not succeed (as the operator would type it). */
  resumeWith?: string
  action: string
  result: RunResultState | 'planned'
  dryRun: boolean
  /** Changes made (or, in dry-run, planned) per host. */
  plan: Record<string, string[]>
  changed: number
  hosts: HostOutcome[]
}

/**
 * Runs an action's phases in order. Within a phase every host runs in parallel, bounded by
 * `concurrency`; a host that fails drops out of later phases while the others go on. Each
 * finished (phase, host) is checkpointed so `--resume` continues where a run stopped.
 */
export async function runPhases<H extends TaskHost, C extends RunContext<H>>(phases: Phase<H, C>[], ctx: C, options: RunOptions): Promise<RunSummary> {
  const concurrency = options.concurrency ?? settings.taskConcurrency
  const journal = ctx.dryRun ? undefined : options.journal
  let record: RunRecord | undefined
  let done = new Set<string>()
  // A dry run of a resume shows what the resume would skip, with its refusals; it writes nothing.
  if (ctx.dryRun && options.journal && options.resume) done = await options.journal.peekResume(options.resume, options.action)
  else if (journal && options.resume) ({record, done} = await journal.resume(options.resume, options.action))
  else if (journal)
    record = await journal.start(
      options.action,
      options.args,
      ctx.hosts.map((h) => h.name),
    )
  if (record) options.onRecord?.(record.id)
  for (const mark of done) ctx.finishedEarlier.add(mark)
  try {
    return await runStarted(phases, ctx, options, concurrency, journal, record, done)
  } finally {
    // Normally finish() released it; after an unexpected throw the lock must not outlive us.
    if (record) await journal?.release(record.id)
  }
}

async function runStarted<H extends TaskHost, C extends RunContext<H>>(
  phases: Phase<H, C>[],
  ctx: C,
  options: RunOptions,
  concurrency: number,
  journal: RunJournal | undefined,
  startedRecord: RunRecord | undefined,
  done: Set<string>,
): Promise<RunSummary> {
  let record = startedRecord

  const failed = new Map<string, RunFailure>()
  let interrupted = false
  const onSignal = () => {
    interrupted = true
  }
  process.once('SIGINT', onSignal)

  const tasks: ListrTask[] = phases.map((phase) => ({
    title: phase.title,
    skip: async () => (phase.shouldRun ? !(await phase.shouldRun(ctx)) : false),
    task: (_: unknown, task) => {
      if (options.stopAtFirstFailure && failed.size > 0) return task.skip(`not started: ${[...failed.keys()].join(', ')} failed`)
      const all = phase.hosts?.(ctx) ?? ctx.hosts
      const targets = all.filter((h) => !failed.has(h.name))
      if (phase.requiresAll && targets.length < all.length) {
        const missing = all.filter((h) => failed.has(h.name)).map((h) => h.name)
        for (const host of targets)
          failed.set(host.name, {phase: phase.id, host: host.name, message: `not started: ${missing.join(', ')} failed earlier, and this step needs every one of ${all.map((h) => h.name).join(', ')}`})
        throw new Error(`${phase.title}: not started, ${missing.join(', ')} failed earlier`)
      }
      if (targets.length === 0) return task.skip('no hosts')
      return task.newListr(
        targets.map((host) => ({
          title: host.name,
          task: async (_: unknown, sub) => {
            if (interrupted) throw new Error('interrupted')
            const mark = `${phase.id}/${host.name}`
            if (!phase.readOnly && done.has(mark)) return sub.skip(`${host.name}: done in an earlier attempt`)
            ctx.notes.set(host.name, (line) => (sub.output = line))
            try {
              await phase.run(ctx, host)
              if (journal && record && !phase.readOnly) await journal.checkpoint(record.id, phase.id, host.name)
            } catch (error) {
              const suggestion = error instanceof XclusterError && error.suggestion ? ` Try this: ${error.suggestion}` : ''
              const message = `${(error as Error).message}${suggestion}`
              failed.set(host.name, {phase: phase.id, host: host.name, message})
              throw new Error(`${host.name}: ${message}`)
            } finally {
              ctx.notes.delete(host.name)
            }
          },
        })),
        {concurrent: Math.min(concurrency, phase.concurrency ?? concurrency), exitOnError: false},
      )
    },
  }))

  const renderer = options.progress === 'live' ? 'default' : options.progress === 'plain' ? 'simple' : 'silent'
  const listr = new Listr(tasks, {
    concurrent: false,
    exitOnError: false,
    renderer,
    fallbackRenderer: 'simple',
    rendererOptions: {timer: PRESET_TIMER, collapseSubtasks: false, collapseErrors: false},
    fallbackRendererOptions: {timer: PRESET_TIMER},
  } as never)
  try {
    await listr.run()
  } finally {
    process.removeListener('SIGINT', onSignal)
  }

  const result: RunResultState = interrupted ? 'interrupted' : failed.size > 0 ? 'failed' : 'succeeded'
  if (journal && record) record = await journal.finish(record, result, [...failed.values()])

  return {
    runId: record?.id,
    ...(record && result !== 'succeeded' ? {resumeWith: resumeCommand(record.action, record.args, record.id)} : {}),
    action: options.action,
    // A dry run that could not reach or inspect a host did not plan it: that is a failure too.
    result: ctx.dryRun && result === 'succeeded' ? 'planned' : result,
    dryRun: ctx.dryRun,
    plan: Object.fromEntries(ctx.plan),
    changed: ctx.changeCount,
    hosts: ctx.hosts.map((h) => {
      const failure = failed.get(h.name)
      return failure ? {name: h.name, status: 'failed', failure} : {name: h.name, status: 'ok'}
    }),
  }
}

/** Turns a run that did not fully succeed into the operator-facing error (exit 4 or 130). */
export function assertRunSucceeded(summary: RunSummary): void {
  if (summary.result === 'succeeded' || summary.result === 'planned') return
  const failures = summary.hosts.filter((h) => h.failure).map((h) => h.failure!)
  const lines = failures.map((f) => `  ${f.host} (phase ${f.phase}): ${f.message}`)
  const resume = summary.resumeWith
  throw new XclusterError(
    `${summary.action} ${summary.result === 'interrupted' ? 'was interrupted' : `failed on ${failures.length} of ${summary.hosts.length} hosts`}` +
      (summary.runId ? ` (run ${summary.runId})` : '') +
      (lines.length ? `:\n${lines.join('\n')}` : '.'),
    {
      code: summary.result === 'interrupted' ? 'RUN_INTERRUPTED' : 'RUN_PARTIAL_FAILURE',
      exit: summary.result === 'interrupted' ? ExitStatus.interrupted : ExitStatus.partial,
      suggestion: resume ? `Fix the cause, then continue with: ${resume}` : 'Fix the cause shown for each host, then run the command again.',
      details: summary,
    },
  )
}
