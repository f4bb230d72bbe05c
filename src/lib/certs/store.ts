import {preconditionError} from '../errors.js'
import type {EtcdStore, Transaction} from '../etcd/store.js'
import {caFromPem, certificateInfo, type CertificateAuthority, type CertificateInfo, type IssuedCertificate} from './authority.js'
import {openSealedKey, sealPrivateKey, type SealedKey} from './sealed.js'
import type {ClusterSecret} from './secret.js'

/** The CA as stored in etcd: public facts and the certificate in clear, the key sealed. */
export interface StoredCa extends CertificateInfo {
  cluster: string
  certPem: string
  sealedKey: SealedKey
  storedAt: string
}

/** Who issued a certificate: absent for the cluster CA; an ACME CA by its directory and our account there. */
export interface CertificateSource {
  kind: 'acme'
  directory: string
  account: string
}

/** An issued certificate as stored in etcd; `sealedKey` only when its key is kept. */
export interface StoredCertificate extends CertificateInfo {
  name: string
  certPem: string
  sealedKey?: SealedKey
  /** Set for a certificate from outside the cluster CA (ACME). */
  source?: CertificateSource
  /** The intermediates its issuer sent (ACME), PEM: what a TLS server sends after the certificate. */
  chainPem?: string
  storedAt: string
  /** Set by `cert revoke`; a renewal replaces the record without it. */
  revoked?: {at: string; reason: string}
  /** Set when the elected `certs` leader renewed it: which node, under which fencing token. */
  renewedBy?: {node: string; token: string}
}

/** What may be shown of a stored certificate (`cert list`, --json): no key, sealed or not. */
export type StoredCertificateSummary = Omit<StoredCertificate, 'sealedKey' | 'certPem' | 'chainPem'> & {hasKey: boolean}

/**
 * Stores the CA, create-only: the same CA again changes nothing (`stored: false`); a different
 * one is refused, since every certificate of the cluster chains to the one already there.
 */
export async function saveCa(store: EtcdStore, ca: CertificateAuthority, secret: ClusterSecret): Promise<{stored: boolean}> {
  const key = store.keys.certAuthority()
  const existing = await store.getJson<StoredCa>(key)
  if (existing) {
    if (existing.value.certPem === ca.certPem) return {stored: false}
    throw caExists(existing.value)
  }
  const record: StoredCa = {cluster: ca.cluster, ...certificateInfo(ca.certPem), certPem: ca.certPem, sealedKey: await sealPrivateKey(ca.key, secret, key), storedAt: new Date().toISOString()}
  if (await store.transaction().ifAbsent(key).put(key, record).commit()) return {stored: true}
  const now = await store.getJson<StoredCa>(key)
  if (now?.value.certPem === ca.certPem) return {stored: false}
  throw caExists(now?.value)
}

/** The CA with its key opened by the cluster secret, and the trust bundle of the moment. */
export async function loadCa(store: EtcdStore, secret: ClusterSecret): Promise<CertificateAuthority> {
  const [stored, previous] = await Promise.all([readStoredCa(store), readPreviousCa(store)])
  const key = await openSealedKey(stored.sealedKey, secret, store.keys.certAuthority())
  return {...caFromPem(store.keys.cluster, stored.certPem, key.exportPem()), trustPem: joinPems(stored.certPem, previous?.certPem)}
}

/** What every node trusts: the CA's certificate, and during a rotation the retiring CA's after it; no secret needed. */
export async function loadTrustBundle(store: EtcdStore): Promise<string> {
  const [stored, previous] = await Promise.all([readStoredCa(store), readPreviousCa(store)])
  return joinPems(stored.certPem, previous?.certPem)
}

/** The CA a rotation is retiring (`cert ca rotate` until `--finish`), if one is. */
export async function readPreviousCa(store: EtcdStore): Promise<StoredCa | undefined> {
  return (await store.getJson<StoredCa>(store.keys.previousCertAuthority()))?.value
}

const joinPems = (...pems: (string | undefined)[]): string =>
  pems
    .filter((p): p is string => p !== undefined)
    .map((p) => (p.endsWith('\n') ? p : `${p}\n`))
    .join('')

export async function readStoredCa(store: EtcdStore): Promise<StoredCa> {
  const stored = await store.getJson<StoredCa>(store.keys.certAuthority())
  if (!stored) throw preconditionError('CA_MISSING', `Cluster "${store.keys.cluster}" has no CA in etcd.`, 'Create it with the cluster (xcluster bootstrap), or check --cluster and --etcd.')
  return stored.value
}

/**
 * Records an issued certificate under `name`. With `keepKey` its private key is stored too,
 * sealed (for a certificate that cert-sync distributes later); otherwise only the certificate.
 * An existing record is replaced only with `replace` (renewal), and only if unchanged since read.
 */
export async function saveIssuedCertificate(
  store: EtcdStore,
  name: string,
  issued: IssuedCertificate,
  options: {
    secret?: ClusterSecret
    keepKey?: boolean
    replace?: boolean
    expectedRevision?: string
    /** A leader's fencing compare (src/lib/election/fence.ts): the write is refused once it no longer leads. */
    fence?: (txn: Transaction) => void
    /** Who renewed it (the certs leader: its node and token), kept on the record. */
    renewedBy?: {node: string; token: string}
    /** Where it came from when not the cluster CA (ACME), and the issuer's intermediates. */
    source?: CertificateSource
    chainPem?: string
  } = {},
): Promise<StoredCertificateSummary> {
  const key = store.keys.issuedCert(name)
  if (options.keepKey && !options.secret) throw new Error('saveIssuedCertificate: keepKey needs the cluster secret')
  const {key: privateKey, certPem, ...info} = issued
  const record: StoredCertificate = {
    name,
    ...info,
    certPem,
    ...(options.keepKey && options.secret ? {sealedKey: await sealPrivateKey(privateKey, options.secret, key)} : {}),
    ...(options.source ? {source: options.source} : {}),
    ...(options.chainPem ? {chainPem: options.chainPem} : {}),
    storedAt: new Date().toISOString(),
    ...(options.renewedBy ? {renewedBy: options.renewedBy} : {}),
  }
  const existing = await store.getJson<StoredCertificate>(key)
  if (existing && !options.replace) {
    throw preconditionError('CERT_EXISTS', `A certificate named "${name}" is already stored (serial ${existing.value.serial}).`, 'Renew it instead, or choose another name.')
  }
  if (options.expectedRevision !== undefined && existing?.modRevision !== options.expectedRevision) {
    throw preconditionError('CERT_CHANGED', `The certificate "${name}" changed while it was being renewed.`, 'Run the command again.')
  }
  const txn = store.transaction()
  if (existing) txn.ifUnchanged(key, existing.modRevision)
  else txn.ifAbsent(key)
  options.fence?.(txn)
  if (!(await txn.put(key, record).commit())) {
    if (options.fence) throw preconditionError('CERT_FENCED', `The certificate "${name}" was not stored: it changed meanwhile, or this leader no longer leads.`, 'The leader in force renews it.')
    throw preconditionError('CERT_CHANGED', `The certificate "${name}" changed while it was being stored.`, 'Run the command again.')
  }
  return summary(record)
}

/** An issued certificate with its key opened (the key must have been kept), and its issuer's intermediates if recorded (ACME). */
export async function loadIssuedCertificate(store: EtcdStore, name: string, secret: ClusterSecret): Promise<IssuedCertificate & {chainPem?: string}> {
  const stored = await store.getJson<StoredCertificate>(store.keys.issuedCert(name))
  if (!stored) throw preconditionError('CERT_MISSING', `No certificate named "${name}" in etcd.`, 'List them with xcluster cert list.')
  const {sealedKey, name: _name, storedAt: _at, certPem, chainPem} = stored.value
  if (!sealedKey)
    throw preconditionError('CERT_NO_KEY', `The certificate "${name}" was stored without its private key.`, 'Its key lives only on the host it was issued for; issue a new certificate if it is lost.')
  const key = await openSealedKey(sealedKey, secret, store.keys.issuedCert(name))
  return {...certificateInfo(certPem), certPem, key, ...(chainPem ? {chainPem} : {})}
}

/** Every stored certificate's public facts (never a key, sealed or not). */
export async function listIssuedCertificates(store: EtcdStore): Promise<StoredCertificateSummary[]> {
  return (await store.listJson<StoredCertificate>(store.keys.issuedCertsPrefix())).map((v) => summary(v.value))
}

function summary(record: StoredCertificate): StoredCertificateSummary {
  const {sealedKey, certPem: _pem, chainPem: _chain, ...rest} = record
  return {...rest, hasKey: sealedKey !== undefined}
}

function caExists(existing: StoredCa | undefined) {
  return preconditionError(
    'CA_EXISTS',
    `Cluster etcd already holds a different CA (${existing?.subject ?? 'unknown'}, fingerprint ${existing?.fingerprint ?? '?'}).`,
    'Keep using the stored CA (load it with the cluster secret); replacing it would orphan every certificate issued so far.',
  )
}
