import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {assertFingerprint} from './fingerprint.js'
import {repinSuggestion, type HostKeyPolicy} from './host-key.js'
import type {HostKeyOutcome} from './host.js'

export type HostKeySource = 'registration' | 'enlistment' | 'accept-new' | 'repin'

/** The value stored at KeySchema.hostKey(name). */
export interface HostKeyRecord {
  fingerprints: string[]
  pinnedAt: string
  source: HostKeySource
}

/** Pinned host key fingerprints in etcd. A pin is created once; changing it is an explicit repin. */
export class HostKeyStore {
  constructor(private readonly store: EtcdStore) {}

  async get(name: string): Promise<HostKeyRecord | undefined> {
    return (await this.store.getJson<HostKeyRecord>(this.store.keys.hostKey(name)))?.value
  }

  /**
   * Pins a first key (create-only): one fingerprint, or each of the node's host keys (an
   * enlistment reports them all; the SSH client may be offered any). Pinning what is already
   * pinned is a no-op; anything else is refused (HOST_KEY_ALREADY_PINNED) and nothing is written.
   */
  async pin(name: string, fingerprints: string | string[], source: Exclude<HostKeySource, 'repin'> = 'registration'): Promise<{created: boolean; record: HostKeyRecord}> {
    const wanted = typeof fingerprints === 'string' ? [fingerprints] : fingerprints
    for (const f of wanted) assertFingerprint(f)
    const fingerprint = wanted.join(', ')
    const key = this.store.keys.hostKey(name)
    const record: HostKeyRecord = {fingerprints: wanted, pinnedAt: new Date().toISOString(), source}
    if (await this.store.transaction().ifAbsent(key).put(key, record).commit()) return {created: true, record}
    const existing = await this.get(name)
    if (existing && wanted.every((f) => existing.fingerprints.includes(f))) return {created: false, record: existing}
    throw new XclusterError(`A different host key is already pinned for ${name}: ${existing?.fingerprints.join(', ') ?? '(unreadable)'}; not pinning ${fingerprint}.`, {
      code: 'HOST_KEY_ALREADY_PINNED',
      exit: ExitStatus.precondition,
      suggestion: repinSuggestion(name, wanted[0] as string),
      details: {host: name, pinned: existing?.fingerprints, refused: fingerprint},
    })
  }

  /** The policy to connect with: the stored pins, and acceptNewHostKey only matters if there are none. */
  async policy(name: string, options: {acceptNewHostKey?: boolean} = {}): Promise<HostKeyPolicy> {
    return {pinned: (await this.get(name))?.fingerprints ?? [], acceptNewHostKey: options.acceptNewHostKey === true}
  }

  /** After a connection made with acceptNewHostKey: pins the key it accepted (create-only). */
  async remember(host: {name: string; hostKey: HostKeyOutcome}): Promise<void> {
    if (host.hostKey.decision === 'accepted-new') await this.pin(host.name, host.hostKey.fingerprint, 'accept-new')
  }

  /** Checks a repin and reads the pin it would replace; writes nothing. */
  async planRepin(name: string, fingerprint: string): Promise<{current: HostKeyRecord | undefined; next: HostKeyRecord}> {
    assertFingerprint(fingerprint)
    return {current: await this.get(name), next: {fingerprints: [fingerprint], pinnedAt: new Date().toISOString(), source: 'repin'}}
  }

  /** Replaces the pin (after the operator verified the new key). */
  async repin(name: string, fingerprint: string): Promise<HostKeyRecord> {
    assertFingerprint(fingerprint)
    const record: HostKeyRecord = {fingerprints: [fingerprint], pinnedAt: new Date().toISOString(), source: 'repin'}
    await this.store.put(this.store.keys.hostKey(name), record)
    return record
  }
}
