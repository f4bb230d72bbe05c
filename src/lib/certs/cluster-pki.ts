import {mkdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {usageError} from '../errors.js'
import {settings} from '../settings.js'
import {issueCertificate, trustBundle, type CertificateAuthority, type IssuedCertificate} from './authority.js'
import {identity, MEMBER_CN_PREFIX} from './identities.js'
import {adminTlsPaths, nodeTlsFiles} from './paths.js'
import {writePrivateFile} from './secret.js'

export interface MemberCertificates {
  /** Peer links (serverAuth + clientAuth): SANs are the member's name and IP. */
  peer: IssuedCertificate
  /** The client port (serverAuth): SANs are the member's name and IP. */
  server: IssuedCertificate
}

/** The two certificates an etcd member needs, for its name and address. */
export async function issueMemberCertificates(ca: CertificateAuthority, member: {name: string; ip: string}, days?: number): Promise<MemberCertificates> {
  const sans = [member.name, member.ip]
  const [peer, server] = await Promise.all([
    issueCertificate(ca, {commonName: identity.etcdPeer, sans, profile: 'peer', ...(days ? {days} : {})}),
    issueCertificate(ca, {commonName: identity.etcdServer(member.name), sans, profile: 'server', ...(days ? {days} : {})}),
  ])
  return {peer, server}
}

/** A client certificate for one identity (the operator, a serve daemon, root: short-lived by default). */
export async function issueClientCertificate(ca: CertificateAuthority, commonName: string, days?: number): Promise<IssuedCertificate> {
  if (commonName.startsWith(MEMBER_CN_PREFIX)) throw usageError(`"${commonName}" is reserved for etcd member certificates.`, `Choose a client name that does not start with ${MEMBER_CN_PREFIX}.`)
  const validity = days ?? (commonName === identity.root ? settings.certs.rootClientDays : undefined)
  return issueCertificate(ca, {commonName, profile: 'client', ...(validity ? {days: validity} : {})})
}

/**
 * One file to put on a host. `read()` gives the content when it is written; the object itself
 * serializes without it, so a plan of files can be shown (or returned under --json) safely.
 */
export interface TlsFile {
  path: string
  mode: number
  private: boolean
  read(): string
}

const certFile = (path: string, pem: string): TlsFile => ({path, mode: 0o644, private: false, read: () => pem})
const keyFile = (path: string, cert: IssuedCertificate): TlsFile => ({path, mode: 0o600, private: true, read: () => cert.key.exportPem()})

/** A core node's files: the CA, its member's peer and server pairs, and its serve identity. */
export function coreNodeTlsFiles(caPem: string, member: MemberCertificates, serve: IssuedCertificate): TlsFile[] {
  const f = nodeTlsFiles
  return [
    certFile(f.ca, caPem),
    certFile(f.peerCert, member.peer.certPem),
    keyFile(f.peerKey, member.peer),
    certFile(f.serverCert, member.server.certPem),
    keyFile(f.serverKey, member.server),
    certFile(f.clientCert, serve.certPem),
    keyFile(f.clientKey, serve),
  ]
}

/** Writes the operator's CA, certificate and key on the admin host (0600 each; directory 0700). */
export function writeAdminCredentials(cluster: string, caPem: string, admin: IssuedCertificate): {ca: string; cert: string; key: string} {
  const paths = adminTlsPaths(cluster)
  writePrivateFile(paths.key, admin.key.exportPem())
  writePrivateFile(paths.cert, admin.certPem)
  writePrivateFile(paths.ca, caPem)
  return {ca: paths.ca, cert: paths.cert, key: paths.key}
}

/** Client credentials minted for one process's use, in a private directory it removes after. */
export interface MintedFiles {
  ca: string
  cert: string
  key: string
  dir: string
}

/**
 * Mints a short-lived client certificate (settings.certs.rootClientDays) for `commonName` and
 * writes it with the CA certificate under a 0700 directory of this process: for a run that needs
 * more than its own identity (bootstrap's root and admin steps, the auto-provisioner). The caller
 * removes `dir` when done (forgetMinted).
 */
export async function mintClientFiles(ca: CertificateAuthority, commonName: string): Promise<MintedFiles> {
  const issued = await issueClientCertificate(ca, commonName, settings.certs.rootClientDays)
  const dir = join(process.env.XDG_RUNTIME_DIR || tmpdir(), settings.bootstrap.mintedDirName, `${process.pid}-${commonName}`)
  mkdirSync(dir, {recursive: true, mode: 0o700})
  const files = {ca: join(dir, 'ca.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key'), dir}
  writePrivateFile(files.ca, trustBundle(ca))
  writePrivateFile(files.cert, issued.certPem)
  writePrivateFile(files.key, issued.key.exportPem())
  return files
}

export function forgetMinted(files: Pick<MintedFiles, 'dir'>): void {
  rmSync(files.dir, {recursive: true, force: true})
}
