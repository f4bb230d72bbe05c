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
import {issueCertificate, type CertificateProfile} from './authority.js'
import {adminTlsPaths} from './paths.js'
import {readClusterSecret, writePrivateFile} from './secret.js'
import {listIssuedCertificates, loadCa, loadCaCertificate, saveIssuedCertificate, type StoredCertificate, type StoredCertificateSummary} from './store.js'

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
export type CertificateView = StoredCertificateSummary & {daysLeft: number}

export interface IssueResult {
  certificate: CertificateView
  /** The files written (--out), by what they hold. */
  files?: {cert: string; key: string; ca: string}
}

const DAY_MS = 86_400_000

const view = (s: StoredCertificateSummary, now = Date.now()): CertificateView => ({...s, daysLeft: Math.floor((Date.parse(s.notAfter) - now) / DAY_MS)})

/** Issues NAME from the cluster CA and records it (its key sealed); refused with nothing written when the name is taken or the request is bad. */
export async function issueNamedCertificate(store: EtcdStore, request: IssueRequest): Promise<IssueResult> {
  store.keys.issuedCert(request.name)
  if (request.outDir !== undefined && !(existsSync(request.outDir) && statSync(request.outDir).isDirectory())) {
    throw usageError(`--out ${request.outDir} is not a directory.`, `Create it first (mkdir -p ${request.outDir}), or leave --out out to keep the key only sealed in etcd.`)
  }
  if (await store.getJson(store.keys.issuedCert(request.name))) {
    throw preconditionError('CERT_EXISTS', `A certificate named "${request.name}" is already stored.`, `See it: ${commandLine(['cert', 'show', request.name])}`)
  }
  const secret = readClusterSecret(request.secretFile ?? adminTlsPaths(store.keys.cluster).secret)
  const ca = await loadCa(store, secret)
  const issued = await issueCertificate(ca, {commonName: request.name, sans: request.sans, profile: request.profile, ...(request.days === undefined ? {} : {days: request.days})})
  const summary = await saveIssuedCertificate(store, request.name, issued, {secret, keepKey: true})
  if (request.outDir === undefined) return {certificate: view(summary)}
  const files = {cert: join(request.outDir, `${request.name}.crt`), key: join(request.outDir, `${request.name}.key`), ca: join(request.outDir, 'ca.crt')}
  writePrivateFile(files.key, issued.key.exportPem())
  writeFileSync(files.cert, issued.certPem, {mode: 0o644})
  writeFileSync(files.ca, ca.certPem, {mode: 0o644})
  return {certificate: view(summary), files}
}

/** Every stored certificate, soonest to expire first. */
export async function listCertificates(store: EtcdStore): Promise<CertificateView[]> {
  const now = Date.now()
  return (await listIssuedCertificates(store)).map((s) => view(s, now)).sort((a, b) => a.notAfter.localeCompare(b.notAfter) || a.name.localeCompare(b.name))
}

/** One certificate's facts and PEM (public), and the CA's; never its key. */
export async function showCertificate(store: EtcdStore, name: string): Promise<CertificateView & {certPem: string; caPem: string}> {
  const stored = await store.getJson<StoredCertificate>(store.keys.issuedCert(name))
  if (!stored) throw preconditionError('CERT_MISSING', `No certificate named "${name}" in etcd.`, `List them: ${commandLine(['cert', 'list'])}`)
  const {sealedKey, certPem, ...rest} = stored.value
  return {...view({...rest, hasKey: sealedKey !== undefined}), certPem, caPem: await loadCaCertificate(store)}
}
