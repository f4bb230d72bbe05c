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
  const fields = wireFields(blob)
  // Types it knows must have all their fields; others at least a key after the name.
  const expected = type?.startsWith('ecdsa-sha2-') ? 3 : KEY_FIELDS[type ?? '']
  const complete = fields !== undefined && (expected === undefined ? fields.length >= 2 : fields.length === expected) && (type !== 'ssh-ed25519' || fields[1]?.length === 32)
  if (!type || !complete || fields?.[0]?.toString('latin1') !== type) {
    throw usageError('Not an OpenSSH public key line (expected e.g. "ssh-ed25519 AAAA... comment").', "Use the content of the node's /etc/ssh/ssh_host_<type>_key.pub file.")
  }
  return fingerprintOfKeyBlob(blob)
}

/** Fields of a key blob by type, the type name included (RFC 4253, 5656, 8709). */
const KEY_FIELDS: Record<string, number> = {'ssh-ed25519': 2, 'ssh-rsa': 3, 'ssh-dss': 5}

/**
 * The length-prefixed fields of a public key blob (RFC 4253 6.6: the type name, then the key's
 * own fields), or undefined unless they fill it exactly: a truncated key fails here.
 */
function wireFields(blob: Buffer): Buffer[] | undefined {
  const fields: Buffer[] = []
  let at = 0
  while (at < blob.length) {
    if (at + 4 > blob.length) return undefined
    const length = blob.readUInt32BE(at)
    if (length === 0 || at + 4 + length > blob.length) return undefined
    fields.push(blob.subarray(at + 4, at + 4 + length))
    at += 4 + length
  }
  return fields
}
