/** What `xcluster status` and `xcluster health` return: their `--json` contracts. */
import type {CephStatus} from '../ceph/status.js'
import type {EtcdMemberState} from '../etcd/maintenance.js'
import type {NodeState} from '../nodes/record.js'

export type CheckStatus = 'ok' | 'warn' | 'fail'

/** One verdict of `health`: what was looked at, what was seen and, when it is not ok, what to do. */
export interface HealthCheck {
  /** Stable and greppable: `etcd:quorum`, `etcd:member:<name>`, `node:<name>`, `election:<service>`, `dhcp:<range>`, `ssh:<node>`, `time:<node>`, `ceph`. */
  name: string
  status: CheckStatus
  observed: string
  /** The next step, a command to run where there is one. */
  next?: string
}

export interface HealthReport {
  /** The worst status of any check. */
  status: CheckStatus
  counts: Record<CheckStatus, number>
  /** Worst first (fail, warn, ok), then by name. */
  checks: HealthCheck[]
}

export interface EtcdStatus {
  endpoints: string[]
  /** The connection speaks TLS (https endpoints or a CA / client certificate given). */
  tls: boolean
  /** As `xcluster etcd members` shows them. */
  members: EtcdMemberState[]
  /** The leading member's name, as the healthy members agree on it (null: no leader). */
  leader: string | null
  quorum: {members: number; healthy: number; needed: number; ok: boolean}
  /** The largest database of any member (they hold the same keys). */
  dbSize: number | null
}

export interface ServiceStatus {
  service: string
  leader: string | null
  token: string | null
  since: string | null
  candidates: string[]
}

export interface VipStatusRow {
  address: string
  /** "admin" or the service it follows. */
  purpose: string
  /** Where etcd says it should be: the service's leader. The admin VIP follows keepalived, which etcd does not record (null). */
  holder: string | null
  source: 'election' | 'keepalived'
}

export interface PoolUsage {
  /** The spec's range name: core, storage, compute, frontend, discovery. */
  range: string
  start: string
  end: string
  /** Addresses the range can lease: its size less the reserved ones in it (fixed IPs, gateway, VIPs). */
  capacity: number
  /** Unexpired leases (bound or declined) on those addresses. */
  used: number
  /** used / capacity in %, one decimal. */
  percent: number
}

/** A service whose views, leader key, VIP or RBD lock disagree in two samples: split brain. */
export interface SplitBrain {
  service: string
  /** Each disagreement, as election check words it. */
  observed: string[]
}

export interface FailedRun {
  id: string
  action: string
  result: 'failed' | 'interrupted'
  startedAt: string
  failures: number
  /** The command that continues it. */
  resume: string
}

/**
 * Ceph as health and status saw it: not asked (a spec without `ceph:`, or no --ssh), Ceph's own
 * status from the node that answered, or why no node's Ceph answered.
 */
export type CephReading = {checked: false; reason: string} | {checked: true; status: CephStatus} | {checked: true; problem: string; next?: string}

export interface ClusterStatus {
  cluster: string
  /** The etcd revision the cluster's keys were read at. */
  revision: string
  at: string
  /** The worst status of any check. */
  health: CheckStatus
  etcd: EtcdStatus
  nodes: {total: number; byState: Partial<Record<NodeState, number>>}
  services: ServiceStatus[]
  vips: VipStatusRow[]
  dhcp: PoolUsage[]
  failedRuns: FailedRun[]
  ceph: CephReading
  /** Services in split brain (the election check's disagreements); empty when every view agrees. */
  splitBrain: SplitBrain[]
  /** Every check that is not ok, worst first. */
  problems: HealthCheck[]
}
