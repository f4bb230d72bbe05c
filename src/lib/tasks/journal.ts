import {randomBytes} from 'node:crypto'
import {hostname, userInfo} from 'node:os'

import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'

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

/** Sortable, key-safe run ids: 20261129-201500-3fa2c1. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)
  return `${stamp}-${randomBytes(3).toString('hex')}`
}

/**
 * Runs and their checkpoints in etcd: the audit trail (`xcluster runs list|show`) and what
 * `--resume` skips. Each finished (phase, host) is its own key, written once.
 */
export class RunJournal {
  constructor(private readonly store: EtcdStore) {}

  async start(action: string, args: string[], hosts: string[]): Promise<RunRecord> {
    const record: RunRecord = {
      id: newRunId(),
      action,
      args,
      user: process.env.SUDO_USER || userInfo().username,
      origin: hostname(),
      startedAt: new Date().toISOString(),
      result: 'running',
      hosts,
      failures: [],
      resumes: 0,
    }
    const key = this.store.keys.run(record.id)
    const created = await this.store.transaction().ifAbsent(key).put(key, record).commit()
    if (!created) throw new Error(`run id collision: ${record.id}`)
    return record
  }

  /** Re-opens a failed or interrupted run for `--resume`. */
  async resume(id: string, action: string): Promise<{record: RunRecord; done: Set<string>}> {
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
        suggestion: `Resume it with: xcluster ${record.action} --resume ${id}`,
      })
    }
    if (record.result === 'succeeded') {
      throw new XclusterError(`Run ${id} already succeeded; nothing to resume.`, {code: 'RUN_FINISHED', exit: ExitStatus.usage})
    }
    const updated: RunRecord = {...record, result: 'running', failures: [], resumes: record.resumes + 1}
    const ok = await this.store.transaction().ifUnchanged(found.key, found.modRevision).put(found.key, updated).commit()
    if (!ok) {
      throw new XclusterError(`Run ${id} changed while resuming (is another operator resuming it?).`, {
        code: 'RUN_CONFLICT',
        exit: ExitStatus.precondition,
        suggestion: `Check it with: xcluster runs show ${id}`,
      })
    }
    return {record: updated, done: await this.done(id)}
  }

  /** The finished (phase, host) pairs of a run, as `phase/host`. */
  async done(id: string): Promise<Set<string>> {
    const prefix = this.store.keys.runCheckpointsPrefix(id)
    const rows = await this.store.listJson<unknown>(prefix)
    return new Set(rows.map((r) => r.key.slice(prefix.length)))
  }

  async checkpoint(id: string, phase: string, host: string): Promise<void> {
    await this.store.put(this.store.keys.runCheckpoint(id, phase, host), {at: new Date().toISOString()})
  }

  async finish(record: RunRecord, result: RunResultState, failures: RunFailure[]): Promise<RunRecord> {
    const finished: RunRecord = {...record, result, failures, finishedAt: new Date().toISOString()}
    await this.store.put(this.store.keys.run(record.id), finished)
    return finished
  }

  async list(): Promise<RunRecord[]> {
    const rows = await this.store.listJson<RunRecord>(this.store.keys.runsPrefix())
    return rows.map((r) => r.value).sort((a, b) => b.startedAt.localeCompare(a.startedAt))
  }

  async show(id: string): Promise<{record: RunRecord; checkpoints: string[]}> {
    const found = await this.store.getJson<RunRecord>(this.store.keys.run(id))
    if (!found) {
      throw new XclusterError(`No run with id ${id}.`, {
        code: 'RUN_NOT_FOUND',
        exit: ExitStatus.precondition,
        suggestion: 'List runs with: xcluster runs list',
      })
    }
    return {record: found.value, checkpoints: [...(await this.done(id))].sort()}
  }
}
