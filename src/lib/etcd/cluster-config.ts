import {identity} from '../certs/identities.js'
import {nodeTlsFiles} from '../certs/paths.js'
import {preconditionError} from '../errors.js'
import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'
import type {ClusterSpec} from '../spec/types.js'

/** One member of the cluster's etcd: a core node with a fixed address. */
export interface EtcdMemberPlan {
  name: string
  ip: string
  clientUrl: string
  peerUrl: string
}

/** A member's TLS files (client port and peer links), all from the cluster CA. */
export interface EtcdMemberTls {
  caFile: string
  serverCertFile: string
  serverKeyFile: string
  peerCertFile: string
  peerKeyFile: string
}

/** Where provisioning puts them on a core node (src/lib/certs/paths.ts). */
export const nodeMemberTls: EtcdMemberTls = {
  caFile: nodeTlsFiles.ca,
  serverCertFile: nodeTlsFiles.serverCert,
  serverKeyFile: nodeTlsFiles.serverKey,
  peerCertFile: nodeTlsFiles.peerCert,
  peerKeyFile: nodeTlsFiles.peerKey,
}

export interface EtcdMemberOptions {
  /**
   * TLS on the client port and the peer links, with client-certificate authentication on both.
   * Without it the member speaks plain HTTP (the lab's admin etcd, before bootstrap).
   */
  tls?: EtcdMemberTls
  /** `new` to form the cluster; `existing` to join one that runs. */
  clusterState?: 'new' | 'existing'
  heartbeatMs?: number
  electionMs?: number
  dataDir?: string
  logLevel?: string
}

/** The etcd members the spec implies: every core node, on its fixed IP (https URLs with `tls`). */
export function etcdMembers(spec: ClusterSpec, options: {tls?: boolean} = {}): EtcdMemberPlan[] {
  const core = spec.nodes.filter((n) => n.type === 'core')
  const unaddressed = core.filter((n) => !n.ip).map((n) => n.name)
  if (unaddressed.length > 0) {
    throw preconditionError(
      'ETCD_MEMBER_NO_IP',
      `Core nodes ${unaddressed.join(', ')} have no fixed IP: an etcd member needs a stable address.`,
      'Give every core node an ip: in xcluster.yaml and run config apply.',
    )
  }
  const {clientPort, peerPort} = settings.etcdMember
  const scheme = options.tls ? 'https' : 'http'
  return core.map((n) => ({name: n.name, ip: n.ip as string, clientUrl: `${scheme}://${n.ip}:${clientPort}`, peerUrl: `${scheme}://${n.ip}:${peerPort}`}))
}

/** The client endpoints of every member, comma-separated (XCLUSTER_ETCD / --etcd). */
export const etcdClientEndpoints = (members: EtcdMemberPlan[]): string => members.map((m) => m.clientUrl).join(',')

/** The etcd config file (etcd --config-file) for member `name`. */
export function renderEtcdMemberConfig(spec: ClusterSpec, name: string, options: EtcdMemberOptions = {}): string {
  return renderMemberConfig(spec.cluster, etcdMembers(spec, {tls: options.tls !== undefined}), name, options)
}

/**
 * The same config for members given directly (a test cluster on loopback ports, a member being
 * added): URLs must be https exactly when `options.tls` is given.
 */
export function renderMemberConfig(cluster: string, members: EtcdMemberPlan[], name: string, options: EtcdMemberOptions = {}): string {
  const member = members.find((m) => m.name === name)
  if (!member) throw preconditionError('ETCD_NOT_A_MEMBER', `Node "${name}" is not a core node: it runs no etcd member.`, `Use one of: ${members.map((m) => m.name).join(', ')}.`)
  const scheme = options.tls ? 'https:' : 'http:'
  const wrong = members.flatMap((m) => [m.clientUrl, m.peerUrl]).filter((url) => new URL(url).protocol !== scheme)
  if (wrong.length > 0) throw new Error(`etcd member URLs must use ${scheme}// ${options.tls ? 'with' : 'without'} TLS: ${wrong.join(', ')}`)
  const d = settings.etcdMember
  return renderTemplate('node/etcd-member.yml', {
    ...member,
    cluster,
    dataDir: options.dataDir ?? d.dataDir,
    initialCluster: members.map((m) => `${m.name}=${m.peerUrl}`).join(','),
    clusterState: options.clusterState ?? 'new',
    heartbeatMs: options.heartbeatMs ?? d.heartbeatMs,
    electionMs: options.electionMs ?? d.electionMs,
    logLevel: options.logLevel ?? d.logLevel,
    quotaBackendBytes: d.quotaBackendBytes,
    autoCompactionRetention: d.autoCompactionRetention,
    tls: options.tls ?? false,
    peerCommonName: identity.etcdPeer,
    plain: !options.tls,
  })
}

/** The systemd unit that runs the member from its config file. */
export function renderEtcdMemberUnit(): string {
  return renderTemplate('node/etcd-member.service', {configFile: settings.etcdMember.configFile, stopTimeoutSeconds: settings.etcdMember.stopTimeoutSeconds})
}
