import {createCipheriv, createDecipheriv, createPrivateKey, randomBytes, scrypt, type ScryptOptions} from 'node:crypto'

import {preconditionError} from '../errors.js'
import {settings} from '../settings.js'
import {PrivateKey} from './private-key.js'
import type {ClusterSecret} from './secret.js'

/**
 * A private key sealed with AES-256-GCM under a key derived by scrypt from the cluster secret.
 * What is stored in etcd: no PEM, nothing that opens without the secret. The scrypt parameters
 * travel with it (so settings may change) and, with the salt and the etcd key the value lives
 * under, are authenticated as associated data: a sealed key moved to another key, or with its
 * parameters edited, does not open.
 */
export interface SealedKey {
  format: 'xcluster-sealed-key/1'
  cipher: 'aes-256-gcm'
  kdf: {name: 'scrypt'; N: number; r: number; p: number; salt: string}
  iv: string
  tag: string
  data: string
}

const FORMAT = 'xcluster-sealed-key/1'

export async function sealPrivateKey(key: PrivateKey, secret: ClusterSecret, context: string): Promise<SealedKey> {
  const {N, r, p, saltBytes} = settings.certs.scrypt
  const kdf = {name: 'scrypt' as const, N, r, p, salt: randomBytes(saltBytes).toString('base64')}
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', await deriveKey(secret, kdf), iv)
  cipher.setAAD(associatedData(kdf, context))
  const der = createPrivateKey(key.exportPem()).export({type: 'pkcs8', format: 'der'})
  const data = Buffer.concat([cipher.update(der), cipher.final()])
  der.fill(0)
  return {format: FORMAT, cipher: 'aes-256-gcm', kdf, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64')}
}

/** Opens a sealed key; a wrong secret, another context or any tampering is one clear refusal. */
export async function openSealedKey(sealed: SealedKey, secret: ClusterSecret, context: string): Promise<PrivateKey> {
  if (sealed?.format !== FORMAT || sealed.cipher !== 'aes-256-gcm' || sealed.kdf?.name !== 'scrypt') {
    throw preconditionError('SEALED_KEY_FORMAT', `The private key stored for ${context} is not in a format this xcluster knows.`, 'Upgrade xcluster, or re-create the key with this version.')
  }
  const {N, r, p} = sealed.kdf
  const ok = (v: number, max: number) => Number.isInteger(v) && v > 0 && v <= max
  if (!ok(N, settings.certs.scrypt.maxN) || (N & (N - 1)) !== 0 || !ok(r, 64) || !ok(p, 16)) {
    throw preconditionError(
      'SEALED_KEY_FORMAT',
      `The private key stored for ${context} asks for scrypt parameters out of bounds (N=${N}, r=${r}, p=${p}).`,
      'Re-create the key: these parameters were not written by xcluster.',
    )
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', await deriveKey(secret, sealed.kdf), Buffer.from(sealed.iv, 'base64'))
    decipher.setAAD(associatedData(sealed.kdf, context))
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'))
    const der = Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()])
    const pem = createPrivateKey({key: der, format: 'der', type: 'pkcs8'}).export({type: 'pkcs8', format: 'pem'}) as string
    der.fill(0)
    return new PrivateKey(pem)
  } catch {
    throw preconditionError(
      'SECRET_MISMATCH',
      `The cluster secret does not open the private key stored for ${context}.`,
      'Use the cluster secret of this cluster (copy it from the admin host or a core node).',
    )
  }
}

function associatedData(kdf: SealedKey['kdf'], context: string): Buffer {
  return Buffer.from(`${FORMAT}\n${context}\nscrypt N=${kdf.N} r=${kdf.r} p=${kdf.p} salt=${kdf.salt}`)
}

function deriveKey(secret: ClusterSecret, kdf: SealedKey['kdf']): Promise<Buffer> {
  const options: ScryptOptions = {N: kdf.N, r: kdf.r, p: kdf.p, maxmem: settings.certs.scrypt.maxmemBytes}
  return new Promise((resolve, reject) => scrypt(secret.exportBytes(), Buffer.from(kdf.salt, 'base64'), 32, options, (err, key) => (err ? reject(err) : resolve(key))))
}
