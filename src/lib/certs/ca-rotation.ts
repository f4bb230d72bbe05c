/**
 * `xcluster cert ca rotate`, the part that lives in etcd. A rotation has two ends:
 *
 * - begin: one transaction makes a new CA the signer (`certs/ca`) and keeps the old one as
 *   `certs/ca-previous`, still trusted: every trust file written from then on holds both, so
 *   certificates of either CA are accepted while they are reissued;
 * - end: refused while a stored certificate still comes from the previous CA; otherwise the
 *   previous CA is dropped and trust files hold the new one alone.
 *
 * Between them the nodes' files are rewritten over SSH (src/lib/actions/ca-rotate.ts). A begun
 * rotation is never begun again: running it a second time carries on with the same new CA.
 */
import {preconditionError} from '../errors.js'
import type {EtcdStore, Versioned} from '../etcd/store.js'
import {commandLine} from '../output/command-line.js'
import {createCa, certificateInfo, issuedBy, type CertificateAuthority} from './authority.js'
import {crlSignedBy} from './crl.js'
import {renewStoredCertificate} from './renewal.js'
import {readCrl, refreshCrl} from './revocation.js'
import {sealPrivateKey} from './sealed.js'
import type {ClusterSecret} from './secret.js'
import {loadCa, readPreviousCa, readStoredCa, type StoredCa, type StoredCertificate} from './store.js'

/** A CA's public facts, as shown. */
export interface CaSummary {
  subject: string
  serial: string
  fingerprint: string
  notBefore: string
  notAfter: string
}

/** A stored certificate the previous CA signed: reissued by the rotation when its key is kept. */
export interface StaleCertificate {
  name: string
  serial: string
  hasKey: boolean
}

export interface CaRotationState {
  current: CaSummary
  /** The CA being retired, while a rotation is under way. */
  previous?: CaSummary
  /** Stored certificates (not revoked, not ACME) still from the previous CA. */
  stale: StaleCertificate[]
}

const summary = (ca: StoredCa): CaSummary => ({subject: ca.subject, serial: ca.serial, fingerprint: ca.fingerprint, notBefore: ca.notBefore, notAfter: ca.notAfter})

/** The cluster's CA, the one being retired if any, and what the retiring one still signs. */
export async function readCaRotation(store: EtcdStore): Promise<CaRotationState> {
  const [current, previous] = await Promise.all([readStoredCa(store), readPreviousCa(store)])
  const stale = previous ? (await staleCertificates(store, previous)).map((v) => ({name: v.value.name, serial: v.value.serial, hasKey: v.value.sealedKey !== undefined})) : []
  return {current: summary(current), ...(previous ? {previous: summary(previous)} : {}), stale}
}

async function staleCertificates(store: EtcdStore, previous: StoredCa): Promise<Versioned<StoredCertificate>[]> {
  const stored = await store.listJson<StoredCertificate>(store.keys.issuedCertsPrefix())
  const stale: Versioned<StoredCertificate>[] = []
  // A revoked certificate stays revoked (it is in the CRL by serial); an ACME one is not the cluster CA's.
  for (const cert of stored) if (!cert.value.revoked && !cert.value.source && (await issuedBy(previous, cert.value.certPem))) stale.push(cert)
  return stale
}

/**
 * Makes a new CA the signer and keeps the current one trusted beside it, in one transaction; a
 * rotation already under way is carried on (`begun: false`). Returns the CA now signing, with the
 * trust bundle of both.
 */
export async function beginCaRotation(store: EtcdStore, secret: ClusterSecret, options: {days?: number; now?: Date} = {}): Promise<{begun: boolean; ca: CertificateAuthority}> {
  if (await readPreviousCa(store)) return {begun: false, ca: await loadCa(store, secret)}
  const k = store.keys
  const current = await store.getJson<StoredCa>(k.certAuthority())
  if (!current) await readStoredCa(store) // throws CA_MISSING with its advice
  const old = current as Versioned<StoredCa>
  const next = await createCa({cluster: k.cluster, ...(options.days ? {days: options.days} : {}), ...(options.now ? {now: options.now} : {})})
  const record: StoredCa = {
    cluster: next.cluster,
    ...certificateInfo(next.certPem),
    certPem: next.certPem,
    sealedKey: await sealPrivateKey(next.key, secret, k.certAuthority()),
    storedAt: new Date().toISOString(),
  }
  const committed = await store
    .transaction()
    .ifUnchanged(k.certAuthority(), old.modRevision)
    .ifAbsent(k.previousCertAuthority())
    .put(k.previousCertAuthority(), old.value)
    .put(k.certAuthority(), record)
    .commit()
  if (!committed) {
    throw preconditionError('CA_CHANGED', 'The cluster CA changed while the rotation began (another rotation?).', `See where it stands: ${commandLine(['cert', 'ca', 'show'])}`)
  }
  return {begun: true, ca: await loadCa(store, secret)}
}

/**
 * Reissues every stored certificate the previous CA signed whose key is kept, from `ca` (the
 * new one), and signs the CRL afresh with it. Those without a kept key are left (their hosts hold
 * the keys); `endCaRotation` refuses while any is left.
 */
export async function reissueFromPreviousCa(
  store: EtcdStore,
  ca: CertificateAuthority,
  secret: ClusterSecret,
): Promise<{reissued: {name: string; oldSerial: string; serial: string}[]; left: StaleCertificate[]}> {
  const previous = await readPreviousCa(store)
  if (!previous) return {reissued: [], left: []}
  const reissued: {name: string; oldSerial: string; serial: string}[] = []
  const left: StaleCertificate[] = []
  for (const cert of await staleCertificates(store, previous)) {
    if (!cert.value.sealedKey) {
      left.push({name: cert.value.name, serial: cert.value.serial, hasKey: false})
      continue
    }
    const saved = await renewStoredCertificate(store, cert, ca, secret)
    reissued.push({name: cert.value.name, oldSerial: cert.value.serial, serial: saved.serial})
  }
  // The CRL must be signed by the CA clients now check it against.
  const crl = await readCrl(store)
  if (crl && !(await crlSignedBy(crl.pem, ca))) await refreshCrl(store, secret)
  return {reissued, left}
}

/**
 * Drops the previous CA: refused while a stored certificate still comes from it. The nodes'
 * trust files are narrowed first (src/lib/actions/ca-rotate.ts), so a crash in between leaves
 * them trusting both, which the next `--finish` mends.
 */
export async function endCaRotation(store: EtcdStore): Promise<{ended: boolean}> {
  const k = store.keys
  const previous = await store.getJson<StoredCa>(k.previousCertAuthority())
  if (!previous) return {ended: false}
  const stale = await staleCertificates(store, previous.value)
  if (stale.length > 0) throw staleRefusal(stale.map((c) => c.value.name))
  if (!(await store.transaction().ifUnchanged(k.previousCertAuthority(), previous.modRevision).delete(k.previousCertAuthority()).commit())) {
    throw preconditionError('CA_CHANGED', 'The retiring CA changed while the rotation was being finished.', `Run it again: ${commandLine(['cert', 'ca', 'rotate', '--finish'])}`)
  }
  return {ended: true}
}

/** Certificates the retiring CA still signs: the previous CA stays trusted until they are replaced. */
export const staleRefusal = (names: string[]) =>
  preconditionError(
    'CA_ROTATION_UNFINISHED',
    `Still issued by the previous CA: ${names.join(', ')}. It stays trusted until they are replaced.`,
    `Carry the rotation on (${commandLine(['cert', 'ca', 'rotate'])}); a certificate whose key is not kept in etcd is replaced by issuing a new one (${commandLine(['cert', 'issue', 'NAME', '--san', 'HOST'])}) and revoking the old (${commandLine(['cert', 'revoke', names[0] ?? 'NAME'])}).`,
  )
