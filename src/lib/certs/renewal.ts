/**
 * `xcluster cert renew`: a certificate reissued by the cluster CA with the same name, SANs and
 * profile, a new key and serial, and (unless told) the same validity; the record is replaced only
 * if nobody changed it since it was read. With --all, only what is due (src/lib/certs/expiry.ts),
 * never a revoked one, and a CRL past half its life is signed afresh.
 */
import {preconditionError, usageError} from '../errors.js'
import type {EtcdStore, Transaction, Versioned} from '../etcd/store.js'
import {commandLine} from '../output/command-line.js'
import {settings} from '../settings.js'
import {issueCertificate, type CertificateAuthority} from './authority.js'
import {DAY_MS, renewalDue} from './expiry.js'
import {readCrl, refreshCrl} from './revocation.js'
import type {ClusterSecret} from './secret.js'
import {loadCa, saveIssuedCertificate, type StoredCertificate, type StoredCertificateSummary} from './store.js'

export interface RenewRequest {
  /** Certificates to renew by name (due or not), or every due one with `all`. */
  names: string[]
  all: boolean
  /** With `all`: renew what has less than this left, in milliseconds (default: src/lib/certs/expiry.ts). */
  beforeMs?: number
  /** The new validity; default the old one's. */
  days?: number
  dryRun: boolean
}

export interface RenewedCertificate {
  name: string
  action: 'renewed' | 'would renew' | 'skipped'
  /** Why it was skipped. */
  reason?: string
  oldSerial: string
  oldNotAfter: string
  serial?: string
  notAfter?: string
}

export interface RenewResult {
  certificates: RenewedCertificate[]
  /** The CRL, when it was (or would be) signed afresh. */
  crl?: {number?: number; nextUpdate?: string; action: 'refreshed' | 'would refresh'}
}

/** `30d`, `12h`, `90m` or a bare number of days, in milliseconds. */
export function parseThreshold(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([dhm]?)$/.exec(text.trim())
  if (!match) throw usageError(`--before ${text} is not a duration.`, 'Give days, hours or minutes: --before 30d, --before 12h, --before 90m.')
  const unit = {d: DAY_MS, h: 3_600_000, m: 60_000, '': DAY_MS}[match[2] as 'd' | 'h' | 'm' | '']
  return Number(match[1]) * unit
}

/** Refuses a request that names nothing and has no --all, or both. */
export function checkRenewRequest(request: Pick<RenewRequest, 'names' | 'all'>): void {
  if (request.all === request.names.length > 0) throw usageError('Name the certificates to renew, or give --all (not both).', `Renew what is due: ${commandLine(['cert', 'renew', '--all'])}`)
}

export async function renewCertificates(store: EtcdStore, request: RenewRequest, secret: () => ClusterSecret, now = new Date()): Promise<RenewResult> {
  checkRenewRequest(request)
  const stored = await store.listJson<StoredCertificate>(store.keys.issuedCertsPrefix())
  const byName = new Map(stored.map((v) => [v.value.name, v]))
  for (const name of request.names) {
    const found = byName.get(name)
    if (!found) throw preconditionError('CERT_MISSING', `No certificate named "${name}" in etcd.`, `List them: ${commandLine(['cert', 'list'])}`)
    if (!found.value.sealedKey) throw noKey(name)
    if (found.value.source) throw fromAcme(name, found.value.source.directory)
  }
  const chosen = request.all ? stored.map((v) => v.value).sort((a, b) => a.notAfter.localeCompare(b.notAfter)) : request.names.map((n) => (byName.get(n) as (typeof stored)[number]).value)
  const plan: RenewedCertificate[] = chosen.map((c) => {
    const base = {name: c.name, oldSerial: c.serial, oldNotAfter: c.notAfter}
    if (request.all) {
      if (c.revoked) return {...base, action: 'skipped', reason: `revoked at ${c.revoked.at}: renew it by name to replace it`}
      if (c.source) return {...base, action: 'skipped', reason: `from an ACME CA: ${commandLine(['cert', 'acme', 'renew', c.name])} renews it`}
      if (!c.sealedKey) return {...base, action: 'skipped', reason: 'its key lives on its host only: provisioning renews it there'}
      if (!renewalDue(c, now.getTime(), request.beforeMs)) return {...base, action: 'skipped', reason: 'not due'}
    }
    return {...base, action: request.dryRun ? 'would renew' : 'renewed'}
  })
  const crl = request.all ? await crlDue(store, now) : false
  if (request.dryRun) return {certificates: plan, ...(crl ? {crl: {action: 'would refresh' as const}} : {})}

  const key = secret()
  const ca = await loadCa(store, key)
  for (const entry of plan.filter((p) => p.action === 'renewed')) {
    const saved = await renewStoredCertificate(store, byName.get(entry.name) as (typeof stored)[number], ca, key, {days: request.days, now})
    entry.serial = saved.serial
    entry.notAfter = saved.notAfter
  }
  if (!crl) return {certificates: plan}
  const refreshed = await refreshCrl(store, key, now)
  return {certificates: plan, crl: {action: 'refreshed', number: refreshed.number, nextUpdate: refreshed.nextUpdate}}
}

/**
 * Reissues one stored certificate: same names and profile, a new key sealed, the validity it had
 * (or `days`). Replaced only if the record is still the one read (its revision), and with `fence`
 * only while the leader that renews it still leads.
 */
export async function renewStoredCertificate(
  store: EtcdStore,
  stored: Versioned<StoredCertificate>,
  ca: CertificateAuthority,
  secret: ClusterSecret,
  options: {days?: number; now?: Date; fence?: (txn: Transaction) => void; renewedBy?: {node: string; token: string}} = {},
): Promise<StoredCertificateSummary> {
  const old = stored.value
  const issued = await issueCertificate(ca, {
    commonName: old.commonName,
    sans: old.sans,
    profile: old.profile ?? 'server',
    days: options.days ?? validityDays(old),
    ...(options.now ? {now: options.now} : {}),
  })
  return saveIssuedCertificate(store, old.name, issued, {
    secret,
    keepKey: true,
    replace: true,
    expectedRevision: stored.modRevision,
    ...(options.fence ? {fence: options.fence} : {}),
    ...(options.renewedBy ? {renewedBy: options.renewedBy} : {}),
  })
}

/** The old certificate's validity (what it was issued for), in days; fractions kept for short-lived ones. */
function validityDays(cert: StoredCertificate): number {
  return Math.max((Date.parse(cert.notAfter) - Date.parse(cert.notBefore) - settings.certs.backdateMs) / DAY_MS, 1 / 1440)
}

async function crlDue(store: EtcdStore, now: Date): Promise<boolean> {
  const crl = await readCrl(store)
  return crl !== undefined && Date.parse(crl.nextUpdate) - now.getTime() < (settings.certs.crlDays * DAY_MS) / 2
}

/** A certificate from an ACME CA is renewed by that CA (cert acme renew), never reissued by the cluster CA. */
export const fromAcme = (name: string, directory: string) =>
  preconditionError(
    'CERT_FROM_ACME',
    `The certificate "${name}" was issued by the ACME CA at ${directory}, not the cluster CA.`,
    `Renew it from that CA: ${commandLine(['cert', 'acme', 'renew', name])}`,
  )

const noKey = (name: string) =>
  preconditionError('CERT_NO_KEY', `The certificate "${name}" was stored without its private key: it lives only on the host it was issued for.`, 'The next provisioning of its host renews it there.')
