import {nodeTlsFiles} from '../certs/paths.js'
import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'

export interface ServeEnv {
  /** etcd client endpoints, comma-separated. */
  etcd: string
  cluster: string
  /** Services to campaign for (`--elect`). */
  elect: string[]
  /** Extra serve flags, e.g. ['--dhcp', '--interface', 'eth0']. */
  extraArgs?: string[]
  /**
   * The etcd client files (CA, the node's serve certificate and key); `true` for where
   * provisioning puts them (src/lib/certs/paths.ts). Omitted for a plain-HTTP etcd.
   */
  tls?: {ca: string; cert: string; key: string} | true
}

/** The systemd unit that runs `xcluster serve` on a node (its settings come from the env file). */
export function renderServeUnit(bin: string = settings.serveUnit.bin): string {
  const u = settings.serveUnit
  return renderTemplate('node/xcluster-serve.service', {bin, envFile: u.envFile, stopTimeoutSeconds: u.stopTimeoutSeconds, restartSeconds: u.restartSeconds})
}

/** The serve unit's EnvironmentFile. */
export function renderServeEnv(e: ServeEnv): string {
  const args = [...e.elect.flatMap((s) => ['--elect', s]), ...(e.extraArgs ?? [])]
  const tls = e.tls === true ? {ca: nodeTlsFiles.ca, cert: nodeTlsFiles.clientCert, key: nodeTlsFiles.clientKey} : e.tls
  return renderTemplate('node/serve.env', {etcd: e.etcd, cluster: e.cluster, serveArgs: args.join(' '), tls: tls ?? false})
}
