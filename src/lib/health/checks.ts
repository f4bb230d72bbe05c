/** The checks of `xcluster health` as pure functions of what was read: each gives a verdict and, when not ok, the next step. */
import type {CheckResult} from '../election/split-brain.js'
import type {ElectionState} from '../election/state.js'
import {IN_PROCESS_SERVICES} from '../spec/validate.js'
import type {ClusterSpec} from '../spec/types.js'
import {humanBytes} from '../etcd/maintenance.js'
import type {NodeRecord} from '../nodes/record.js'
import {commandLine} from '../output/command-line.js'
import {settings} from '../settings.js'
import type {CheckStatus, EtcdStatus, HealthCheck, HealthReport, PoolUsage} from './types.js'

const RANK: Record<CheckStatus, number> = {fail: 0, warn: 1, ok: 2}

/** Worst first (fail, warn, ok), then by name: what an operator reads first is what needs them. */
export function sortChecks(checks: readonly HealthCheck[]): HealthCheck[] {
  return [...checks].sort((a, b) => RANK[a.status] - RANK[b.status] || a.name.localeCompare(b.name, 'en', {numeric: true}))
}

export function worstStatus(checks: readonly HealthCheck[]): CheckStatus {
  return checks.reduce<CheckStatus>((worst, c) => (RANK[c.status] < RANK[worst] ? c.status : worst), 'ok')
}

export function report(checks: readonly HealthCheck[]): HealthReport {
  const counts: Record<CheckStatus, number> = {fail: 0, warn: 0, ok: 0}
  for (const c of checks) counts[c.status]++
  return {status: worstStatus(checks), counts, checks: sortChecks(checks)}
}

export function etcdChecks(etcd: EtcdStatus): HealthCheck[] {
  const {quorum} = etcd
  const checks: HealthCheck[] = [
    {
      name: 'etcd:quorum',
      status: quorum.ok ? 'ok' : 'fail',
      observed: `${quorum.healthy}/${quorum.members} members healthy (quorum needs ${quorum.needed}), leader ${etcd.leader ?? 'none'}`,
      ...(quorum.ok ? {} : {next: `Start the failed etcd members (systemctl start etcd-member.service on each) until ${quorum.needed} are healthy; nothing can be written until then.`}),
    },
  ]
  for (const m of etcd.members) {
    // A member added but never started has no name yet: its ID stands in.
    const label = m.name || `unstarted-${m.id ?? '?'}`
    checks.push(
      m.healthy
        ? {name: `etcd:member:${label}`, status: 'ok', observed: `healthy at ${m.endpoint}${m.isLeader ? ' (leader)' : ''}, etcd ${m.version}, db ${humanBytes(m.dbSize) ?? '-'}`}
        : {
            name: `etcd:member:${label}`,
            status: 'fail',
            observed: `${label} at ${m.endpoint ?? (m.clientUrls.join(', ') || 'no client URL')}: ${m.problem ?? 'not healthy'}`,
            next: /NOSPACE/i.test(m.problem ?? '')
              ? `Its database is full: compact and defragment it (etcdctl --endpoints=${m.endpoint ?? m.clientUrls[0]} defrag), then etcdctl alarm disarm.`
              : `On ${label}: systemctl status etcd-member.service (journalctl -u etcd-member.service); started again, it catches up from the others.`,
          },
    )
  }
  return checks
}

/** What to run for a node in each state that is not ready. */
function nodeNext(n: NodeRecord): {status: CheckStatus; next: string} {
  const run = (...args: string[]) => commandLine(args)
  switch (n.state) {
    case 'failed':
      return {status: 'fail', next: `See why (${run('node', 'show', n.name)}), then provision it again: ${run('node', 'add', n.name)}`}
    case 'registered':
      return {status: 'warn', next: `Provision it: ${run('node', 'add', n.name)}`}
    case 'discovered':
      return {status: 'warn', next: `Register it in the spec or with: ${run('node', 'add', n.name, '--mac', n.mac)}`}
    case 'provisioning':
      return {status: 'warn', next: `A run is provisioning it, or one stopped midway: ${run('runs', 'list')}, then resume the failed run or run ${run('node', 'add', n.name)}`}
    case 'draining':
      return {status: 'warn', next: `Finish the drain: ${run('node', 'drain', n.name)} (or return it: ${run('node', 'undrain', n.name)})`}
    case 'drained':
      return {status: 'warn', next: `Return it to service when its work is done: ${run('node', 'undrain', n.name)}`}
    default:
      return {status: 'warn', next: run('node', 'show', n.name)}
  }
}

/** One check per node that is meant to be in service: `ready` is ok; removed nodes are not checked. */
export function nodeChecks(nodes: readonly NodeRecord[]): HealthCheck[] {
  return nodes
    .filter((n) => n.state !== 'removed')
    .map((n) => {
      if (n.state === 'ready') return {name: `node:${n.name}`, status: 'ok', observed: `${n.type} node ready`}
      const {status, next} = nodeNext(n)
      return {name: `node:${n.name}`, status, observed: `${n.type} node ${n.state}${n.reason ? ` (${n.reason})` : ''}`, next}
    })
}

/** Whether an election is still the cluster's concern (see currentServices). */
export type CurrentService = (service: string, leader: string | null) => boolean

/**
 * A service taken out of the spec leaves its election's history in etcd: led by nobody, it is no
 * longer expected to run, so it is neither checked nor shown (one still led is, as any other).
 * Without a spec every service counts.
 */
export function currentServices(spec: ClusterSpec | undefined): CurrentService {
  if (!spec) return () => true
  const declared = new Set<string>([...IN_PROCESS_SERVICES, ...(spec.services ?? []).map((service) => service.name)])
  return (service, leader) => declared.has(service) || leader !== null
}

/**
 * Each elected service must have exactly one leader, and the split-brain check (every daemon's
 * view against etcd, the VIP and RBD lock holders where probed) must find nothing.
 */
export function electionChecks(result: CheckResult, states?: readonly ElectionState[], current: CurrentService = () => true): HealthCheck[] {
  return result.services
    .filter((s) => current(s.service, s.leader))
    .map((s) => {
      const name = `election:${s.service}`
      const split = result.disagreements.filter((d) => d.service === s.service)
      if (split.length > 0) {
        return {
          name,
          status: 'fail',
          observed: `split brain: ${split.map((d) => `[${d.kind}] ${d.message}`).join('; ')}`,
          next: `See every view with ${commandLine(['election', 'check'])}; stop the service on the nodes that are not ${s.leader ?? 'the leader'}.`,
        }
      }
      if (!s.leader) {
        // Candidates are known only when the caller read the elections (states); otherwise say less.
        const candidates = states?.find((x) => x.service === s.service)?.candidates
        return {
          name,
          status: 'fail',
          observed: candidates === undefined ? 'no leader' : candidates.length > 0 ? `no leader; candidates ${candidates.join(', ')}` : 'no leader and no candidate campaigning',
          next:
            candidates?.length === 0
              ? `Start the election daemon on the nodes that may run it (xcluster serve --elect ${s.service}, the xcluster-serve unit), then: ${commandLine(['election', 'show', s.service])}`
              : `See the candidates and recent changes: ${commandLine(['election', 'show', s.service])}`,
        }
      }
      return {name, status: 'ok', observed: `leader ${s.leader} (token ${s.token}); ${s.believers.length} view${s.believers.length === 1 ? '' : 's'} claim it, none disagree`}
    })
}

export function poolChecks(pools: readonly PoolUsage[], thresholds = {warn: settings.health.poolWarnPercent, fail: settings.health.poolFailPercent}): HealthCheck[] {
  return pools.map((p) => {
    const status: CheckStatus = p.capacity > 0 && p.percent >= thresholds.fail ? 'fail' : p.capacity > 0 && p.percent >= thresholds.warn ? 'warn' : 'ok'
    const observed = `${p.used}/${p.capacity} addresses leased (${p.percent} %) in ${p.start}-${p.end}`
    if (status === 'ok') return {name: `dhcp:${p.range}`, status, observed}
    return {
      name: `dhcp:${p.range}`,
      status,
      observed: `${observed}: ${status === 'fail' ? `at or above ${thresholds.fail}` : `at or above ${thresholds.warn}`} %`,
      next: `Release leases no longer needed (${commandLine(['dhcp', 'leases'])}, ${commandLine(['dhcp', 'release', 'IP'])}) or widen network.ranges.${p.range} and run ${commandLine(['config', 'apply', '-f', settings.specFile])}`,
    }
  })
}
