/**
 * A core node's TLS files (src/lib/certs/paths.ts nodeTlsFiles) as the cluster CA wants them: the
 * trust file holding exactly the CAs trusted now, and the etcd member's peer and server pairs and
 * the serve identity issued by the current CA. Shared by bootstrap's pki phase and `cert ca rotate`.
 */
import {certificateInfo, issuedBy, pemCertificates, trustBundle, type CertificateAuthority} from '../certs/authority.js'
import {coreNodeTlsFiles, issueClientCertificate, issueMemberCertificates} from '../certs/cluster-pki.js'
import {identity} from '../certs/identities.js'
import {nodeTlsFiles} from '../certs/paths.js'
import {settings} from '../settings.js'
import {shellQuote, type SshHost} from '../ssh/index.js'

/** What a node's files lack: nothing, only the trust file, or its certificates (which a new trust file goes with). */
export type NodeTlsState = 'current' | 'trust' | 'certificates'

/** Reads the node's files once and says what differs from `ca` (its bundle, its signatures, the node's name and address). */
export async function nodeTlsState(ssh: SshHost, ca: CertificateAuthority, name: string, ip: string): Promise<NodeTlsState> {
  const f = nodeTlsFiles
  const leafFiles = [f.peerCert, f.serverCert, f.clientCert]
  const listing = await ssh.exec(
    `cat ${leafFiles.map(shellQuote).join(' ')} && test -s ${shellQuote(f.peerKey)} -a -s ${shellQuote(f.serverKey)} -a -s ${shellQuote(f.clientKey)} && echo '#trust' && cat ${shellQuote(f.ca)}`,
    {sudo: true},
  )
  if (listing.code !== 0) return 'certificates'
  const [leaves = '', trust = ''] = listing.stdout.split('#trust\n')
  const pems = pemCertificates(leaves)
  if (pems.length !== 3) return 'certificates'
  const renewBy = Date.now() + settings.certs.renewBeforeDays * 86_400_000
  const wanted = [
    [identity.etcdPeer, [name, ip]],
    [identity.etcdServer(name), [name, ip]],
    [identity.serve(name), []],
  ] as const
  for (const [i, [cn, sans]] of wanted.entries()) {
    const pem = pems[i] as string
    const info = certificateInfo(pem)
    if (info.commonName !== cn || !sans.every((s) => info.sans.includes(s)) || Date.parse(info.notAfter) < renewBy) return 'certificates'
    if (!(await issuedBy(ca, pem))) return 'certificates'
  }
  return trust === trustBundle(ca) ? 'current' : 'trust'
}

/**
 * Issues the node's member and serve certificates from `ca` and writes them (0600 keys, 0700
 * directory), with the trust file unless `leaveTrust`: a trust file rewritten unchanged would
 * still look newer than the processes that read it (src/lib/phases/unit-age.ts).
 */
export async function installNodeTls(ssh: SshHost, ca: CertificateAuthority, name: string, ip: string, options: {leaveTrust?: boolean} = {}): Promise<void> {
  const member = await issueMemberCertificates(ca, {name, ip})
  const serve = await issueClientCertificate(ca, identity.serve(name))
  await ssh.run(`install -d -m 0700 ${shellQuote(settings.certs.nodeDir)}`, {sudo: true})
  for (const file of coreNodeTlsFiles(trustBundle(ca), member, serve)) {
    if (options.leaveTrust && file.path === nodeTlsFiles.ca) continue
    await ssh.upload(file.read(), file.path, {mode: file.mode})
  }
}

/** Writes the trust file alone: the CAs trusted now, the node's certificates unchanged. */
export async function installNodeTrust(ssh: SshHost, ca: CertificateAuthority): Promise<void> {
  await ssh.upload(trustBundle(ca), nodeTlsFiles.ca, {mode: 0o644})
}
