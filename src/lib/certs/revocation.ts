/**
 * `xcluster cert revoke` and the CRL: a revocation is recorded under its serial, marked on the
 * certificate's record, and a newly signed CRL (its number one higher) is stored, all in one
 * transaction: a reader sees the certificate revoked and listed in the CRL, or neither.
 */
import {preconditionError} from '../errors.js'
import type {EtcdStore, Transaction} from '../etcd/store.js'
import {commandLine} from '../output/command-line.js'
import {signCrl, type RevocationReason, type Revocation, type SignedCrl} from './crl.js'
import type {ClusterSecret} from './secret.js'
import {loadCa, type StoredCertificate} from './store.js'

/** The CRL as stored in etcd (public: it is what nginx and clients load). */
export type StoredCrl = SignedCrl & {revoked: number; storedAt: string}

export interface RevokeResult {
  name: string
  serial: string
  reason: RevocationReason
  revokedAt: string
  crl: Omit<StoredCrl, 'pem'>
}

export async function readCrl(store: EtcdStore): Promise<StoredCrl | undefined> {
  return (await store.getJson<StoredCrl>(store.keys.certRevocationList()))?.value
}

export async function listRevocations(store: EtcdStore): Promise<Revocation[]> {
  return (await store.listJson<Revocation>(store.keys.revokedCertsPrefix())).map((v) => v.value).sort((a, b) => a.revokedAt.localeCompare(b.revokedAt) || a.serial.localeCompare(b.serial))
}

/** Revokes the certificate stored as `name`; refused with nothing changed when it is missing or already revoked. */
export async function revokeCertificate(store: EtcdStore, name: string, reason: RevocationReason, secret: ClusterSecret, now = new Date()): Promise<RevokeResult> {
  const k = store.keys
  const stored = await store.getJson<StoredCertificate>(k.issuedCert(name))
  if (!stored) throw preconditionError('CERT_MISSING', `No certificate named "${name}" in etcd.`, `List them: ${commandLine(['cert', 'list'])}`)
  const cert = stored.value
  // The cluster CA's CRL speaks only for what the cluster CA signed.
  if (cert.source) {
    throw preconditionError(
      'CERT_FROM_ACME',
      `The certificate "${name}" was issued by the ACME CA at ${cert.source.directory}: the cluster CA's CRL cannot revoke it.`,
      `Replace it (the old one stays valid until it expires; xcluster does not revoke at an ACME CA yet): ${commandLine(['cert', 'acme', 'renew', name])}`,
    )
  }
  if (cert.revoked) {
    throw preconditionError(
      'CERT_REVOKED',
      `The certificate "${name}" (serial ${cert.serial}) was already revoked at ${cert.revoked.at} (${cert.revoked.reason}).`,
      `Issue its replacement: ${commandLine(['cert', 'renew', name])}`,
    )
  }
  const revocation: Revocation = {serial: cert.serial, name, revokedAt: now.toISOString(), reason}
  const ca = await loadCa(store, secret)
  const result = await storeCrl(store, ca, now, revocation, (txn) =>
    txn
      .ifUnchanged(k.issuedCert(name), stored.modRevision)
      .ifAbsent(k.revokedCert(cert.serial))
      .put(k.revokedCert(cert.serial), revocation)
      .put(k.issuedCert(name), {...cert, revoked: {at: revocation.revokedAt, reason}}),
  )
  return {name, serial: cert.serial, reason, revokedAt: revocation.revokedAt, crl: result}
}

/** Signs and stores a fresh CRL with the same entries (its number one higher): before the last one runs out, or the first one. */
export async function refreshCrl(store: EtcdStore, secret: ClusterSecret, now = new Date(), fence?: (txn: Transaction) => void): Promise<Omit<StoredCrl, 'pem'>> {
  return storeCrl(store, await loadCa(store, secret), now, undefined, (txn) => {
    fence?.(txn)
    return txn
  })
}

async function storeCrl(
  store: EtcdStore,
  ca: Awaited<ReturnType<typeof loadCa>>,
  now: Date,
  added: Revocation | undefined,
  withChanges: (txn: ReturnType<EtcdStore['transaction']>) => ReturnType<EtcdStore['transaction']>,
): Promise<Omit<StoredCrl, 'pem'>> {
  const key = store.keys.certRevocationList()
  const current = await store.getJson<StoredCrl>(key)
  const revocations = [...(await listRevocations(store)), ...(added ? [added] : [])]
  const signed = await signCrl(ca, revocations, (current?.value.number ?? 0) + 1, now)
  const record: StoredCrl = {...signed, revoked: revocations.length, storedAt: now.toISOString()}
  const txn = withChanges(store.transaction())
  // Every revocation rewrites the CRL, so the CRL unchanged means no revocation was added meanwhile.
  if (current) txn.ifUnchanged(key, current.modRevision)
  else txn.ifAbsent(key)
  if (!(await txn.put(key, record).commit())) {
    throw preconditionError('CERT_CHANGED', 'The certificate or the revocation list changed while this ran.', 'Run the command again.')
  }
  const {pem: _pem, ...facts} = record
  return facts
}
