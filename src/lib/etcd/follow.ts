import type {IKeyValue, Watcher} from 'etcd3'

import {settlesWithin} from '../clock.js'
import {settings} from '../settings.js'
import {storedKv, type EtcdStore, type StoredKv} from './store.js'

export interface KvChange {
  kind: 'put' | 'delete'
  kv: StoredKv
}

export interface FollowHandlers {
  /** The whole state under the followed prefixes at one revision: replaces what came before. */
  snapshot(kvs: StoredKv[], revision: string): void
  /** One change after the last snapshot, in revision order. */
  change(change: KvChange): void
  log?(line: string): void
}

export interface FollowOptions {
  /** Read page by page into each snapshot. */
  load: string[]
  /** Watched for changes: one prefix holding every loaded one (keys outside `load` are passed on too). */
  watch: string
}

/**
 * A cache's view of etcd that never silently goes stale: a snapshot read page by page at one
 * revision, then a watch from the next revision. etcd3's own reconnect resumes a watch from the
 * revision of the last response it saw (and after a reconnect, from the creation reply's
 * revision, skipping events not yet delivered), so this follower resumes itself, from the
 * revision of the last change it applied. When etcd cancels the watch (it compacted that
 * revision away, or any other reason), the events in between are gone: it reads a new
 * snapshot and watches from there.
 */
export class PrefixFollower {
  /** The revision everything up to has been applied. */
  revision = 0n
  /** Snapshots taken after the first (a compaction or a cancelled watch). */
  reloads = 0
  private watcher?: Watcher
  private timer?: NodeJS.Timeout
  private backoffMs: number = settings.etcdFollowBackoffMs.min
  private stopped = false
  private readonly log: (line: string) => void

  constructor(
    private readonly store: EtcdStore,
    private readonly options: FollowOptions,
    private readonly handlers: FollowHandlers,
  ) {
    this.log = handlers.log ?? (() => {})
  }

  /** The first snapshot (etcd must answer), then the watch. */
  async start(): Promise<void> {
    await this.load()
    this.watchFromNext()
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    const watcher = this.watcher
    this.watcher = undefined
    // Idempotent (cancelling an etcd3 watcher twice never resolves) and bounded: an etcd that
    // does not answer must not hold up a stop.
    if (!watcher) return
    await settlesWithin(watcher.cancel(), settings.etcdWatchCancelTimeoutMs)
  }

  private async load(): Promise<void> {
    const kvs: StoredKv[] = []
    const revision = await this.store.readPrefixes(this.options.load, (page) => kvs.push(...page))
    this.handlers.snapshot(kvs, revision)
    this.revision = BigInt(revision)
  }

  private watchFromNext(): void {
    if (this.stopped) return
    const watcher = this.store.client
      .watch()
      .prefix(this.options.watch)
      .startRevision(String(this.revision + 1n))
      .watcher()
    this.watcher = watcher
    const current = (): boolean => this.watcher === watcher && !this.stopped
    const onChange = (kind: KvChange['kind']) => (kv: IKeyValue) => {
      if (!current()) return
      this.backoffMs = settings.etcdFollowBackoffMs.min
      const revision = BigInt(String(kv.mod_revision))
      if (revision > this.revision) this.revision = revision
      this.handlers.change({kind, kv: storedKv(kv)})
    }
    watcher.on('put', onChange('put'))
    watcher.on('delete', onChange('delete'))
    watcher.on('connected', () => {
      if (current()) this.backoffMs = settings.etcdFollowBackoffMs.min
    })
    watcher.on('disconnected', (err: Error) => {
      if (!current()) return
      this.log(`watch on ${this.options.watch} lost its stream (${err?.message ?? err}): resuming after revision ${this.revision}`)
      this.drop(watcher)
      this.retry(() => this.watchFromNext())
    })
    // Without this listener, a cancel would be thrown as an uncaught exception.
    watcher.on('error', (err: Error) => {
      if (!current()) return
      this.log(`watch on ${this.options.watch} cancelled by etcd (${err?.message || 'no reason given'}; compacted past revision ${this.revision}?): reloading`)
      this.drop(watcher)
      this.retry(() => this.reload())
    })
  }

  /** Forgets a watcher: etcd3 must not re-attach it from a revision of its own choosing. */
  private drop(watcher: Watcher): void {
    this.watcher = undefined
    void watcher.cancel().catch(() => undefined)
  }

  private async reload(): Promise<void> {
    try {
      await this.load()
      this.reloads++
      this.log(`reloaded ${this.options.load.length} prefixes at revision ${this.revision}`)
      this.watchFromNext()
    } catch (err) {
      this.log(`reload failed (${(err as Error).message}): trying again`)
      this.retry(() => this.reload())
    }
  }

  private retry(fn: () => void | Promise<void>): void {
    if (this.stopped) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => void fn(), this.backoffMs)
    this.backoffMs = Math.min(this.backoffMs * 2, settings.etcdFollowBackoffMs.max)
  }
}
