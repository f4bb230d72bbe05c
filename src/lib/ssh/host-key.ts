import {ExitStatus, XclusterError} from '../errors.js'
import {assertFingerprint, fingerprintOfKeyBlob} from './fingerprint.js'

/**
 * What the caller knows about a host's key. There is deliberately no way to turn checking off:
 * either the presented key matches a pin, or (with no pin at all) the caller explicitly accepts a
 * new key and gets its fingerprint back to store.
 */
export interface HostKeyPolicy {
  /** Pinned fingerprints (`SHA256:...`); the presented key must match one of them. */
  pinned?: readonly string[]
  /** Only when nothing is pinned: accept the presented key and report its fingerprint. */
  acceptNewHostKey?: boolean
}

export type HostKeyDecision = 'pinned' | 'accepted-new'

/** The one place that says how to re-pin a host; the command itself lands with `node repin`. */
export function repinSuggestion(name: string, fingerprint: string): string {
  return (
    `If ${name} was reinstalled or its host key was rotated on purpose, verify the new key on the node's console ` +
    `(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and re-pin it: xcluster node repin ${name} --fingerprint ${fingerprint}. ` +
    'Otherwise treat this as a possible man-in-the-middle and do not continue.'
  )
}

export function hostKeyChangedError(name: string, address: string, expected: readonly string[], presented: string): XclusterError {
  return new XclusterError(
    `Host key of ${name} (${address}) does not match its pin: expected ${expected.join(' or ')}, presented ${presented}. ` +
      'The connection was refused before authenticating; nothing ran on the host.',
    {
      code: 'HOST_KEY_CHANGED',
      exit: ExitStatus.precondition,
      suggestion: repinSuggestion(name, presented),
      details: {host: name, address, expected: [...expected], presented},
    },
  )
}

export function hostKeyUnknownError(name: string, address: string, presented: string): XclusterError {
  return new XclusterError(`No host key is pinned for ${name} (${address}); it presented ${presented}. The connection was refused before authenticating.`, {
    code: 'HOST_KEY_UNKNOWN',
    exit: ExitStatus.precondition,
    suggestion: `Register the node so its key is pinned, or pin the verified key: xcluster node repin ${name} --fingerprint ${presented}.`,
    details: {host: name, address, presented},
  })
}

/**
 * Checks the key a host presents during key exchange, before any authentication is attempted.
 * Plug {@link verify} into ssh2's `hostVerifier`; after a refused handshake {@link refusal} says why.
 */
export class HostKeyPin {
  private readonly pinned: readonly string[]
  /** Fingerprint of the key the host presented, once it did. */
  presented?: string
  decision?: HostKeyDecision

  constructor(
    readonly name: string,
    readonly address: string,
    readonly policy: HostKeyPolicy,
  ) {
    this.pinned = (policy.pinned ?? []).map((f) => assertFingerprint(f))
  }

  verify(keyBlob: Buffer): boolean {
    const presented = fingerprintOfKeyBlob(keyBlob)
    this.presented = presented
    if (this.pinned.length > 0) {
      if (!this.pinned.includes(presented)) return false
      this.decision = 'pinned'
      return true
    }
    if (this.policy.acceptNewHostKey !== true) return false
    this.decision = 'accepted-new'
    return true
  }

  /** The error for a refused key, or undefined when the key was accepted or never seen. */
  refusal(): XclusterError | undefined {
    if (this.presented === undefined || this.decision !== undefined) return undefined
    return this.pinned.length > 0 ? hostKeyChangedError(this.name, this.address, this.pinned, this.presented) : hostKeyUnknownError(this.name, this.address, this.presented)
  }
}
