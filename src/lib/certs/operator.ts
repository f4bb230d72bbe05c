/**
 * `xcluster cert issue|list|show`: certificates from the cluster CA, issued on the admin host
 * (which holds the cluster secret that opens the CA key), recorded in etcd with their private
 * key sealed (for distribution later), and written to files only where the operator asks. No
 * private key is ever part of what a command prints or returns.
 */
import {existsSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {preconditionError, usageError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {commandLine} from '../output/command-line.js'
import {issueCertificate, trustBundle, type CertificateProfile} from './authority.js'
import {readCaRotation, type CaRotationState} from './ca-rotation.js'
import {DAY_MS, msLeft, renewalDue} from './expiry.js'
import {adminTlsPaths} from './paths.js'
import {renewCertificates, type RenewRequest, type RenewResult} from './renewal.js'
import {readCrl, refreshCrl, revokeCertificate, type RevokeResult, type StoredCrl} from './revocation.js'
import type {RevocationReason} from './crl.js'
import {readClusterSecret, writePrivateFile, type ClusterSecret} from './secret.js'
import {listIssuedCertificates, loadCa, loadTrustBundle, saveIssuedCertificate, type StoredCertificate, type StoredCertificateSummary} from './store.js'

export interface IssueRequest {
  name: string
  sans: string[]
  profile: CertificateProfile
  days?: number
  /** A directory to write NAME.crt, NAME.key (0600) and ca.crt into. */
  outDir?: string
  /** The cluster secret's file; default the admin host's, beside the operator's credentials. */
  secretFile?: string
}

/** A stored certificate's public facts, with how long it has left. */
export type CertificateView = StoredCertificateSummary & {daysLeft: number; status: 'ok' | 'due' | 'expired' | 'revoked'}

export interface IssueResult {
  certificate: CertificateView
  /** The files written (--out), by what they hold. */
  files?: {cert: string; key: string; ca: string}
}

/** `due`: what `cert renew --all` would renew (src/lib/certs/expiry.ts). */
const view = (s: StoredCertificateSummary, now = Date.now()): CertificateView => {
  const left = msLeft(s, now)
  const status = s.revoked ? 'revoked' : left <= 0 ? 'expired' : renewalDue(s, now) ? 'due' : 'ok'
  return {...s, daysLeft: Math.floor(left / DAY_MS), status}
}

/** A stored certificate's facts with its days left and status, as cert list shows them. */
export const certificateView = view

/** Issues NAME from the cluster CA and records it (its key sealed); refused with nothing written when the name is taken or the request is bad. */
export async function issueNamedCertificate(store: EtcdStore, request: IssueRequest): Promise<IssueResult> {
  store.keys.issuedCert(request.name)
  if (request.outDir !== undefined && !(existsSync(request.outDir) && statSync(request.outDir).isDirectory())) {
    throw usageError(`--out ${request.outDir} is not a directory.`, `Create it first (mkdir -p ${request.outDir}), or leave --out out to keep the key only sealed in etcd.`)
  }
  if (await store.getJson(store.keys.issuedCert(request.name))) {
    throw preconditionError('CERT_EXISTS', `A certificate named "${request.name}" is already stored.`, `See it: ${commandLine(['cert', 'show', request.name])}`)
  }
  const secret = operatorSecret(store, request.secretFile)
  const ca = await loadCa(store, secret)
  const issued = await issueCertificate(ca, {commonName: request.name, sans: request.sans, profile: request.profile, ...(request.days === undefined ? {} : {days: request.days})})
  const summary = await saveIssuedCertificate(store, request.name, issued, {secret, keepKey: true})
  if (request.outDir === undefined) return {certificate: view(summary)}
  const files = {cert: join(request.outDir, `${request.name}.crt`), key: join(request.outDir, `${request.name}.key`), ca: join(request.outDir, 'ca.crt')}
  writePrivateFile(files.key, issued.key.exportPem())
  writeFileSync(files.cert, issued.certPem, {mode: 0o644})
  writeFileSync(files.ca, trustBundle(ca), {mode: 0o644})
  return {certificate: view(summary), files}
}

/** The cluster secret that opens the CA key: the admin host's, or the file given. */
export function operatorSecret(store: EtcdStore, secretFile?: string): ClusterSecret {
  return readClusterSecret(secretFile ?? adminTlsPaths(store.keys.cluster).secret)
}

/** Revokes NAME and stores a CRL that lists it, in one transaction. */
export function revokeNamedCertificate(store: EtcdStore, name: string, reason: RevocationReason, secretFile?: string): Promise<RevokeResult> {
  return revokeCertificate(store, name, reason, operatorSecret(store, secretFile))
}

/** Renews the named certificates or, with `all`, every one that is due; the secret is read only when something is renewed. */
export function renewNamedCertificates(store: EtcdStore, request: RenewRequest, secretFile?: string): Promise<RenewResult> {
  return renewCertificates(store, request, () => operatorSecret(store, secretFile))
}

/** The stored CRL (public); with `refresh`, or when there is none yet, a fresh one signed first. */
export async function revocationList(store: EtcdStore, options: {refresh: boolean; secretFile?: string}): Promise<StoredCrl> {
  if (options.refresh) await refreshCrl(store, operatorSecret(store, options.secretFile))
  const crl = await readCrl(store)
  if (!crl)
    throw preconditionError('CRL_MISSING', `Cluster "${store.keys.cluster}" has no revocation list yet (nothing was revoked).`, `Sign an empty one: ${commandLine(['cert', 'crl', '--refresh'])}`)
  return crl
}

/** Every stored certificate, soonest to expire first. */
export async function listCertificates(store: EtcdStore): Promise<CertificateView[]> {
  const now = Date.now()
  return (await listIssuedCertificates(store)).map((s) => view(s, now)).sort((a, b) => a.notAfter.localeCompare(b.notAfter) || a.name.localeCompare(b.name))
}

/**
 * One certificate's facts and PEM (public), and what it chains to: the cluster CA's certificate,
 * or for one from an ACME CA the intermediates that CA sent (`chainPem`); never its key.
 */
export async function showCertificate(store: EtcdStore, name: string): Promise<CertificateView & {certPem: string; caPem?: string; chainPem?: string}> {
  const stored = await store.getJson<StoredCertificate>(store.keys.issuedCert(name))
  if (!stored) throw preconditionError('CERT_MISSING', `No certificate named "${name}" in etcd.`, `List them: ${commandLine(['cert', 'list'])}`)
  const {sealedKey, certPem, chainPem, ...rest} = stored.value
  const chain = rest.source ? {chainPem: chainPem ?? ''} : {caPem: await loadTrustBundle(store)}
  return {...view({...rest, hasKey: sealedKey !== undefined}), certPem, ...chain}
}

/** `cert ca show`: the CAs and what the retiring one still signs, with the trust bundle (public). */
export type CaView = CaRotationState & {bundlePem: string}

export async function showCa(store: EtcdStore): Promise<CaView> {
  const [state, bundlePem] = await Promise.all([readCaRotation(store), loadTrustBundle(store)])
  return {...state, bundlePem}
}
