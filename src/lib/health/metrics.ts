/**
 * `/metrics` of `serve --http`: the cluster as Prometheus samples, in the text exposition format
 * (version 0.0.4). A small typed renderer: a format, not a configuration file.
 */
import {NODE_STATES} from '../nodes/record.js'
import type {RunResultState} from '../tasks/journal.js'
import type {ClusterSnapshot} from './snapshot.js'
import type {CheckStatus, ClusterStatus} from './types.js'

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

export interface Sample {
  labels?: Record<string, string>
  value: number
}

/** A gauge can go down; a counter only up (reset by a restart), and its name ends in `_total`. */
export interface MetricFamily {
  name: string
  help: string
  type: 'gauge' | 'counter'
  samples: Sample[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/

const escapeHelp = (text: string): string => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
const escapeLabel = (text: string): string => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
const formatValue = (v: number): string => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v))

/** HELP and TYPE once per family, then its samples; label values escaped. A bad name is a bug here, so it throws. */
export function renderMetrics(families: readonly MetricFamily[]): string {
  const lines: string[] = []
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`invalid metric name ${f.name}`)
    if (f.type === 'counter' && !f.name.endsWith('_total')) throw new Error(`counter ${f.name} must end in _total`)
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`)
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {})
      for (const [k] of labels) if (!LABEL.test(k)) throw new Error(`invalid label name ${k} on ${f.name}`)
      const rendered = labels.length > 0 ? `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}` : ''
      lines.push(`${f.name}${rendered} ${formatValue(s.value)}`)
    }
  }
  return `${lines.join('\n')}\n`
}

export interface MetricsInput {
  status: ClusterStatus
  /** The cluster's keys (runs, leases), or undefined when etcd could not be read. */
  snapshot: ClusterSnapshot | undefined
  /** Leaderships begun per service, as a counter (see LeadershipCounter in http-api.ts). */
  leaderships: ReadonlyMap<string, number>
  /** The time leases are judged at (ms since the epoch). */
  now?: number
}

const secondsLeft = (notAfter: string, now: number): number => (Date.parse(notAfter) - now) / 1000

const RUN_RESULTS: readonly RunResultState[] = ['running', 'succeeded', 'failed', 'interrupted']
const CHECK_STATUSES: readonly CheckStatus[] = ['fail', 'warn']

/**
 * Every family is present even when empty of problems (a node state with 0 nodes is a 0 sample),
 * so an alert on `xcluster_nodes{state="failed"} > 0` sees the 0 before it sees the 1.
 */
export function clusterMetrics({status, snapshot, leaderships, now = Date.now()}: MetricsInput): MetricFamily[] {
  const gauge = (name: string, help: string, samples: Sample[]): MetricFamily => ({name, help, type: 'gauge', samples})
  const bool = (b: boolean): number => (b ? 1 : 0)
  const families: MetricFamily[] = [
    gauge('xcluster_etcd_reachable', "1 when the cluster's keys could be read from etcd at the last refresh, else 0.", [{value: bool(snapshot !== undefined)}]),
    gauge('xcluster_etcd_quorum', '1 when a quorum of the voting etcd members is healthy, else 0.', [{value: bool(status.etcd.quorum.ok)}]),
    gauge(
      'xcluster_etcd_member_healthy',
      'Per etcd member: 1 when it answered its status and a quorum read within the probe timeout, else 0.',
      status.etcd.members.map((m) => ({labels: {member: m.name || `unstarted-${m.id ?? '?'}`}, value: bool(m.healthy)})),
    ),
    gauge(
      'xcluster_nodes',
      'Registered nodes by lifecycle state.',
      NODE_STATES.map((state) => ({labels: {state}, value: status.nodes.byState[state] ?? 0})),
    ),
    gauge(
      'xcluster_service_leader',
      'Per elected service: 1 on the node etcd names as its leader (absent while it has none).',
      status.services.flatMap((s) => (s.leader ? [{labels: {service: s.service, node: s.leader}, value: 1}] : [])),
    ),
    gauge(
      'xcluster_service_has_leader',
      'Per elected service: 1 while it has a leader in etcd, else 0.',
      status.services.map((s) => ({labels: {service: s.service}, value: bool(s.leader !== null)})),
    ),
    gauge(
      'xcluster_service_fencing_token',
      "Per elected service: the leader's fencing token (its leader key's create revision); a new leadership has a larger one.",
      status.services.flatMap((s) => (s.token ? [{labels: {service: s.service}, value: Number(s.token)}] : [])),
    ),
    gauge(
      'xcluster_service_candidates',
      'Per elected service: the nodes campaigning for it.',
      status.services.map((s) => ({labels: {service: s.service}, value: s.candidates.length})),
    ),
    gauge(
      'xcluster_service_split_brain',
      "Per elected service: 1 while its daemons' views, etcd's leader key, its VIP or its RBD lock disagree (as xcluster election check reports), else 0.",
      status.services.map((s) => ({labels: {service: s.service}, value: bool(status.splitBrain.some((b) => b.service === s.service))})),
    ),
    {
      name: 'xcluster_service_leader_changes_total',
      help: "Per elected service: leaderships begun (elections won), from etcd's election history as this serve has seen it since it started.",
      type: 'counter',
      samples: status.services.map((s) => ({labels: {service: s.service}, value: leaderships.get(s.service) ?? 0})),
    },
    gauge(
      'xcluster_dhcp_pool_capacity_addresses',
      'Per DHCP range: the addresses it can lease (its size less fixed IPs, the gateway and VIPs in it).',
      status.dhcp.map((p) => ({labels: {range: p.range}, value: p.capacity})),
    ),
    gauge(
      'xcluster_dhcp_pool_leased_addresses',
      'Per DHCP range: addresses under an unexpired lease (bound or declined).',
      status.dhcp.map((p) => ({labels: {range: p.range}, value: p.used})),
    ),
    gauge(
      'xcluster_dhcp_pool_usage_ratio',
      'Per DHCP range: leased / capacity (0 for a range with nothing to lease).',
      status.dhcp.map((p) => ({labels: {range: p.range}, value: p.capacity === 0 ? 0 : p.used / p.capacity})),
    ),
  ]
  if (snapshot) {
    const live = snapshot.leases.filter((l) => Date.parse(l.expiresAt) > now)
    families.push(
      gauge(
        'xcluster_dhcp_leases',
        'Unexpired DHCP leases in etcd by state.',
        (['bound', 'declined'] as const).map((state) => ({labels: {state}, value: live.filter((l) => l.state === state).length})),
      ),
      gauge(
        'xcluster_runs',
        "Runs in etcd's journal by result (failed and interrupted ones can be resumed).",
        RUN_RESULTS.map((result) => ({labels: {result}, value: snapshot.runs.filter((r) => r.result === result).length})),
      ),
      gauge(
        'xcluster_cert_remaining_seconds',
        'Per certificate of the cluster CA (revoked ones aside): seconds until it expires, negative once expired (/ 86400 for days; base units, as promtool asks).',
        snapshot.certificates.certificates.filter((c) => !c.revoked).map((c) => ({labels: {name: c.name}, value: secondsLeft(c.notAfter, now)})),
      ),
      gauge(
        'xcluster_cert_ca_remaining_seconds',
        'Seconds until the cluster CA expires (absent without a CA in etcd).',
        snapshot.certificates.ca ? [{value: secondsLeft(snapshot.certificates.ca.notAfter, now)}] : [],
      ),
      gauge(
        'xcluster_cert_not_after_timestamp_seconds',
        'Per certificate of the cluster CA (revoked ones aside): when it expires, in seconds since the epoch.',
        snapshot.certificates.certificates.filter((c) => !c.revoked).map((c) => ({labels: {name: c.name}, value: Date.parse(c.notAfter) / 1000})),
      ),
      gauge('xcluster_cert_revoked', 'Certificates revoked and still on record in etcd.', [{value: snapshot.certificates.certificates.filter((c) => c.revoked).length}]),
    )
    if (snapshot.certificates.crl) {
      families.push(
        gauge('xcluster_cert_crl_next_update_timestamp_seconds', "When the cluster CA's CRL runs out (clients that check it then refuse everything).", [
          {value: Date.parse(snapshot.certificates.crl.nextUpdate) / 1000},
        ]),
      )
    }
  }
  families.push(
    gauge(
      'xcluster_health_problems',
      'Health checks that are not ok, by status (as xcluster health reports them without --ssh).',
      CHECK_STATUSES.map((s) => ({labels: {status: s}, value: status.problems.filter((p) => p.status === s).length})),
    ),
  )
  return families
}
