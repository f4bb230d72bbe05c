import {existsSync, readFileSync} from 'node:fs'

import type {BootstrapContext} from '../../bootstrap/context.js'
import {adminClusterKeyPath, nodeClusterKeyPath} from '../../bootstrap/cluster-key.js'
import {certificateInfo, issuedBy, type CertificateAuthority} from '../../certs/authority.js'
import {coreNodeTlsFiles, issueClientCertificate, issueMemberCertificates} from '../../certs/cluster-pki.js'
import {identity} from '../../certs/identities.js'
import {nodeTlsFiles} from '../../certs/paths.js'
import {settings} from '../../settings.js'
import {shellQuote, type SshHost} from '../../ssh/index.js'
import type {Phase} from '../../tasks/phase.js'
import type {NodeHost} from '../context.js'
import {ensureFile} from '../ensure-file.js'
import {provisionedHosts} from './hosts.js'

/**
 * A core node's credentials: the cluster CA, its etcd member's peer and server certificates, its
 * serve daemon's client certificate, the cluster secret (core nodes may issue certificates) and
 * the cluster's SSH key (core nodes reach the others with it). The CA is created on the first
 * run and kept in etcd, sealed. Certificates already on the node are kept while they come from
 * this CA, name the node and its address, and have more than the renewal window left; so a
 * re-run changes nothing. No private key appears in the plan, a log or --json: only paths.
 */
export const pkiPhase: Phase<NodeHost, BootstrapContext> = {
  id: 'pki',
  title: "Cluster CA and the core nodes' certificates, secret and SSH key",
  hosts: provisionedHosts,
  async run(ctx, host) {
    const ca = await ctx.ca(ctx.role === 'admin')
    const ssh = await ctx.ssh(host)
    const ip = host.ip as string
    if (!(await certificatesValid(ssh, ca, host.name, ip))) {
      const member = await issueMemberCertificates(ca, {name: host.name, ip})
      const serve = await issueClientCertificate(ca, identity.serve(host.name))
      await ctx.wet(host, `install the cluster CA and ${host.name}'s etcd peer, server and serve certificates in ${settings.certs.nodeDir}`, async () => {
        await ssh.run(`install -d -m 0700 ${shellQuote(settings.certs.nodeDir)}`, {sudo: true})
        for (const file of coreNodeTlsFiles(ca.certPem, member, serve)) await ssh.upload(file.read(), file.path, {mode: file.mode})
      })
    }
    const secret = ctx.secret(ctx.role === 'admin')
    await ensureFile(ctx, host, ssh, {path: nodeTlsFiles.secret, content: `${secret.exportBytes().toString('base64url')}\n`, mode: 0o600})
    const keyFile = ctx.role === 'admin' ? adminClusterKeyPath(ctx.bootstrap.cluster) : nodeClusterKeyPath
    if (existsSync(keyFile)) {
      await ensureFile(ctx, host, ssh, {path: nodeClusterKeyPath, content: readFileSync(keyFile, 'utf8'), mode: 0o600})
    } else {
      // A dry run before the key exists: it would be generated, then installed.
      ctx.plan.set(host.name, [...(ctx.plan.get(host.name) ?? []), `install the cluster SSH key at ${nodeClusterKeyPath}`])
    }
  },
}

/** Whether the node's certificates are this CA's, for this node and address, and not due for renewal. */
async function certificatesValid(ssh: SshHost, ca: CertificateAuthority, name: string, ip: string): Promise<boolean> {
  const f = nodeTlsFiles
  const listing = await ssh.exec(
    `cat ${[f.ca, f.peerCert, f.serverCert, f.clientCert].map(shellQuote).join(' ')} && test -s ${shellQuote(f.peerKey)} -a -s ${shellQuote(f.serverKey)} -a -s ${shellQuote(f.clientKey)}`,
    {sudo: true},
  )
  if (listing.code !== 0) return false
  const pems = listing.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? []
  if (pems.length !== 4) return false
  const [caPem, peer, server, client] = pems as [string, string, string, string]
  if (certificateInfo(caPem).fingerprint !== certificateInfo(ca.certPem).fingerprint) return false
  const renewBy = Date.now() + settings.certs.renewBeforeDays * 86_400_000
  for (const [pem, cn, sans] of [
    [peer, identity.etcdPeer, [name, ip]],
    [server, identity.etcdServer(name), [name, ip]],
    [client, identity.serve(name), []],
  ] as const) {
    const info = certificateInfo(pem)
    if (info.commonName !== cn || !sans.every((s) => info.sans.includes(s)) || Date.parse(info.notAfter) < renewBy) return false
    if (!(await issuedBy(ca, pem))) return false
  }
  return true
}
