import {existsSync} from 'node:fs'

import {preconditionError} from '../errors.js'
import {EtcdStore, type EtcdConnection} from '../etcd/store.js'
import {forgetMinted, mintClientFiles} from './cluster-pki.js'
import {identity} from './identities.js'
import {adminTlsPaths, nodeTlsFiles} from './paths.js'
import {readClusterSecret} from './secret.js'
import {loadCa} from './store.js'

/**
 * Runs `fn` as etcd's root, for what RBAC reserves to root (a snapshot, membership): a client
 * certificate minted from the cluster CA for this call alone, under a 0700 directory removed
 * after. The CA's key is sealed in etcd under the cluster secret, which the operator's host and
 * every core node hold; `connection` (the operator's) reads the sealed CA.
 */
export async function withEtcdRoot<T>(connection: EtcdConnection, fn: (root: EtcdConnection) => Promise<T>): Promise<T> {
  const secretPath = [adminTlsPaths(connection.cluster).secret, nodeTlsFiles.secret].find((p) => existsSync(p))
  if (!secretPath) {
    throw preconditionError(
      'ETCD_ROOT_UNAVAILABLE',
      `etcd allows this only to its root user, and this host holds no cluster secret to mint a root certificate with (looked in ${adminTlsPaths(connection.cluster).secret} and ${nodeTlsFiles.secret}).`,
      'Run it on the admin host or a core node, or pass --etcd-cert and --etcd-key of a certificate whose CN is "root", issued by the cluster CA.',
    )
  }
  const operator = new EtcdStore(connection)
  let ca
  try {
    ca = await loadCa(operator, readClusterSecret(secretPath))
  } finally {
    await operator.close()
  }
  const {dir, ...files} = await mintClientFiles(ca, identity.root)
  try {
    return await fn({endpoints: connection.endpoints, cluster: connection.cluster, ...files})
  } finally {
    forgetMinted({dir})
  }
}
