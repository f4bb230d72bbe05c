import {homedir} from 'node:os'
import {join} from 'node:path'

import {env, settings} from '../settings.js'
import {identity} from './identities.js'

/** Where a node keeps its TLS files (settings.certs.nodeDir): what the member config and serve.env point at. */
export const nodeTlsFiles = {
  ca: join(settings.certs.nodeDir, 'ca.crt'),
  peerCert: join(settings.certs.nodeDir, 'etcd-peer.crt'),
  peerKey: join(settings.certs.nodeDir, 'etcd-peer.key'),
  serverCert: join(settings.certs.nodeDir, 'etcd-server.crt'),
  serverKey: join(settings.certs.nodeDir, 'etcd-server.key'),
  /** The serve daemon's client identity. */
  clientCert: join(settings.certs.nodeDir, 'serve.crt'),
  clientKey: join(settings.certs.nodeDir, 'serve.key'),
  /** Only on core nodes, which may issue certificates (and continue a bootstrap). */
  secret: join(settings.certs.nodeDir, 'cluster.secret'),
} as const

/** The admin host's directory for one cluster's TLS files and secret (XCLUSTER_PKI_DIR overrides the base). */
export function adminPkiDir(cluster: string): string {
  const base = process.env[env.pkiDir] || join(homedir(), settings.certs.adminDir)
  return join(base, cluster)
}

/** The operator's files on the admin host: the --etcd-ca / --etcd-cert / --etcd-key of every command, and the secret. */
export function adminTlsPaths(cluster: string): {ca: string; cert: string; key: string; secret: string} {
  const dir = adminPkiDir(cluster)
  return {ca: join(dir, 'ca.crt'), cert: join(dir, `${identity.admin}.crt`), key: join(dir, `${identity.admin}.key`), secret: join(dir, 'cluster.secret')}
}
