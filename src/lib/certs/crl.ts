/**
 * The cluster CA's certificate revocation list (RFC 5280 §5): every revoked serial, signed by the
 * CA, with a CRL number that only grows, so a client holding a newer list never takes an older one.
 */
import {usageError} from '../errors.js'
import {settings} from '../settings.js'
import {caKeyId, caSigningKey, SIGNING_ALGORITHM, type CertificateAuthority} from './authority.js'
import {x509} from './x509.js'

/** Why a certificate was revoked: the RFC 5280 reason codes an operator has use for. */
export const REVOCATION_REASONS = {
  unspecified: x509.X509CrlReason.unspecified,
  'key-compromise': x509.X509CrlReason.keyCompromise,
  'affiliation-changed': x509.X509CrlReason.affiliationChanged,
  superseded: x509.X509CrlReason.superseded,
  'cessation-of-operation': x509.X509CrlReason.cessationOfOperation,
} as const

export type RevocationReason = keyof typeof REVOCATION_REASONS

export interface Revocation {
  serial: string
  /** The certificate's name when it was revoked (for people; the serial is what counts). */
  name: string
  revokedAt: string
  reason: RevocationReason
}

export interface SignedCrl {
  number: number
  thisUpdate: string
  nextUpdate: string
  pem: string
}

const CRL_NUMBER_OID = '2.5.29.20'

export function checkReason(reason: string): RevocationReason {
  if (!(reason in REVOCATION_REASONS)) throw usageError(`Unknown revocation reason "${reason}".`, `Use one of: ${Object.keys(REVOCATION_REASONS).join(', ')}.`)
  return reason as RevocationReason
}

/** Signs a CRL listing `revocations`, valid for settings.certs.crlDays from `now`. */
export async function signCrl(ca: CertificateAuthority, revocations: readonly Revocation[], number: number, now = new Date()): Promise<SignedCrl> {
  const thisUpdate = new Date(Math.floor((now.getTime() - settings.certs.backdateMs) / 1000) * 1000)
  const nextUpdate = new Date(Math.floor((now.getTime() + settings.certs.crlDays * 86_400_000) / 1000) * 1000)
  const crl = await x509.X509CrlGenerator.create({
    // The CA certificate's subject as it is encoded there: clients match the CRL's issuer byte for byte.
    issuer: new x509.X509Certificate(ca.certPem).subjectName,
    thisUpdate,
    nextUpdate,
    signingAlgorithm: SIGNING_ALGORITHM,
    signingKey: await caSigningKey(ca),
    entries: revocations.map((r) => ({serialNumber: r.serial, revocationDate: new Date(r.revokedAt), reason: REVOCATION_REASONS[r.reason]})),
    extensions: [new x509.AuthorityKeyIdentifierExtension(caKeyId(ca)), new x509.Extension(CRL_NUMBER_OID, false, derInteger(number))],
  })
  // RFC 7468 labels a CRL "X509 CRL"; the library writes "CRL", which OpenSSL and nginx do not read.
  const pem = `${crl.toString('pem').replaceAll('\r\n', '\n').replaceAll('-----BEGIN CRL-----', '-----BEGIN X509 CRL-----').replaceAll('-----END CRL-----', '-----END X509 CRL-----').trimEnd()}\n`
  return {number, thisUpdate: thisUpdate.toISOString(), nextUpdate: nextUpdate.toISOString(), pem}
}

/** Whether the CA's key signed this CRL (after a CA rotation the stored one may be the old CA's). */
export async function crlSignedBy(crlPem: string, ca: Pick<CertificateAuthority, 'certPem'>): Promise<boolean> {
  const crl = new x509.X509Crl(crlPem.replaceAll('X509 CRL-----', 'CRL-----'))
  return crl.verify({publicKey: new x509.X509Certificate(ca.certPem).publicKey})
}

/** A non-negative integer as DER (the CRL number's value). */
function derInteger(value: number): Uint8Array<ArrayBuffer> {
  let hex = value.toString(16)
  if (hex.length % 2) hex = `0${hex}`
  let bytes = Buffer.from(hex, 'hex')
  if ((bytes[0] as number) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes])
  return new Uint8Array([0x02, bytes.length, ...bytes])
}
