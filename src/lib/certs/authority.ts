import {createPrivateKey, randomBytes, X509Certificate as NodeCertificate} from 'node:crypto'
import {isIP} from 'node:net'

import {preconditionError, usageError} from '../errors.js'
import {settings} from '../settings.js'
import {PrivateKey} from './private-key.js'
import {subtle, x509} from './x509.js'

/**
 * What a certificate is for. `server`: a TLS server (serverAuth); `client`: a TLS client such as
 * the operator or a serve daemon (clientAuth); `peer`: both ends of etcd's peer links, which
 * dial and accept with one certificate (serverAuth and clientAuth).
 */
export type CertificateProfile = 'server' | 'client' | 'peer'

export const PROFILES: readonly CertificateProfile[] = ['server', 'client', 'peer']

/** The cluster CA: its certificate and (in memory only) its private key. */
export interface CertificateAuthority {
  cluster: string
  certPem: string
  key: PrivateKey
  /**
   * Every CA certificate the cluster trusts now, this one first (PEM): during `cert ca rotate` the
   * retiring CA too. What a trust file gets; absent means this CA alone.
   */
  trustPem?: string
}

/** What a trust file (ca.crt) holds for `ca`: every CA the cluster trusts now. */
export const trustBundle = (ca: CertificateAuthority): string => ca.trustPem ?? ca.certPem

export interface CreateCaOptions {
  cluster: string
  days?: number
  now?: Date
}

export interface CertificateRequest {
  commonName: string
  /** DNS names and IP addresses (v4 or v6), told apart by their form. */
  sans?: string[]
  profile: CertificateProfile
  /** Validity; may be fractional (1/24 is an hour). */
  days?: number
  now?: Date
}

/** The public facts of a certificate: what `cert list`/`show` and --json may show. */
export interface CertificateInfo {
  subject: string
  commonName: string
  issuer: string
  serial: string
  sans: string[]
  notBefore: string
  notAfter: string
  /** SHA-256 of the DER, colon-separated hex (as `openssl x509 -fingerprint -sha256`). */
  fingerprint: string
  isCa: boolean
  /** Derived from the extended key usages; undefined for a CA or an unknown mix. */
  profile?: CertificateProfile
}

export interface IssuedCertificate extends CertificateInfo {
  certPem: string
  key: PrivateKey
}

const ECDSA = {name: 'ECDSA', namedCurve: settings.certs.curve, hash: settings.certs.hash}
const SIGNING = {name: 'ECDSA', hash: settings.certs.hash}
const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i

const EKU: Record<CertificateProfile, string[]> = {
  server: [x509.ExtendedKeyUsage.serverAuth],
  client: [x509.ExtendedKeyUsage.clientAuth],
  peer: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
}

/** A new self-signed CA for `cluster` (ECDSA P-256, path length 0: it signs only leaf certificates). */
export async function createCa(options: CreateCaOptions): Promise<CertificateAuthority> {
  const days = checkDays(options.days ?? settings.certs.caDays)
  const {notBefore, notAfter} = validity(options.now ?? new Date(), days)
  const keys = (await subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as CryptoKeyPair
  const ski = await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{CN: [caCommonName(options.cluster)]}],
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      ski,
      new x509.AuthorityKeyIdentifierExtension(ski.keyId),
    ],
  })
  return {cluster: options.cluster, certPem: pem(cert), key: await exportKey(keys.privateKey)}
}

export const caCommonName = (cluster: string): string => `xcluster CA ${cluster}`

/**
 * A CA from its PEM files (or from etcd): refuses a certificate that is not a CA, or a key that
 * is not the certificate's.
 */
export function caFromPem(cluster: string, certPem: string, keyPem: string): CertificateAuthority {
  const cert = new NodeCertificate(certPem)
  if (!cert.ca) throw preconditionError('CA_NOT_A_CA', `The certificate "${cert.subject}" is not a CA certificate.`, 'Give the cluster CA certificate (basic constraints CA:TRUE).')
  let key: PrivateKey
  try {
    key = new PrivateKey(keyPem)
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('mismatch')
  } catch {
    throw preconditionError('CA_KEY_MISMATCH', `The CA private key does not belong to the CA certificate "${cert.subject}".`, 'Use the key that was created with this CA certificate.')
  }
  return {cluster, certPem, key}
}

/**
 * Issues a certificate signed by `ca` with a fresh ECDSA P-256 key. Key usage is
 * digitalSignature (all ECDHE needs); extended key usages follow `profile`.
 */
export async function issueCertificate(ca: CertificateAuthority, request: CertificateRequest): Promise<IssuedCertificate> {
  const commonName = checkCommonName(request.commonName)
  if (!PROFILES.includes(request.profile)) throw usageError(`Unknown certificate profile "${request.profile}".`, `Use one of: ${PROFILES.join(', ')}.`)
  const sans = checkSans(request.sans ?? [])
  if (request.profile !== 'client' && sans.length === 0) {
    throw usageError(`A ${request.profile} certificate needs at least one SAN (the names and addresses clients dial).`, `Add --san with the host's name and IP, e.g. --san s1 --san 10.0.0.2.`)
  }
  const days = checkDays(request.days ?? settings.certs.leafDays)
  const {notBefore, notAfter} = validity(request.now ?? new Date(), days)
  const caCert = new x509.X509Certificate(ca.certPem)
  if (notAfter > caCert.notAfter) {
    throw preconditionError('CERT_OUTLIVES_CA', `A certificate for ${days} days would end after the CA does (${caCert.notAfter.toISOString()}).`, 'Issue it for fewer days, or rotate the CA first.')
  }
  const caSki = caCert.getExtension(x509.SubjectKeyIdentifierExtension)
  if (!caSki) throw preconditionError('CA_NO_SKI', 'The CA certificate has no subject key identifier.', 'Use a CA created by xcluster.')
  const signingKey = await caSigningKey(ca)
  const keys = (await subtle.generateKey(ECDSA, true, ['sign', 'verify'])) as CryptoKeyPair
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(EKU[request.profile], false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    new x509.AuthorityKeyIdentifierExtension(caSki.keyId),
  ]
  if (sans.length > 0)
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        sans.map((value) => ({type: isIP(value) ? ('ip' as const) : ('dns' as const), value})),
        false,
      ),
    )
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{CN: [commonName]}],
    issuer: caCert.subjectName,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey,
    extensions,
  })
  const certPem = pem(cert)
  return {...certificateInfo(certPem), certPem, key: await exportKey(keys.privateKey)}
}

const CERTIFICATE_PEM = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g

/** Each PEM certificate in a text (a bundle, several files read at once), in order. */
export const pemCertificates = (text: string): string[] => text.match(CERTIFICATE_PEM) ?? []

/** The public facts of a PEM certificate. */
export function certificateInfo(certPem: string): CertificateInfo {
  const node = new NodeCertificate(certPem)
  const cert = new x509.X509Certificate(certPem)
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages.map(String) ?? []
  const profile = PROFILES.find((p) => EKU[p].length === eku.length && EKU[p].every((u) => eku.includes(u)))
  return {
    subject: cert.subject,
    commonName: cert.subjectName.getField('CN')[0] ?? '',
    issuer: cert.issuer,
    serial: cert.serialNumber.toLowerCase(),
    sans: san ? san.names.items.map((n) => n.value) : [],
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    fingerprint: node.fingerprint256,
    isCa: node.ca,
    ...(node.ca || !profile ? {} : {profile}),
  }
}

/** Whether `certPem` was signed by the CA's key (and names it as issuer). */
export async function issuedBy(ca: Pick<CertificateAuthority, 'certPem'>, certPem: string): Promise<boolean> {
  const caCert = new x509.X509Certificate(ca.certPem)
  const cert = new x509.X509Certificate(certPem)
  return cert.issuer === caCert.subject && (await cert.verify({publicKey: caCert.publicKey, signatureOnly: true}))
}

/** The CA's key as WebCrypto signs with it (certificates, CRLs). */
export function caSigningKey(ca: CertificateAuthority): Promise<CryptoKey> {
  return subtle.importKey('pkcs8', pkcs8Der(ca.key), ECDSA, false, ['sign'])
}

/** The CA's subject key identifier, which every certificate and CRL it signs names as its authority key. */
export function caKeyId(ca: CertificateAuthority): string {
  const ski = new x509.X509Certificate(ca.certPem).getExtension(x509.SubjectKeyIdentifierExtension)
  if (!ski) throw preconditionError('CA_NO_SKI', 'The CA certificate has no subject key identifier.', 'Use a CA created by xcluster.')
  return ski.keyId
}

export const SIGNING_ALGORITHM = SIGNING

function pem(cert: x509.X509Certificate): string {
  return `${cert.toString('pem').replaceAll('\r\n', '\n').trimEnd()}\n`
}

async function exportKey(key: CryptoKey): Promise<PrivateKey> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key))
  return new PrivateKey(createPrivateKey({key: der, format: 'der', type: 'pkcs8'}).export({type: 'pkcs8', format: 'pem'}) as string)
}

function pkcs8Der(key: PrivateKey): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createPrivateKey(key.exportPem()).export({type: 'pkcs8', format: 'der'}))
}

/** Random, positive, without a leading zero byte (so it keeps its full length in DER). */
function serialNumber(): string {
  const bytes = randomBytes(settings.certs.serialBytes)
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40
  return bytes.toString('hex')
}

function validity(now: Date, days: number): {notBefore: Date; notAfter: Date} {
  // Whole seconds: X.509 times have no fractions, and a rounded-up notBefore would start late.
  const start = Math.floor((now.getTime() - settings.certs.backdateMs) / 1000) * 1000
  return {notBefore: new Date(start), notAfter: new Date(Math.floor((now.getTime() + days * 86_400_000) / 1000) * 1000)}
}

function checkDays(days: number): number {
  if (!Number.isFinite(days) || days <= 0) throw usageError(`Validity must be a positive number of days, not ${days}.`, 'Give --days N with N > 0.')
  return days
}

function checkCommonName(name: string): string {
  const trimmed = name.trim()
  if (trimmed === '' || trimmed.length > 64 || [...trimmed].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) {
    throw usageError(`Invalid common name ${JSON.stringify(name)}: it must be 1-64 printable characters.`, 'Give a short name such as xcluster-admin or the host name.')
  }
  return trimmed
}

function checkSans(sans: string[]): string[] {
  const out: string[] = []
  for (const raw of sans) {
    const san = raw.trim()
    if (!isIP(san) && !(DNS_NAME.test(san) && san.length <= 253)) {
      throw usageError(`Invalid subject alternative name ${JSON.stringify(raw)}: not an IP address or a DNS name.`, 'Give DNS names (s1, s1.lan) and IP addresses (10.0.0.2, fd00::2).')
    }
    const canonical = isIP(san) ? san : san.toLowerCase()
    if (!out.includes(canonical)) out.push(canonical)
  }
  return out
}
