import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {createCa, type CertificateAuthority} from '../../src/lib/certs/authority.js'
import {issueClientCertificate, issueMemberCertificates} from '../../src/lib/certs/cluster-pki.js'
import type {EtcdMemberTls} from '../../src/lib/etcd/cluster-config.js'

/** A client identity's files, as --etcd-cert / --etcd-key take them. */
export interface ClientFiles {
  commonName: string
  certFile: string
  keyFile: string
}

/** A cluster CA made by src/lib/certs, with its certificates written as files for etcd and clients. */
export interface TestPki {
  dir: string
  ca: CertificateAuthority
  caFile: string
  /** A client certificate for `commonName` (cached per name). */
  client(commonName: string): Promise<ClientFiles>
  /** An etcd member's peer and server certificates for its name and IP. */
  member(member: {name: string; ip: string}): Promise<EtcdMemberTls>
}

export async function createTestPki(dir: string, cluster = 'xcluster'): Promise<TestPki> {
  mkdirSync(dir, {recursive: true, mode: 0o700})
  const ca = await createCa({cluster})
  const caFile = join(dir, 'ca.crt')
  writeFileSync(caFile, ca.certPem)
  const clients = new Map<string, ClientFiles>()
  return {
    dir,
    ca,
    caFile,
    async client(commonName) {
      const cached = clients.get(commonName)
      if (cached) return cached
      const issued = await issueClientCertificate(ca, commonName, 1)
      const files = {commonName, certFile: join(dir, `${commonName}.crt`), keyFile: join(dir, `${commonName}.key`)}
      writeFileSync(files.certFile, issued.certPem)
      writeFileSync(files.keyFile, issued.key.exportPem(), {mode: 0o600})
      clients.set(commonName, files)
      return files
    },
    async member(member) {
      const certs = await issueMemberCertificates(ca, member, 1)
      const base = join(dir, `member-${member.name}`)
      const tls: EtcdMemberTls = {caFile, serverCertFile: `${base}-server.crt`, serverKeyFile: `${base}-server.key`, peerCertFile: `${base}-peer.crt`, peerKeyFile: `${base}-peer.key`}
      writeFileSync(tls.serverCertFile, certs.server.certPem)
      writeFileSync(tls.serverKeyFile, certs.server.key.exportPem(), {mode: 0o600})
      writeFileSync(tls.peerCertFile, certs.peer.certPem)
      writeFileSync(tls.peerKeyFile, certs.peer.key.exportPem(), {mode: 0o600})
      return tls
    },
  }
}
