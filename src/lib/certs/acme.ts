/**
 * `xcluster cert acme issue`: a certificate from an ACME CA (RFC 8555; Let's Encrypt unless
 * --directory names another), proven by HTTP-01. The key authorization of each challenge is
 * written to etcd under a lease, so every `xcluster serve --acme-http` (behind the nginx of every
 * frontend) answers it, whichever frontend the CA reaches; it goes when the order ends, or with
 * the lease if this process dies. The certificate is recorded like `cert issue`'s, its key sealed.
 *
 * A refused or failed request leaves etcd as it was: inputs are checked before the CA is called,
 * the challenges go with their lease, and the account (its key sealed) is recorded only together
 * with the first certificate it obtained; an account a failed order created stays unused at the
 * CA, which costs nothing.
 */
import {createHash, generateKeyPairSync, X509Certificate} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {Agent, get} from 'node:https'
import {isIP} from 'node:net'
import {rootCertificates} from 'node:tls'

import * as acme from 'acme-client'

import {preconditionError, usageError, XclusterError} from '../errors.js'
import type {EtcdStore, Transaction, Versioned} from '../etcd/store.js'
import {commandLine} from '../output/command-line.js'
import {settings} from '../settings.js'
import {certificateInfo, type IssuedCertificate} from './authority.js'
import {certificateView, type CertificateView} from './operator.js'
import {adminTlsPaths} from './paths.js'
import {PrivateKey} from './private-key.js'
import {openSealedKey, sealPrivateKey, type SealedKey} from './sealed.js'
import {readClusterSecret} from './secret.js'
import {saveIssuedCertificate, type StoredCertificate} from './store.js'

export interface AcmeIssueRequest {
  /** DNS names; the first is the common name and, without `name`, the certificate's name. */
  domains: string[]
  /** The contact the CA may write to about the account (expiry, policy). */
  email: string
  /** The CA's directory URL (default settings.certs.acme.directory). */
  directory?: string
  name?: string
  /** PEM certificates to trust for the directory's HTTPS, beside the system's (a test CA). */
  caFile?: string
  secretFile?: string
  /** Check and plan only: no CA is called and nothing is written. */
  dryRun?: boolean
}

export interface AcmeIssueResult {
  name: string
  domains: string[]
  directory: string
  dryRun: boolean
  /** What was (or, in a dry run, would be) done, in order. */
  plan: string[]
  account?: {url: string; created: boolean; termsOfService?: string}
  certificate?: CertificateView
}

/** An ACME account as stored in etcd: the CA's URL for it, and its key sealed. */
export interface StoredAcmeAccount {
  directory: string
  url: string
  email: string
  sealedKey: SealedKey
  createdAt: string
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const EMAIL_LOCAL = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}$/
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'EPIPE'])
const TLS_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
])

/** A name a public CA can validate over HTTP-01: lower-cased, no wildcard, no IP address, a dot at least. */
export function checkAcmeDomain(text: string): string {
  const domain = text.trim().toLowerCase().replace(/\.$/, '')
  if (domain.startsWith('*.')) throw usageError(`"${text}" is a wildcard name, which HTTP-01 cannot prove.`, 'Name each host (e.g. app.example.org and www.example.org).')
  if (isIP(domain)) throw usageError(`"${text}" is an IP address; an ACME CA issues for DNS names here.`, 'Give the DNS name that points at your frontends, e.g. app.example.org.')
  const labels = domain.split('.')
  if (domain.length > 253 || labels.length < 2 || !labels.every((l) => LABEL.test(l)) || /^[0-9]+$/.test(labels.at(-1)!)) {
    throw usageError(`"${text}" is not a domain name a CA can validate.`, 'Give a fully qualified DNS name, e.g. app.example.org (letters, digits and hyphens between dots).')
  }
  return domain
}

export function checkAcmeEmail(text: string): string {
  const [local, domain, ...rest] = text.trim().split('@')
  const ok = rest.length === 0 && local !== undefined && EMAIL_LOCAL.test(local) && domain !== undefined && isDomain(domain)
  if (!ok) throw usageError(`"${text}" is not an email address.`, 'Give the address the CA may write to about this account, e.g. --email ops@example.org.')
  return text.trim()
}

const isDomain = (d: string): boolean => {
  try {
    return checkAcmeDomain(d) !== ''
  } catch {
    return false
  }
}

export function checkDirectoryUrl(text: string): string {
  let url: URL | undefined
  try {
    url = new URL(text)
  } catch {
    url = undefined
  }
  if (url?.protocol !== 'https:') throw usageError(`"${text}" is not an ACME directory URL (https://...).`, `Give the CA's directory, e.g. --directory ${settings.certs.acme.directory}.`)
  return url.href
}

/** The account's key suffix: one account per directory, whatever its URL's length or characters. */
export const acmeAccountId = (directory: string): string => createHash('sha256').update(directory).digest('hex').slice(0, 16)

/**
 * Obtains a certificate for `domains` from the ACME CA and records it under its name (the first
 * domain by default), its key sealed. Refused with nothing written for a bad domain, email or
 * directory, a name already taken, or a CA that cannot be reached or refuses.
 */
export async function issueAcmeCertificate(store: EtcdStore, request: AcmeIssueRequest): Promise<AcmeIssueResult> {
  const domains = [...new Set(request.domains.map(checkAcmeDomain))]
  if (domains.length === 0) throw usageError('No domain given.', 'Name at least one, e.g. xcluster cert acme issue app.example.org --email ops@example.org.')
  const email = checkAcmeEmail(request.email)
  const directory = checkDirectoryUrl(request.directory ?? settings.certs.acme.directory)
  const name = request.name ?? domains[0]!
  const certKey = store.keys.issuedCert(name)
  const trust = request.caFile === undefined ? undefined : readTrust(request.caFile)
  const accountKey = store.keys.acmeAccount(acmeAccountId(directory))
  const existing = await store.getJson<StoredCertificate>(certKey)
  if (existing) throw preconditionError('CERT_EXISTS', `A certificate named "${name}" is already stored.`, `See it: ${commandLine(['cert', 'show', name])}, or choose another --name.`)
  const stored = await store.getJson<StoredAcmeAccount>(accountKey)
  const plan = [
    stored ? `use the ACME account ${stored.value.url} at ${directory}` : `create an ACME account at ${directory} for ${email} (agreeing to its terms of service), recorded with the certificate`,
    `order a certificate for ${domains.join(', ')} and answer its HTTP-01 challenges from etcd (${store.keys.acmeChallengesPrefix()}<token>, leased ${settings.certs.acme.challengeTtlSeconds} s) through serve --acme-http`,
    `record it as "${name}" with its private key sealed under the cluster secret`,
  ]
  if (request.dryRun) return {name, domains, directory, dryRun: true, plan}

  return {name, domains, directory, dryRun: false, plan, ...(await obtainAndRecord(store, {name, domains, email, directory, trust, secretFile: request.secretFile, account: stored}))}
}

export interface AcmeRenewRequest {
  name: string
  caFile?: string
  secretFile?: string
  /** Renew only the record read at this revision (the one the certs leader found due): CERT_CHANGED before any order otherwise. */
  expectedRevision?: string
  /** The certs leader's fencing compare (src/lib/election/fence.ts): the record is replaced only while it leads. */
  fence?: (txn: Transaction) => void
  /** Who renewed it (the certs leader: its node and token), kept on the record. */
  renewedBy?: {node: string; token: string}
}

/**
 * Obtains a new certificate for a stored ACME certificate's names, from the CA and with the
 * account that issued it, and replaces the record (only if it did not change meanwhile). The old
 * certificate stays valid at the CA until it expires. Refused with nothing written for a name
 * not stored, a certificate the cluster CA issued, or a CA that cannot be reached or refuses.
 */
export async function renewAcmeCertificate(store: EtcdStore, request: AcmeRenewRequest): Promise<AcmeIssueResult> {
  const existing = await store.getJson<StoredCertificate>(store.keys.issuedCert(request.name))
  if (!existing) throw preconditionError('CERT_MISSING', `No certificate named "${request.name}" in etcd.`, `List them: ${commandLine(['cert', 'list'])}`)
  const {source, sans} = existing.value
  if (source?.kind !== 'acme') {
    throw preconditionError(
      'CERT_NOT_ACME',
      `The certificate "${request.name}" was issued by the cluster CA, not an ACME CA.`,
      `Issue a new one from the cluster CA under another name: ${commandLine(['cert', 'issue', '--help'])}`,
    )
  }
  // Another renewal got there first: ordering again would only spend the CA's rate limits.
  if (request.expectedRevision !== undefined && existing.modRevision !== request.expectedRevision) {
    throw preconditionError('CERT_CHANGED', `The certificate "${request.name}" changed before it was renewed.`, `See it now: ${commandLine(['cert', 'show', request.name])}`)
  }
  const directory = source.directory
  const trust = request.caFile === undefined ? undefined : readTrust(request.caFile)
  const account = await store.getJson<StoredAcmeAccount>(store.keys.acmeAccount(acmeAccountId(directory)))
  if (!account) {
    throw preconditionError(
      'ACME_ACCOUNT_MISSING',
      `No ACME account for ${directory} is recorded in etcd.`,
      `Issue it again with a new account: ${commandLine(['cert', 'acme', 'issue', ...sans, '--email', 'EMAIL', '--directory', directory, '--name', `${request.name}-new`])}`,
    )
  }
  const plan = [`use the ACME account ${account.value.url} at ${directory}`, `order a new certificate for ${sans.join(', ')}`, `replace "${request.name}" with it, its new private key sealed`]
  const obtained = await obtainAndRecord(store, {
    name: request.name,
    domains: sans,
    email: account.value.email,
    directory,
    trust,
    secretFile: request.secretFile,
    account,
    replacing: existing.modRevision,
    ...(request.fence ? {fence: request.fence} : {}),
    ...(request.renewedBy ? {renewedBy: request.renewedBy} : {}),
  })
  return {name: request.name, domains: sans, directory, dryRun: false, plan, ...obtained}
}

/**
 * Orders a certificate for `domains` with the stored account (or a new one), answering its
 * challenges from etcd, then records the account if new (or its changed contact) and the
 * certificate, its key sealed: nothing is written before the CA has issued.
 */
async function obtainAndRecord(
  store: EtcdStore,
  o: {
    name: string
    domains: string[]
    email: string
    directory: string
    trust?: string
    secretFile?: string
    account?: Versioned<StoredAcmeAccount>
    replacing?: string
    fence?: (txn: Transaction) => void
    renewedBy?: {node: string; token: string}
  },
): Promise<Pick<AcmeIssueResult, 'account' | 'certificate'>> {
  const {directory, domains, email, account: stored} = o
  const accountKey = store.keys.acmeAccount(acmeAccountId(directory))
  const secret = readClusterSecret(o.secretFile ?? adminTlsPaths(store.keys.cluster).secret)
  configureHttp(o.trust)
  const account = stored ? {key: await openSealedKey(stored.value.sealedKey, secret, accountKey), url: stored.value.url} : {key: newKey()}
  const client = new acme.Client({
    directoryUrl: directory,
    accountKey: account.key.exportPem(),
    ...(account.url ? {accountUrl: account.url} : {}),
    backoffAttempts: settings.certs.acme.pollAttempts,
    backoffMin: settings.certs.acme.pollMinMs,
    backoffMax: settings.certs.acme.pollMaxMs,
  })
  await checkDirectory(directory, o.trust)
  const termsOfService = await acmeStep('read the directory', directory, () => client.getTermsOfServiceUrl())
  if (!stored) await acmeStep('create the account', directory, () => client.createAccount({termsOfServiceAgreed: true, contact: [`mailto:${email}`]}))
  else if (stored.value.email !== email) await acmeStep('update the account contact', directory, () => client.updateAccount({contact: [`mailto:${email}`]}))
  const accountUrl = client.getAccountUrl()

  const key = newKey()
  const [, csr] = await acme.crypto.createCsr({commonName: domains[0], altNames: domains}, key.exportPem())
  const chainPem = await answeringChallenges(store, (challenges) =>
    acmeStep(`obtain the certificate for ${domains.join(', ')}`, directory, () =>
      client.auto({csr, email, termsOfServiceAgreed: true, challengePriority: ['http-01'], skipChallengeVerification: true, ...challenges}),
    ),
  )
  const [leaf, ...intermediates] = acme.crypto.splitPemChain(chainPem)
  if (!leaf) throw preconditionError('ACME_NO_CERTIFICATE', `The ACME CA at ${directory} sent no certificate.`, 'Run the command again; if it persists, ask the CA.')
  const issued: IssuedCertificate = {...certificateInfo(leaf), certPem: `${leaf.trimEnd()}\n`, key}

  // The account is recorded with its first certificate (a failed order leaves no trace in etcd);
  // a changed contact is recorded as the CA now has it.
  if (!stored || stored.value.email !== email) {
    const record: StoredAcmeAccount = stored
      ? {...stored.value, email}
      : {directory, url: accountUrl, email, sealedKey: await sealPrivateKey(account.key, secret, accountKey), createdAt: new Date().toISOString()}
    const txn = store.transaction()
    if (stored) txn.ifUnchanged(accountKey, stored.modRevision)
    else txn.ifAbsent(accountKey)
    // Lost to a concurrent issue that recorded its own account first: that one is kept, ours stays unused.
    await txn.put(accountKey, record).commit()
  }
  const summary = await saveIssuedCertificate(store, o.name, issued, {
    secret,
    keepKey: true,
    // A renewal replaces the record only if it is still the one read before the order (its revision: `replacing`).
    ...(o.replacing === undefined ? {} : {replace: true, expectedRevision: o.replacing}),
    ...(o.fence ? {fence: o.fence} : {}),
    ...(o.renewedBy ? {renewedBy: o.renewedBy} : {}),
    source: {kind: 'acme', directory, account: accountUrl},
    chainPem: intermediates.map((p) => `${p.trimEnd()}\n`).join(''),
  })
  return {
    account: {url: accountUrl, created: !stored, ...(termsOfService ? {termsOfService} : {})},
    certificate: certificateView(summary),
  }
}

type ChallengeFns = Pick<acme.ClientAutoOptions, 'challengeCreateFn' | 'challengeRemoveFn'>

/**
 * Runs `order` with challenge callbacks that put each key authorization in etcd under one lease
 * and delete it once its challenge is done; the lease is revoked at the end, whatever happened,
 * so no challenge outlives the order (nor, if this process dies, the lease's TTL).
 */
async function answeringChallenges<T>(store: EtcdStore, order: (fns: ChallengeFns) => Promise<T>): Promise<T> {
  const lease = await store.grantLease(settings.certs.acme.challengeTtlSeconds)
  try {
    return await order({
      async challengeCreateFn(authz, challenge, keyAuthorization) {
        if (challenge.type !== 'http-01') {
          throw preconditionError('ACME_NO_HTTP01', `The ACME CA offers no HTTP-01 challenge for ${authz.identifier.value}.`, 'Use a CA that validates over HTTP-01 (Let’s Encrypt does).')
        }
        const value = {domain: authz.identifier.value, keyAuthorization, createdAt: new Date().toISOString()}
        await store.transaction().put(store.keys.acmeChallenge(challenge.token), value, {lease: lease.id}).commit()
      },
      async challengeRemoveFn(_authz, challenge) {
        await store.delete(store.keys.acmeChallenge(challenge.token))
      },
    })
  } finally {
    await lease.revoke()
  }
}

/** A new ECDSA P-256 key (PKCS#8), as for the cluster's own certificates. */
function newKey(): PrivateKey {
  const {privateKey} = generateKeyPairSync('ec', {namedCurve: settings.certs.curve, privateKeyEncoding: {type: 'pkcs8', format: 'pem'}, publicKeyEncoding: {type: 'spki', format: 'pem'}})
  return new PrivateKey(privateKey)
}

function readTrust(file: string): string {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
    new X509Certificate(text)
  } catch {
    throw usageError(`--ca-file ${file} is not a PEM certificate this host can read.`, "Give the certificate of the CA that signed the ACME directory's HTTPS certificate (PEM).")
  }
  return text
}

/** acme-client's shared HTTP client: a timeout, few quick retries, and the extra trust given. */
function configureHttp(trust: string | undefined): void {
  const {defaults} = acme.axios
  defaults.timeout = settings.certs.acme.requestTimeoutMs
  const tuning = (defaults as unknown as {acmeSettings: {retryMaxAttempts: number; retryDefaultDelay: number}}).acmeSettings
  tuning.retryMaxAttempts = settings.certs.acme.retryAttempts
  tuning.retryDefaultDelay = settings.certs.acme.retryDelaySeconds
  defaults.httpsAgent = trust === undefined ? undefined : new Agent({ca: [...rootCertificates, trust]})
}

/**
 * Reads the directory once before anything else, with the same trust and timeout: a wrong URL,
 * an unreachable CA and an untrusted certificate each get their own clear refusal. (acme-client
 * 5.4 loses the reason of any error that has no HTTP response, publishlab/node-acme-client#101.)
 */
async function checkDirectory(directory: string, trust: string | undefined): Promise<void> {
  const {status, body} = await acmeStep(
    'read the directory',
    directory,
    () =>
      new Promise<{status: number; body: string}>((resolve, reject) => {
        const req = get(directory, {...(trust === undefined ? {} : {ca: [...rootCertificates, trust]}), timeout: settings.certs.acme.requestTimeoutMs}, (res) => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (d: string) => (text += d.slice(0, 65_536)))
          res.on('end', () => resolve({status: res.statusCode ?? 0, body: text}))
        })
        req.on('timeout', () => req.destroy(Object.assign(new Error('no answer in time'), {code: 'ETIMEDOUT'})))
        req.on('error', reject)
      }),
  )
  let resources: Record<string, unknown> = {}
  try {
    resources = JSON.parse(body) as Record<string, unknown>
  } catch {
    resources = {}
  }
  if (status !== 200 || !['newNonce', 'newAccount', 'newOrder'].every((r) => typeof resources[r] === 'string')) {
    throw preconditionError(
      'ACME_DIRECTORY_INVALID',
      `${directory} is not an ACME directory (HTTP ${status}${status === 200 ? ', without newNonce, newAccount and newOrder' : ''}).`,
      `Give the CA's directory URL, e.g. --directory ${settings.certs.acme.directory}.`,
    )
  }
}

/** Runs one exchange with the CA, turning what went wrong into an error that says what to do. */
async function acmeStep<T>(what: string, directory: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof XclusterError) throw err
    const code = String((err as {code?: unknown}).code ?? '')
    const reason = String((err as Error)?.message ?? err)
    const details = {directory, step: what, reason}
    if (TLS_ERRORS.has(code)) {
      throw preconditionError(
        'ACME_TLS_UNTRUSTED',
        `The ACME directory ${directory} presented an HTTPS certificate this host does not trust (${code}).`,
        "Pass the CA that signed it with --ca-file (a test CA such as Pebble's), or check --directory.",
        details,
      )
    }
    if (NETWORK_ERRORS.has(code)) {
      throw preconditionError(
        'ACME_UNREACHABLE',
        `The ACME directory ${directory} is unreachable (${code}) while trying to ${what}.`,
        'Check --directory and that this host reaches the CA over HTTPS (DNS, firewall, proxy), then run the command again.',
        details,
      )
    }
    throw preconditionError(
      'ACME_REFUSED',
      `The ACME CA at ${directory} refused to ${what}: ${reason}`,
      'Check that every domain resolves to your frontends, that their nginx proxies /.well-known/acme-challenge/ to xcluster serve --acme-http, and that it runs; then run the command again.',
      details,
    )
  }
}
