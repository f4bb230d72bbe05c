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

/**
 * The longest a SIGTERMed serve may take to exit: a start in flight (its command and the RBD
 * lock) runs to its end, then the stop (command and unlock), then the bounded etcd cleanup,
 * then the exit grace. Campaigns stop in parallel, so this is one campaign's worth.
 */
export function serveStopBudgetMs(): number {
  const e = settings.election
  const lockCall = settings.ceph.commandTimeoutMs
  return e.startTimeoutMs + lockCall + e.stopTimeoutMs + lockCall + 2 * e.shutdownCleanupMs + e.callTimeoutMs + settings.serveUnit.exitGraceMs
}

/** The systemd unit that runs `xcluster serve` on a node (its settings come from the env file). */
export function renderServeUnit(bin: string = settings.serveUnit.bin, libexec: string = settings.serveUnit.libexecDir): string {
  const u = settings.serveUnit
  const stopTimeoutSeconds = Math.ceil(serveStopBudgetMs() / 1000) + u.stopSlackSeconds
  return renderTemplate('node/xcluster-serve.service', {bin, libexec, envFile: u.envFile, runDir: settings.election.runDir, stopTimeoutSeconds, restartSeconds: u.restartSeconds})
}

/** The serve unit's EnvironmentFile. */
export function renderServeEnv(e: ServeEnv): string {
  const args = [...e.elect.flatMap((s) => ['--elect', s]), ...(e.extraArgs ?? [])]
  const tls = e.tls === true ? {ca: nodeTlsFiles.ca, cert: nodeTlsFiles.clientCert, key: nodeTlsFiles.clientKey} : e.tls
  return renderTemplate('node/serve.env', {etcd: e.etcd, cluster: e.cluster, serveArgs: args.join(' '), tls: tls ?? false})
}
