import {createHash} from 'node:crypto'

import {usageError} from '../errors.js'

/** An OpenSSH SHA256 fingerprint: `SHA256:` + 43 characters of unpadded base64. */
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/

export function isFingerprint(value: string): boolean {
  return FINGERPRINT.test(value)
}

/** Throws a usage error unless `value` looks like `SHA256:...` as printed by `ssh-keygen -lf`. */
export function assertFingerprint(value: string, what = 'host key fingerprint'): string {
  if (!isFingerprint(value)) {
    throw usageError(
      `Invalid ${what} ${JSON.stringify(value)}: expected SHA256: followed by 43 base64 characters.`,
      'Copy the SHA256:... field printed by `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the node.',
    )
  }
  return value
}

/** Fingerprint of a raw public key blob (the wire format ssh2 hands to its hostVerifier). */
export function fingerprintOfKeyBlob(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`
}

/**
 * Fingerprint of an OpenSSH public key line (`ssh-ed25519 AAAA... comment`), identical to the
 * SHA256 field of `ssh-keygen -lf`. The blob's embedded type must match the line's type, so a
 * truncated or pasted-wrong line is refused instead of yielding a fingerprint nobody can match.
 */
export function fingerprintOfPublicKey(line: string): string {
  const [type, base64] = line.trim().split(/\s+/)
  const blob = base64 && /^[A-Za-z0-9+/]+={0,2}$/.test(base64) ? Buffer.from(base64, 'base64') : Buffer.alloc(0)
  const typeLength = blob.length >= 4 ? blob.readUInt32BE(0) : 0
  const embedded = blob.subarray(4, 4 + typeLength).toString('latin1')
  if (!type || typeLength === 0 || embedded !== type) {
    throw usageError('Not an OpenSSH public key line (expected e.g. "ssh-ed25519 AAAA... comment").', "Use the content of the node's /etc/ssh/ssh_host_<type>_key.pub file.")
  }
  return fingerprintOfKeyBlob(blob)
}
