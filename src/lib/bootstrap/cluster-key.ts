import {execFile} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {promisify} from 'node:util'

import {adminPkiDir} from '../certs/paths.js'
import {settings} from '../settings.js'

/**
 * The cluster's own SSH identity (cephadm's model): the seed and every core node after it reach
 * the other nodes with it, so a bootstrap goes on without the operator's laptop and later node
 * actions run from any core node. Generated once on the admin host beside the cluster secret; its
 * public key is authorized on the nodes, its private key lives on the core nodes only (0600).
 */
export interface ClusterSshKey {
  privateKeyPath: string
  publicKey: string
}

export const adminClusterKeyPath = (cluster: string): string => join(adminPkiDir(cluster), 'ssh', 'id_ed25519')

const making = new Map<string, Promise<ClusterSshKey | undefined>>()

/**
 * The admin host's copy, created when missing (unless `dryRun`: then a key that would be created
 * is described only). Phases on several hosts ask at once: one generation serves them all.
 */
export function ensureAdminClusterKey(cluster: string, dryRun: boolean): Promise<ClusterSshKey | undefined> {
  const key = `${cluster}|${dryRun}`
  if (!making.has(key)) making.set(key, makeAdminClusterKey(cluster, dryRun))
  return making.get(key) as Promise<ClusterSshKey | undefined>
}

async function makeAdminClusterKey(cluster: string, dryRun: boolean): Promise<ClusterSshKey | undefined> {
  const path = adminClusterKeyPath(cluster)
  if (!existsSync(path)) {
    if (dryRun) return undefined
    mkdirSync(dirname(path), {recursive: true, mode: 0o700})
    await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `xcluster@${cluster}`, '-f', path])
  }
  return {privateKeyPath: path, publicKey: readFileSync(`${path}.pub`, 'utf8').trim()}
}

/** Where a core node keeps it. */
export const nodeClusterKeyPath = settings.bootstrap.nodeClusterKey
