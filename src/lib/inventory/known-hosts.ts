/**
 * known_hosts for Ansible from the pins in etcd. etcd keeps each node's host keys as SHA256
 * fingerprints (what xcluster's own SSH compares, see src/lib/ssh/host-key.ts), and OpenSSH's
 * known_hosts needs the keys themselves. So the keys are fetched from the nodes (ssh-keyscan:
 * the key exchange only, no login) and a key is written only when its fingerprint is one of the
 * node's pins: what reached us over the network can add nothing etcd did not pin, and a node that
 * presents another key gets no line, so Ansible (StrictHostKeyChecking=yes) refuses it.
 */
import {execFile} from 'node:child_process'

import {ExitStatus, XclusterError} from '../errors.js'
import {settings} from '../settings.js'
import {fingerprintOfPublicKey} from '../ssh/fingerprint.js'

/** A host public key as a node presented it. */
export interface PresentedHostKey {
  address: string
  /** e.g. `ssh-ed25519`. */
  type: string
  /** The key blob, base64 (the second field of a `.pub` line). */
  key: string
}

/** Fetches the host keys the given addresses present (every type each offers); unreachable ones present none. */
export type HostKeyScanner = (addresses: readonly string[]) => Promise<PresentedHostKey[]>

export interface KnownHostTarget {
  name: string
  address: string
  /** The node's pinned fingerprints (none: never provisioned, or removed). */
  pinned: readonly string[]
}

/**
 * - `written`: its pinned keys it presented are in known_hosts (`written`; `pinned` may hold more).
 * - `mismatch`: it answered, but with no pinned key: a reinstalled node, or someone else.
 * - `unreachable`: it presented no key at all (down, or not at that address).
 * - `unpinned`: etcd pins no key for it (not provisioned yet).
 */
export type KnownHostStatus = 'written' | 'mismatch' | 'unreachable' | 'unpinned'

export interface KnownHostEntry {
  node: string
  address: string
  status: KnownHostStatus
  pinned: string[]
  /** Fingerprints of the keys written for it. */
  written: string[]
  /** Fingerprints it presented that match no pin (mismatch): what `node repin` would take after checking. */
  refused: string[]
}

function fingerprintOf(key: PresentedHostKey): string | undefined {
  try {
    return fingerprintOfPublicKey(`${key.type} ${key.key}`)
  } catch {
    return undefined // not a key line we can read: it cannot match a pin either
  }
}

/**
 * The known_hosts lines (`NAME,ADDRESS TYPE KEY`, in the order of `targets`) of every presented
 * key whose fingerprint is pinned for that node, and what happened to each node. Pure.
 */
export function pinnedKnownHosts(targets: readonly KnownHostTarget[], presented: readonly PresentedHostKey[]): {lines: string[]; hosts: KnownHostEntry[]} {
  const lines: string[] = []
  const hosts = targets.map((t): KnownHostEntry => {
    const entry: KnownHostEntry = {node: t.name, address: t.address, status: 'unpinned', pinned: [...t.pinned], written: [], refused: []}
    if (t.pinned.length === 0) return entry
    // Sorted: ssh-keyscan asks for each key type at once and prints them as they come, so an
    // unsorted file would change on every export and never read "unchanged".
    const offered = presented.filter((k) => k.address === t.address).sort((a, b) => `${a.type} ${a.key}`.localeCompare(`${b.type} ${b.key}`))
    for (const key of offered) {
      const fingerprint = fingerprintOf(key)
      if (!fingerprint) continue
      if (!t.pinned.includes(fingerprint)) {
        if (!entry.refused.includes(fingerprint)) entry.refused.push(fingerprint)
      } else if (!entry.written.includes(fingerprint)) {
        entry.written.push(fingerprint)
        lines.push(`${t.name},${t.address} ${key.type} ${key.key}`)
      }
    }
    entry.status = entry.written.length > 0 ? 'written' : offered.length > 0 ? 'mismatch' : 'unreachable'
    return entry
  })
  return {lines, hosts}
}

/** `ADDRESS TYPE KEY` lines as ssh-keyscan prints them (comments and anything else skipped). */
export function parseKeyscanOutput(text: string): PresentedHostKey[] {
  const keys: PresentedHostKey[] = []
  for (const line of text.split('\n')) {
    const [address, type, key, extra] = line.trim().split(/\s+/)
    if (!address || address.startsWith('#') || !type || !key || extra !== undefined) continue
    keys.push({address, type, key})
  }
  return keys
}

/**
 * OpenSSH's ssh-keyscan (from openssh-client, which Ansible's ssh connection needs anyway): all
 * addresses in one process, which scans them in parallel, each within the SSH connect timeout.
 */
export function sshKeyscan(options: {binary?: string} = {}): HostKeyScanner {
  const binary = options.binary ?? 'ssh-keyscan'
  const timeoutSeconds = Math.max(1, Math.ceil(settings.sshConnectTimeoutMs / 1000))
  return (addresses) => {
    if (addresses.length === 0) return Promise.resolve([])
    // Port 22, as xcluster's own SSH uses: ssh-keyscan then prints each address as given.
    const args = ['-T', String(timeoutSeconds), '-f', '-']
    return new Promise((resolve, reject) => {
      const child = execFile(binary, args, {timeout: settings.sshCommandTimeoutMs, maxBuffer: 64 * 1024 * 1024}, (err, stdout) => {
        const code = (err as NodeJS.ErrnoException | null)?.code
        if (code === 'ENOENT') {
          reject(
            new XclusterError(`${binary} is not installed on this host: the pinned keys cannot be fetched for known_hosts.`, {
              code: 'SSH_KEYSCAN_MISSING',
              exit: ExitStatus.precondition,
              suggestion: 'Install the OpenSSH client (Debian: apt-get install openssh-client), which Ansible needs too, and run the export again.',
            }),
          )
          return
        }
        // ssh-keyscan reports unreachable hosts on stderr and still prints what it got: keep that.
        if (err && (err as {killed?: boolean}).killed) {
          reject(
            new XclusterError(`${binary} did not finish within ${settings.sshCommandTimeoutMs / 1000} s.`, {
              code: 'SSH_KEYSCAN_TIMEOUT',
              exit: ExitStatus.failure,
              suggestion: 'Check that the nodes answer on SSH, then run the export again.',
            }),
          )
          return
        }
        resolve(parseKeyscanOutput(stdout))
      })
      child.stdin?.end(`${addresses.join('\n')}\n`)
    })
  }
}
