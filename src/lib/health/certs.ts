/**
 * Certificates in `health`, `status` and `/metrics`: every certificate the cluster CA issued
 * (revoked ones aside), the CA itself and the CRL, judged by the time they have left, from the
 * records in etcd (read with the rest of the snapshot: no extra round trip).
 */
import type {KeySchema} from '../etcd/keys.js'
import type {StoredCrl} from '../certs/revocation.js'
import type {StoredCa, StoredCertificate} from '../certs/store.js'
import {DAY_MS, expiryStatus, msLeft} from '../certs/expiry.js'
import {commandLine} from '../output/command-line.js'
import {settings} from '../settings.js'
import type {HealthCheck} from './types.js'

/** What the checks need of a certificate: never its key. */
export interface CertificateExpiry {
  name: string
  serial: string
  notBefore: string
  notAfter: string
  revoked: boolean
  /** From an ACME CA: renewed with cert acme renew, not cert renew. */
  acme?: boolean
}

export interface CertificateState {
  ca?: {subject: string; notBefore: string; notAfter: string}
  /** The CA a rotation retires, still trusted until `cert ca rotate --finish`. */
  previousCa?: {fingerprint: string}
  certificates: CertificateExpiry[]
  crl?: {number: number; nextUpdate: string}
}

/**
 * Sorts the records under `certs/`, as the snapshot decoded them (undefined: not JSON, skipped),
 * into the CA, the certificates and the CRL (sealed keys dropped on the way).
 */
export function certificateState(keys: KeySchema, records: readonly {key: string; value: unknown}[]): CertificateState {
  const state: CertificateState = {certificates: []}
  for (const {key, value} of records) {
    if (!value) continue
    if (key === keys.certAuthority()) {
      const ca = value as StoredCa
      state.ca = {subject: ca.subject, notBefore: ca.notBefore, notAfter: ca.notAfter}
    } else if (key === keys.previousCertAuthority()) {
      state.previousCa = {fingerprint: (value as StoredCa).fingerprint}
    } else if (key === keys.certRevocationList()) {
      const crl = value as StoredCrl
      state.crl = {number: crl.number, nextUpdate: crl.nextUpdate}
    } else if (key.startsWith(keys.issuedCertsPrefix())) {
      const c = value as StoredCertificate
      state.certificates.push({name: c.name, serial: c.serial, notBefore: c.notBefore, notAfter: c.notAfter, revoked: c.revoked !== undefined, ...(c.source ? {acme: true} : {})})
    }
  }
  return state
}

export const daysLeft = (notAfter: string, now: number): number => msLeft({notAfter}, now) / DAY_MS

/**
 * A check per live certificate (`cert:NAME`) and the CA (`cert:ca`): warn under expiryWarnDays
 * left, fail under expiryFailDays or expired (both capped at a share of a short-lived
 * certificate's lifetime: src/lib/certs/expiry.ts). The CRL (`cert:crl`) warns past half its life
 * and fails in its last day, since clients that check it refuse every certificate once it ran out.
 */
export function certificateChecks(state: CertificateState, now = Date.now()): HealthCheck[] {
  const checks: HealthCheck[] = []
  const describe = (notAfter: string, left: number) => (left < 0 ? `expired at ${notAfter}` : `valid until ${notAfter} (${Math.floor(left)} days left)`)
  if (state.ca) {
    const expiry = expiryStatus(state.ca, now)
    // An unfinished rotation still trusts the old CA: a warning until someone finishes it.
    const status = state.previousCa && expiry === 'ok' ? 'warn' : expiry
    const rotating = state.previousCa ? `; a rotation is under way, the CA it replaces (sha256 ${state.previousCa.fingerprint}) is still trusted` : ''
    checks.push({
      name: 'cert:ca',
      status,
      observed: `the cluster CA ${describe(state.ca.notAfter, daysLeft(state.ca.notAfter, now))}${rotating}`,
      ...(status === 'ok' ? {} : {next: commandLine(state.previousCa ? ['cert', 'ca', 'rotate', '--finish'] : ['cert', 'ca', 'rotate'])}),
    })
  }
  for (const c of state.certificates) {
    if (c.revoked) continue
    const status = expiryStatus(c, now)
    checks.push({
      name: `cert:${c.name}`,
      status,
      observed: `certificate ${c.name} (serial ${c.serial}) ${describe(c.notAfter, daysLeft(c.notAfter, now))}`,
      ...(status === 'ok' ? {} : {next: commandLine(c.acme ? ['cert', 'acme', 'renew', c.name] : ['cert', 'renew', c.name])}),
    })
  }
  if (state.crl) {
    const left = daysLeft(state.crl.nextUpdate, now)
    const status = left < 1 ? 'fail' : left < settings.certs.crlDays / 2 ? 'warn' : 'ok'
    checks.push({
      name: 'cert:crl',
      status,
      observed: `CRL ${state.crl.number} ${left < 0 ? `ran out at ${state.crl.nextUpdate}` : `is valid until ${state.crl.nextUpdate} (${Math.floor(left)} days left)`}`,
      ...(status === 'ok' ? {} : {next: commandLine(['cert', 'crl', '--refresh'])}),
    })
  }
  return checks
}
