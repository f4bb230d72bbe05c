/** `collectStatus` and `runHealthChecks`: what etcd and (with SSH) the nodes say, as one picture. */
import {homedir} from 'node:os'

import {sampleElections, type CheckResult, type RbdHolders, type VipHolders} from '../election/split-brain.js'
import type {ElectionState} from '../election/state.js'
import {declaredVips} from '../election/vip.js'
import {XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {managementAddress} from '../nodes/address.js'
import {NODE_STATES, type NodeState} from '../nodes/record.js'
import {commandLine, resumeCommand} from '../output/command-line.js'
import {settings} from '../settings.js'
import type {SshTarget} from '../ssh/index.js'
import {currentServices, electionChecks, etcdChecks, nodeChecks, poolChecks, report, sortChecks, worstStatus} from './checks.js'
import {cephCheck, readCeph} from './ceph.js'
import {certificateChecks} from './certs.js'
import {probeEtcd} from './etcd-members.js'
import {poolUsage} from './pools.js'
import {readClusterSnapshot, type ClusterSnapshot} from './snapshot.js'
import {sshChecks} from './ssh-checks.js'
import type {CephReading, ClusterStatus, EtcdStatus, FailedRun, HealthCheck, HealthReport, SplitBrain} from './types.js'

export interface HealthOptions {
  /**
   * Also reach every provisioned node over SSH with its pinned host key (a node without a pin
   * fails; none is accepted) and compare its clock: needs the operator's key.
   */
  ssh?: {
    /** Private key; default the spec's ssh.key. */
    keyPath?: string
    /** Nodes without IPv4 are reached by link-local IPv6 on this interface. */
    lanInterface?: string
    /** sshd's port on every node (default 22). */
    port?: number
  }
  /** VIP and RBD lock holders, for the split-brain check (as `election check` probes them). */
  probes?: {vipHolders?: VipHolders; rbdHolders?: RbdHolders}
  /** The time leases are judged at (ms since the epoch); default now. */
  now?: number
}

/** Nodes xcluster has provisioned (or tried to): they have a pinned host key and should answer. */
const SSH_STATES: readonly NodeState[] = ['provisioning', 'ready', 'draining', 'drained', 'failed']

const expandHome = (path: string): string => (path.startsWith('~/') ? `${homedir()}${path.slice(1)}` : path)

/** How to reach each provisioned node, from the snapshot alone: no read per node. */
export function sshTargets(snapshot: ClusterSnapshot, access: NonNullable<HealthOptions['ssh']>, now = Date.now()): SshTarget[] {
  const spec = snapshot.spec
  if (!spec) return []
  const leased = new Map(snapshot.leases.filter((l) => l.state === 'bound' && Date.parse(l.expiresAt) > now).map((l) => [l.mac, l.ip]))
  return snapshot.nodes
    .filter((n) => SSH_STATES.includes(n.state))
    .map((n) => ({
      name: n.name,
      address: managementAddress({mac: n.mac, ip: n.ip ?? leased.get(n.mac)}, access.lanInterface ?? settings.lanInterface),
      ...(access.port ? {port: access.port} : {}),
      user: spec.ssh.user,
      privateKeyPath: expandHome(access.keyPath ?? spec.ssh.key),
      hostKey: {pinned: snapshot.hostKeys.get(n.name)?.fingerprints ?? [], acceptNewHostKey: false},
    }))
}

interface Assessment {
  etcd: EtcdStatus
  /** Undefined when the cluster's keys could not be read (no quorum). */
  snapshot?: ClusterSnapshot
  /** The split-brain check and the elections it read (absent with the snapshot). */
  elections?: {result: CheckResult; states: ElectionState[]}
  ceph: CephReading
  checks: HealthCheck[]
}

async function assess(store: EtcdStore, options: HealthOptions): Promise<Assessment> {
  const etcd = await probeEtcd(store)
  const checks = etcdChecks(etcd)
  let snapshot: ClusterSnapshot
  try {
    snapshot = await readClusterSnapshot(store, {hostKeys: options.ssh !== undefined})
  } catch (err) {
    if (!(err instanceof XclusterError && err.code === 'ETCD_UNREACHABLE')) throw err
    checks.push({name: 'etcd:read', status: 'fail', observed: `the cluster's keys cannot be read: ${err.message}`, next: err.suggestion})
    return {etcd, ceph: {checked: false, reason: "the cluster's keys cannot be read"}, checks}
  }
  const spec = snapshot.spec
  if (!spec) checks.push({name: 'spec', status: 'warn', observed: `no cluster spec in etcd for cluster "${store.keys.cluster}"`, next: commandLine(['config', 'apply', '-f', settings.specFile])})
  checks.push(...nodeChecks(snapshot.nodes))
  const elections = await sampleElections(store, spec, options.probes ?? {})
  checks.push(...electionChecks(elections.result, undefined, currentServices(spec)))
  if (spec) checks.push(...poolChecks(poolUsage(spec, snapshot.nodes, snapshot.leases, options.now)))
  checks.push(...certificateChecks(snapshot.certificates, options.now))
  const [nodes, ceph] = await Promise.all([options.ssh ? sshChecks(sshTargets(snapshot, options.ssh, options.now)) : [], askCeph(store, snapshot, options)])
  checks.push(...nodes)
  const cephVerdict = cephCheck(ceph)
  if (cephVerdict) checks.push(cephVerdict)
  return {etcd, snapshot, elections, ceph, checks}
}

/** Ceph is asked only of a cluster whose spec declares it, and only over SSH. */
function askCeph(store: EtcdStore, snapshot: ClusterSnapshot, options: HealthOptions): Promise<CephReading> {
  if (!snapshot.spec?.ceph) return Promise.resolve({checked: false, reason: 'the spec has no ceph section'})
  if (!options.ssh) return Promise.resolve({checked: false, reason: 'Ceph is asked over SSH, with --ssh'})
  const {keyPath, lanInterface} = options.ssh
  return readCeph(store, {...(keyPath ? {keyPath} : {}), ...(lanInterface ? {lanInterface} : {})})
}

/**
 * Every health check: etcd's quorum and each member, each node's state, each elected service's
 * leader and the split-brain check, each DHCP range's usage, and with `ssh` each node's SSH and
 * clock, and Ceph's own health when the spec declares Ceph. The cluster's keys are read in a few paged range reads at one revision.
 */
export async function runHealthChecks(store: EtcdStore, options: HealthOptions = {}): Promise<HealthReport> {
  return report((await assess(store, options)).checks)
}

function failedRuns(snapshot: ClusterSnapshot): FailedRun[] {
  return snapshot.runs
    .filter((r) => r.result === 'failed' || r.result === 'interrupted')
    .sort((a, b) => b.startedAt.localeCompare(a.startedAt))
    .slice(0, settings.health.failedRunsShown)
    .map((r) => ({id: r.id, action: r.action, result: r.result as FailedRun['result'], startedAt: r.startedAt, failures: r.failures.length, resume: resumeCommand(r.action, r.args, r.id)}))
}

/** The one-screen picture of `xcluster status`: etcd, nodes, leaders, VIPs, DHCP pools, failed runs and the problems, worst first. */
export async function collectStatus(store: EtcdStore, options: HealthOptions = {}): Promise<ClusterStatus> {
  return (await assessCluster(store, options)).status
}

/** What the health API serves: the health report, the status and the keys they were read from, from one assessment. */
export interface ClusterPicture {
  report: HealthReport
  status: ClusterStatus
  /** Undefined when the cluster's keys could not be read (the report says why). */
  snapshot?: ClusterSnapshot
}

/** `health` and `status` at once: one set of reads serves both, so they never disagree. */
export async function assessCluster(store: EtcdStore, options: HealthOptions = {}): Promise<ClusterPicture> {
  const assessment = await assess(store, options)
  return {report: report(assessment.checks), status: statusOf(store, assessment, options), ...(assessment.snapshot ? {snapshot: assessment.snapshot} : {})}
}

function statusOf(store: EtcdStore, {etcd, snapshot, elections: checked, ceph, checks}: Assessment, options: HealthOptions): ClusterStatus {
  const problems = sortChecks(checks.filter((c) => c.status !== 'ok'))
  const base = {cluster: store.keys.cluster, at: new Date(options.now ?? Date.now()).toISOString(), health: worstStatus(checks), etcd, ceph, problems}
  if (!snapshot || !checked) return {...base, revision: '0', nodes: {total: 0, byState: {}}, services: [], vips: [], dhcp: [], failedRuns: [], splitBrain: []}
  const spec = snapshot.spec
  const current = currentServices(spec)
  const elections = checked.states.filter((e) => current(e.service, e.leader))
  // In lifecycle order, so the screen reads as the nodes' progress.
  const byState: ClusterStatus['nodes']['byState'] = {}
  for (const state of NODE_STATES) {
    const count = snapshot.nodes.filter((n) => n.state === state).length
    if (count > 0) byState[state] = count
  }
  const leaderOf = new Map(elections.map((e) => [e.service, e.leader]))
  return {
    ...base,
    revision: snapshot.revision,
    nodes: {total: snapshot.nodes.length, byState},
    services: elections.map((e) => ({service: e.service, leader: e.leader, token: e.token, since: e.since, candidates: e.candidates})),
    vips: spec
      ? declaredVips(spec).map((v) => (v.purpose === 'admin' ? {...v, holder: null, source: 'keepalived' as const} : {...v, holder: leaderOf.get(v.purpose) ?? null, source: 'election' as const}))
      : [],
    dhcp: spec ? poolUsage(spec, snapshot.nodes, snapshot.leases, options.now) : [],
    failedRuns: failedRuns(snapshot),
    splitBrain: splitBrain(checked.result, new Set(elections.map((e) => e.service))),
  }
}

function splitBrain(result: CheckResult, shown: ReadonlySet<string>): SplitBrain[] {
  const byService = new Map<string, string[]>()
  for (const d of result.disagreements) if (shown.has(d.service)) byService.set(d.service, [...(byService.get(d.service) ?? []), `[${d.kind}] ${d.message}`])
  return [...byService].map(([service, observed]) => ({service, observed}))
}
