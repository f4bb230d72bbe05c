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

export interface EtcdMemberOptions {
  /** `new` to form the cluster; `existing` to join one that runs. */
  clusterState?: 'new' | 'existing'
  heartbeatMs?: number
  electionMs?: number
  dataDir?: string
  logLevel?: string
}

/** The etcd members the spec implies: every core node, on its fixed IP. */
export function etcdMembers(spec: ClusterSpec): EtcdMemberPlan[] {
  const core = spec.nodes.filter((n) => n.type === 'core')
  const unaddressed = core.filter((n) => !n.ip).map((n) => n.name)
  if (unaddressed.length > 0) {
    throw preconditionError('ETCD_MEMBER_NO_IP', `Core nodes ${unaddressed.join(', ')} have no fixed IP: an etcd member needs a stable address.`, 'Give every core node an ip: in xcluster.yaml and run config apply.')
  }
  const {clientPort, peerPort} = settings.etcdMember
  return core.map((n) => ({name: n.name, ip: n.ip as string, clientUrl: `http://${n.ip}:${clientPort}`, peerUrl: `http://${n.ip}:${peerPort}`}))
}

/** The client endpoints of every member, comma-separated (XCLUSTER_ETCD / --etcd). */
export const etcdClientEndpoints = (members: EtcdMemberPlan[]): string => members.map((m) => m.clientUrl).join(',')

/** The etcd config file (etcd --config-file) for member `name`. */
export function renderEtcdMemberConfig(spec: ClusterSpec, name: string, options: EtcdMemberOptions = {}): string {
  const members = etcdMembers(spec)
  const member = members.find((m) => m.name === name)
  if (!member) throw preconditionError('ETCD_NOT_A_MEMBER', `Node "${name}" is not a core node: it runs no etcd member.`, `Use one of: ${members.map((m) => m.name).join(', ')}.`)
  const d = settings.etcdMember
  return renderTemplate('node/etcd-member.yml', {
    ...member,
    cluster: spec.cluster,
    dataDir: options.dataDir ?? d.dataDir,
    initialCluster: members.map((m) => `${m.name}=${m.peerUrl}`).join(','),
    clusterState: options.clusterState ?? 'new',
    heartbeatMs: options.heartbeatMs ?? d.heartbeatMs,
    electionMs: options.electionMs ?? d.electionMs,
    logLevel: options.logLevel ?? d.logLevel,
  })
}

/** The systemd unit that runs the member from its config file. */
export function renderEtcdMemberUnit(): string {
  return renderTemplate('node/etcd-member.service', {configFile: settings.etcdMember.configFile, stopTimeoutSeconds: settings.etcdMember.stopTimeoutSeconds})
}
