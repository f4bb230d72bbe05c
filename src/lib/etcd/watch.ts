import type {Etcd3, IKeyValue, Watcher} from 'etcd3'

import {settlesWithin} from '../clock.js'
import {settings} from '../settings.js'
import type {RawKv} from './store.js'

export interface PrefixWatchHandlers {
  /** A key was created or changed (in revision order). */
  onPut?(kv: RawKv): void
  /** A key was deleted (or its lease ended). */
  onDelete?(key: string, modRevision: string): void
  /**
   * The watch could not resume where it stopped (etcd compacted past it): changes may have been
   * missed, so anything derived from earlier reads must be re-read. The watch goes on from now.
   */
  onReset?(): void
}

/** A watch that keeps going until cancelled. */
export interface PrefixWatch {
  cancel(): Promise<void>
}

/**
 * A cancel that may mean "compacted past your revision": etcd 3.5 says so, etcd 3.4 cancels with
 * an empty reason (etcd3 reports "Watcher canceled: "). Resuming from the same revision would be
 * cancelled again and again, so such a watch starts over from now and the caller reloads.
 */
const COMPACTED = /compacted|^Watcher cancell?ed:\s*$/i

/**
 * Watches every key under `prefix` from `fromRevision` (or from now) and never gives up:
 * etcd3 resumes a watch across reconnects by itself, but a watch that etcd *cancels* (compacted
 * past its revision, a member restored) is dropped with an 'error' it never retries. Here a
 * cancelled watch is re-created from the revision after the last event seen, or, when that was
 * compacted away, from now with `onReset` so the caller reloads.
 */
export function watchPrefix(client: Etcd3, prefix: string, handlers: PrefixWatchHandlers, fromRevision?: string): PrefixWatch {
  let watcher: Watcher | undefined
  let cancelled = false
  let timer: NodeJS.Timeout | undefined
  let next = fromRevision
  let backoff: number = settings.etcdWatchRetryMinMs

  const seen = (kv: IKeyValue) => {
    next = String(BigInt(String(kv.mod_revision)) + 1n)
    backoff = settings.etcdWatchRetryMinMs
  }

  const open = () => {
    if (cancelled) return
    const builder = client.watch().prefix(prefix)
    const w = (next === undefined ? builder : builder.startRevision(next)).watcher()
    watcher = w
    w.on('put', (kv: IKeyValue) => {
      seen(kv)
      handlers.onPut?.({
        key: kv.key.toString(),
        value: decode(kv.value.toString()),
        createRevision: String(kv.create_revision),
        modRevision: String(kv.mod_revision),
        lease: String(kv.lease),
      })
    })
    w.on('delete', (kv: IKeyValue) => {
      seen(kv)
      handlers.onDelete?.(kv.key.toString(), String(kv.mod_revision))
    })
    w.on('error', (err: Error) => {
      if (cancelled || w !== watcher) return
      watcher = undefined
      void w.cancel().catch(() => undefined)
      if (COMPACTED.test(String(err?.message ?? err))) {
        next = undefined
        handlers.onReset?.()
      }
      timer = setTimeout(open, backoff)
      backoff = Math.min(backoff * 2, settings.etcdWatchRetryMaxMs)
    })
  }

  open()
  return {
    async cancel() {
      cancelled = true
      clearTimeout(timer)
      const w = watcher
      watcher = undefined
      // etcd3's cancel of a watcher that never connected can wait forever: bound it (and clear
      // the bound's timer, which would otherwise keep a stopping serve alive for its length).
      if (w) await settlesWithin(w.cancel(), settings.election.callTimeoutMs)
    },
  }
}

/** Values are JSON; a key written by another tool may hold plain text. */
export function decode(text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
