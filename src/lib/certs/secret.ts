import {randomBytes} from 'node:crypto'
import {chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync} from 'node:fs'
import {dirname} from 'node:path'

import {preconditionError} from '../errors.js'
import {settings} from '../settings.js'
import {Redacted} from './redacted.js'

/**
 * The cluster secret: random bytes from which the key that seals private keys at rest (in etcd)
 * is derived. It lives only in a 0600 file on the admin host and on the core nodes (the hosts
 * that may issue certificates), never in etcd, so an etcd snapshot, a backup or a serve
 * certificate that can read the cluster prefix yields no private key. Like PrivateKey, it
 * cannot be printed or serialized by accident.
 */
export class ClusterSecret extends Redacted {
  readonly #bytes: Buffer

  private constructor(bytes: Buffer) {
    super('[cluster secret redacted]')
    this.#bytes = bytes
  }

  static generate(): ClusterSecret {
    return new ClusterSecret(randomBytes(settings.certs.secretBytes))
  }

  /** The file's text form (base64url, one line). */
  static parse(text: string, source = 'the cluster secret'): ClusterSecret {
    const trimmed = text.trim()
    const bytes = Buffer.from(trimmed, 'base64url')
    if (!/^[A-Za-z0-9_-]+$/.test(trimmed) || bytes.length !== settings.certs.secretBytes) {
      throw preconditionError(
        'SECRET_INVALID',
        `${source} is not a cluster secret (${settings.certs.secretBytes} random bytes, base64url, on one line).`,
        'Restore the file from the admin host or another core node (it is the same on all of them).',
      )
    }
    return new ClusterSecret(bytes)
  }

  /** The raw bytes, for the key derivation only. */
  exportBytes(): Buffer {
    return Buffer.from(this.#bytes)
  }

  equals(other: ClusterSecret): boolean {
    return this.#bytes.equals(other.#bytes)
  }
}

/**
 * Reads the secret, refusing a file that others could read (as ssh refuses a private key with
 * loose permissions): a secret that leaked is no secret.
 */
export function readClusterSecret(path: string): ClusterSecret {
  if (!existsSync(path)) {
    throw preconditionError('SECRET_MISSING', `No cluster secret at ${path}.`, 'Copy it from the admin host or a core node (mode 0600), or point XCLUSTER_PKI_DIR at the directory that holds it.')
  }
  const mode = statSync(path).mode & 0o777
  if (mode & 0o077) {
    throw preconditionError('SECRET_FILE_MODE', `The cluster secret ${path} is readable by others (mode ${mode.toString(8).padStart(4, '0')}).`, `Run: chmod 600 ${path}`)
  }
  return ClusterSecret.parse(readFileSync(path, 'utf8'), path)
}

/**
 * Writes a new secret file (mode 0600, directory 0700), atomically. Refuses to replace a
 * different secret: every private key sealed under it would be lost.
 */
export function writeClusterSecret(path: string, secret: ClusterSecret): {written: boolean} {
  if (existsSync(path)) {
    if (readClusterSecret(path).equals(secret)) return {written: false}
    throw preconditionError(
      'SECRET_EXISTS',
      `A different cluster secret already exists at ${path}.`,
      'Keep the existing secret (the CA key in etcd is sealed with it); remove the file only if that cluster is gone.',
    )
  }
  writePrivateFile(path, `${secret.exportBytes().toString('base64url')}\n`)
  return {written: true}
}

/** Writes a file only its owner can read (0600; parent created 0700), through a temporary file and rename. */
export function writePrivateFile(path: string, text: string): void {
  mkdirSync(dirname(path), {recursive: true, mode: 0o700})
  const tmp = `${path}.tmp-${process.pid}`
  const fd = openSync(tmp, 'w', 0o600)
  try {
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  chmodSync(tmp, 0o600)
  renameSync(tmp, path)
}
