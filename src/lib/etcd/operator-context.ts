import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'

import {adminPkiDir} from '../certs/paths.js'
import {writePrivateFile} from '../certs/secret.js'
import type {EtcdConnection} from './store.js'

/**
 * How the operator's commands reach a bootstrapped cluster: its etcd endpoints and the TLS files
 * (the cluster CA, the operator's certificate and key) bootstrap wrote beside the cluster secret
 * on the admin host. Like a kubeconfig: written once by `xcluster bootstrap`, then every command
 * without --etcd uses it. Holds paths only, never key material.
 */
export interface OperatorContext {
  cluster: string
  endpoints: string[]
  ca: string
  cert: string
  key: string
  /** When bootstrap wrote it. */
  writtenAt: string
}

export const operatorContextPath = (cluster: string): string => join(adminPkiDir(cluster), 'context.json')

/** The context of `cluster` on this admin host, when it has been bootstrapped from here. */
export function readOperatorContext(cluster: string): OperatorContext | undefined {
  const path = operatorContextPath(cluster)
  if (!existsSync(path)) return undefined
  try {
    const context = JSON.parse(readFileSync(path, 'utf8')) as OperatorContext
    return context.cluster === cluster && context.endpoints.length > 0 ? context : undefined
  } catch {
    return undefined
  }
}

export function writeOperatorContext(context: OperatorContext): string {
  const path = operatorContextPath(context.cluster)
  writePrivateFile(path, `${JSON.stringify(context, null, 2)}\n`)
  return path
}

/** The connection a context describes. */
export const contextConnection = (context: OperatorContext): EtcdConnection => ({
  endpoints: context.endpoints,
  cluster: context.cluster,
  ca: context.ca,
  cert: context.cert,
  key: context.key,
})
