import {randomBytes} from 'node:crypto'
import {hostname, userInfo} from 'node:os'

import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore, HeldLease, Versioned} from '../etcd/store.js'
import {resumeCommand} from '../output/command-line.js'
import {settings} from '../settings.js'

export type RunResultState = 'running' | 'succeeded' | 'failed' | 'interrupted'

export interface RunFailure {
  phase: string
  host: string
  message: string
}

/** The audit record of one action run: who ran what, when, and how it ended. */
export interface RunRecord {
  id: string
  action: string
  /** The command line, as typed (flags carry no secrets in this CLI). */
  args: string[]
  user: string
  origin: string
  startedAt: string
  finishedAt?: string
  result: RunResultState
  hosts: string[]
  failures: RunFailure[]
  /** How many times `--resume` continued this run. */
  resumes: number
}

const currentUser = (): string => process.env.SUDO_USER || userInfo().username

const runInProgress = (id: string, lock: RunLock): XclusterError =>
  new XclusterError(`Run ${id} is still running: pid ${lock.pid} on ${lock.origin} (${lock.user}) since ${lock.since}.`, {
    code: 'RUN_IN_PROGRESS',
    exit: ExitStatus.precondition,
    suggestion: `Wait for it to end, then check it with: xcluster runs show ${id} (a run whose process died can be resumed ${settings.runLockTtlSeconds} s later).`,
    details: {run: id, lock},
  })

/** Sortable, key-safe run ids: 20261129-201500-3fa2c1. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)
  return `${stamp}-${randomBytes(3).toString('hex')}`
}

/** One finished (phase, host) step of a run. */
export interface RunStep {
  phase: string
  host: string
  /** When it finished (ISO time, the clock of the host that ran the run). */
  at: string
}

export interface RunShown {
  record: RunRecord
  /** The finished steps as `phase/host`, sorted. */
  checkpoints: string[]
  steps: RunStep[]
}

/** The value of a run's lock key: which process runs it. */
export interface RunLock {
  pid: number
  origin: string
  user: string
  since: string
}

/**
 * Runs and their checkpoints in etcd: the audit trail (`xcluster runs list|show`) and what
 * `--resume` skips. Each finished (phase, host) is its own key, written once. While a process
 * runs a run it holds the run's lock key under a lease it keeps alive, so a `--resume` of the
 * same run from another process is refused until it ends (or, after a crash, its lease runs out).
 */
export class RunJournal {
  private readonly leases = new Map<string, HeldLease>()
  /** Runs handed over to another process: this one writes nothing more for them. */
  private readonly handedOver = new Set<string>()

  constructor(private store: EtcdStore) {}

  /**
   * Continues a run in another etcd that already holds a copy of it (bootstrap moves the
   * cluster's state from the admin host's etcd to the cluster's own): the run's lock is taken
   * there and freed here; checkpoints and the final record go there from now on.
   */
  async moveTo(store: EtcdStore, id: string): Promise<void> {
    if (!(await store.getJson<RunRecord>(store.keys.run(id)))) {
      throw new XclusterError(`Run ${id} is not in the etcd it moves to.`, {
        code: 'RUN_NOT_FOUND',
        exit: ExitStatus.failure,
        suggestion: 'Copy the cluster state first (bootstrap does it in its migrate step).',
      })
    }
    const lease = await store.grantLease(settings.runLockTtlSeconds)
    const lockKey = store.keys.runLock(id)
    if (!(await store.transaction().ifAbsent(lockKey).put(lockKey, this.lockValue(), {lease: lease.id}).commitIdempotent())) {
      await lease.revoke()
      const lock = await store.getJson<RunLock>(lockKey)
      throw runInProgress(id, lock?.value ?? this.lockValue())
    }
    await this.release(id)
    this.leases.set(id, lease)
    this.store = store
  }

  /**
   * Hands the run to another process (bootstrap's continuation on the first core node): its lock
   * is freed so that process can resume it, and nothing more is written from here.
   */
  async handOver(id: string): Promise<void> {
    this.handedOver.add(id)
    await this.release(id)
  }

  /** The run as stored now (after a hand-over: as the other process left it). */
  async read(id: string): Promise<RunRecord | undefined> {
    return (await this.store.getJson<RunRecord>(this.store.keys.run(id)))?.value
  }

  async start(action: string, args: string[], hosts: string[]): Promise<RunRecord> {
    const record: RunRecord = {
      id: newRunId(),
      action,
      args,
      user: currentUser(),
      origin: hostname(),
      startedAt: new Date().toISOString(),
      result: 'running',
      hosts,
      failures: [],
      resumes: 0,
    }
    const key = this.store.keys.run(record.id)
    const lease = await this.store.grantLease(settings.runLockTtlSeconds)
    // Idempotent: a commit retried after a lost answer finds its own record and lock in place.
    const created = await this.store.transaction().ifAbsent(key).put(key, record).put(this.store.keys.runLock(record.id), this.lockValue(), {lease: lease.id}).commitIdempotent()
    if (!created) {
      await lease.revoke()
      throw new XclusterError(`Run id collision: ${record.id} exists already.`, {code: 'RUN_ID_COLLISION', exit: ExitStatus.failure, suggestion: 'Run the command again: it picks a new id.'})
    }
    this.leases.set(record.id, lease)
    return record
  }

  /** Re-opens a failed or interrupted run for `--resume`; refused while another process runs it. */
  async resume(id: string, action: string): Promise<{record: RunRecord; done: Set<string>}> {
    const found = await this.resumable(id, action)
    const record = found.value
    const updated: RunRecord = {...record, result: 'running', failures: [], resumes: record.resumes + 1}
    const lockKey = this.store.keys.runLock(id)
    const lease = await this.store.grantLease(settings.runLockTtlSeconds)
    const ok = await this.store.transaction().ifUnchanged(found.key, found.modRevision).ifAbsent(lockKey).put(found.key, updated).put(lockKey, this.lockValue(), {lease: lease.id}).commitIdempotent()
    if (!ok) {
      await lease.revoke()
      const lock = await this.store.getJson<RunLock>(lockKey)
      if (lock) throw runInProgress(id, lock.value)
      throw new XclusterError(`Run ${id} changed while resuming (is another operator resuming it?).`, {
        code: 'RUN_CONFLICT',
        exit: ExitStatus.precondition,
        suggestion: `Check it with: xcluster runs show ${id}`,
      })
    }
    this.leases.set(id, lease)
    return {record: updated, done: await this.done(id)}
  }

  /** What a `--resume` would skip, with the same refusals, writing nothing (for --dry-run). */
  async peekResume(id: string, action: string): Promise<Set<string>> {
    await this.resumable(id, action)
    return this.done(id)
  }

  /** The run, if it exists, is of this action, has not succeeded and no live process runs it. */
  private async resumable(id: string, action: string): Promise<Versioned<RunRecord>> {
    const found = await this.store.getJson<RunRecord>(this.store.keys.run(id))
    if (!found) {
      throw new XclusterError(`No run with id ${id}.`, {
        code: 'RUN_NOT_FOUND',
        exit: ExitStatus.usage,
        suggestion: 'List runs with: xcluster runs list',
      })
    }
    const record = found.value
    if (record.action !== action) {
      throw new XclusterError(`Run ${id} was a "${record.action}" run, not "${action}".`, {
        code: 'RUN_ACTION_MISMATCH',
        exit: ExitStatus.usage,
        suggestion: `Resume it with: ${resumeCommand(record.action, record.args, id)}`,
      })
    }
    if (record.result === 'succeeded') {
      throw new XclusterError(`Run ${id} already succeeded; nothing to resume.`, {code: 'RUN_FINISHED', exit: ExitStatus.usage, suggestion: `See what it did: xcluster runs show ${id}`})
    }
    const lock = await this.store.getJson<RunLock>(this.store.keys.runLock(id))
    if (lock) throw runInProgress(id, lock.value)
    return found
  }

  private lockValue(): RunLock {
    return {pid: process.pid, origin: hostname(), user: currentUser(), since: new Date().toISOString()}
  }

  /** The finished (phase, host) pairs of a run, as `phase/host`. */
  async done(id: string): Promise<Set<string>> {
    const prefix = this.store.keys.runCheckpointsPrefix(id)
    const rows = await this.store.listJson<unknown>(prefix)
    return new Set(rows.map((r) => r.key.slice(prefix.length)))
  }

  async checkpoint(id: string, phase: string, host: string): Promise<void> {
    if (this.handedOver.has(id)) return
    await this.store.put(this.store.keys.runCheckpoint(id, phase, host), {at: new Date().toISOString()})
  }

  async finish(record: RunRecord, result: RunResultState, failures: RunFailure[]): Promise<RunRecord> {
    // Handed over: the process that continued it records how it ended.
    if (this.handedOver.has(record.id)) return (await this.read(record.id)) ?? record
    const finished: RunRecord = {...record, result, failures, finishedAt: new Date().toISOString()}
    await this.store.put(this.store.keys.run(record.id), finished)
    await this.release(record.id)
    return finished
  }

  /** Frees the run's lock (revoking its lease deletes the key). A no-op for a run this journal does not hold. */
  async release(id: string): Promise<void> {
    const lease = this.leases.get(id)
    this.leases.delete(id)
    await lease?.revoke()
  }

  async list(): Promise<RunRecord[]> {
    const rows = await this.store.listJson<RunRecord>(this.store.keys.runsPrefix())
    return rows.map((r) => r.value).sort((a, b) => b.startedAt.localeCompare(a.startedAt))
  }

  /** The finished (phase, host) steps of a run with when each finished, oldest first. */
  async steps(id: string): Promise<RunStep[]> {
    const prefix = this.store.keys.runCheckpointsPrefix(id)
    const rows = await this.store.listJson<{at?: string}>(prefix)
    return rows.map((r) => ({...this.store.keys.parseRunCheckpoint(id, r.key), at: r.value.at ?? ''})).sort((a, b) => a.at.localeCompare(b.at))
  }

  async show(id: string): Promise<RunShown> {
    const found = await this.store.getJson<RunRecord>(this.store.keys.run(id))
    if (!found) {
      throw new XclusterError(`No run with id ${id}.`, {
        code: 'RUN_NOT_FOUND',
        exit: ExitStatus.precondition,
        suggestion: 'List runs with: xcluster runs list',
      })
    }
    const steps = await this.steps(id)
    return {record: found.value, checkpoints: steps.map((s) => `${s.phase}/${s.host}`).sort(), steps}
  }
}

/** One pass of a phase over its hosts, as the run's steps tell it. */
export interface PhaseTiming {
  phase: string
  hosts: string[]
  /** From the run's start to the last host finishing this pass. */
  finishedAfterMs: number
  /** From the previous pass's end (or the run's start) to this one's. */
  tookMs: number
}

/**
 * The run's phases in the order they ran, with their times. Phases run one after another, so the
 * steps of one pass are contiguous in time; a phase that runs again later (bootstrap provisions
 * the seed, then its peers; a resumed run) shows as a second pass.
 */
export function phaseTimings(record: RunRecord, steps: RunStep[]): PhaseTiming[] {
  const start = Date.parse(record.startedAt)
  const passes: {phase: string; hosts: string[]; last: number}[] = []
  for (const step of [...steps].sort((a, b) => a.at.localeCompare(b.at))) {
    const at = Date.parse(step.at)
    const current = passes.at(-1)
    if (current?.phase === step.phase) {
      current.hosts.push(step.host)
      current.last = Math.max(current.last, at)
    } else {
      passes.push({phase: step.phase, hosts: [step.host], last: at})
    }
  }
  let previous = start
  return passes.map(({phase, hosts, last}) => {
    const timing = {phase, hosts: hosts.sort(), finishedAfterMs: last - start, tookMs: Math.max(0, last - previous)}
    previous = last
    return timing
  })
}
