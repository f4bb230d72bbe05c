/** The human forms of status and health: one screen in the spirit of `ceph -s`. */
import type {ChalkInstance} from 'chalk'

import {humanBytes} from '../etcd/maintenance.js'
import {cephSummary, oneLine} from './ceph.js'
import {commandLine} from '../output/command-line.js'
import type {CephReading, CheckStatus, ClusterStatus, HealthCheck} from './types.js'

/** Problems listed on the status screen; the rest are counted (all of them: `xcluster health`). */
const PROBLEMS_SHOWN = 10

export const verdict = (status: CheckStatus): string => `HEALTH_${status.toUpperCase()}`

export function paintStatus(color: ChalkInstance, status: CheckStatus, text: string = status): string {
  return status === 'fail' ? color.red(text) : status === 'warn' ? color.yellow(text) : color.green(text)
}

function problemLines(color: ChalkInstance, problems: readonly HealthCheck[]): string[] {
  const lines = problems.slice(0, PROBLEMS_SHOWN).map((p) => `${paintStatus(color, p.status, p.status.padEnd(4))}  ${p.name}: ${p.observed}${p.next ? `\n                  next: ${p.next}` : ''}`)
  if (problems.length > PROBLEMS_SHOWN) lines.push(`... and ${problems.length - PROBLEMS_SHOWN} more: ${commandLine(['health'])}`)
  return lines
}

function cephLines(color: ChalkInstance, ceph: CephReading): string[] {
  if (!ceph.checked) return [`not checked (${ceph.reason})`]
  if (!('status' in ceph)) return [color.red(`unavailable: ${oneLine(ceph.problem)}`)]
  const {status} = ceph
  const paint = status.health.status === 'HEALTH_OK' ? color.green : status.health.status === 'HEALTH_ERR' ? color.red : color.yellow
  return [paint(cephSummary(status)), ...status.health.checks.filter((c) => !c.muted).map((c) => `${c.name}: ${c.summary}`)]
}

/** Sections as `ceph -s` lays them out: a label column, then the facts. */
export function renderStatus(status: ClusterStatus, color: ChalkInstance): string {
  const out: string[] = []
  const section = (label: string, lines: string[]) => {
    lines.forEach((line, i) => out.push(`${(i === 0 ? `${label}:` : '').padEnd(12)}${line}`))
  }
  const {etcd} = status
  section('cluster', [`${status.cluster} (etcd revision ${status.revision}, ${status.at})`])
  section('health', [paintStatus(color, status.health, verdict(status.health)), ...problemLines(color, status.problems)])
  out.push('')
  section('etcd', [
    `${etcd.quorum.members} members, ${etcd.quorum.healthy} healthy (quorum ${etcd.quorum.needed}${etcd.quorum.ok ? '' : ', LOST'}), leader ${etcd.leader ?? 'none'}, db ${humanBytes(etcd.dbSize) ?? '-'}, TLS ${etcd.tls ? 'yes' : 'no'}`,
    ...etcd.members.filter((m) => !m.healthy).map((m) => color.red(`${m.name || '(unstarted)'}: ${m.problem ?? 'not healthy'}`)),
  ])
  const states = Object.entries(status.nodes.byState)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ')
  section('nodes', [`${status.nodes.total} total${states ? `: ${states}` : ''}`])
  section(
    'services',
    status.services.length > 0
      ? status.services.map((s) => {
          if (status.splitBrain.some((b) => b.service === s.service)) return color.red.bold(`${s.service}: SPLIT BRAIN (etcd: ${s.leader ?? 'no leader'}, token ${s.token ?? '-'})`)
          return s.leader ? `${s.service}: ${s.leader} (token ${s.token}, since ${s.since ?? '-'})` : color.red(`${s.service}: no leader`)
        })
      : ['none'],
  )
  section(
    'vips',
    status.vips.length > 0 ? status.vips.map((v) => `${v.address} ${v.purpose}: ${v.holder ?? (v.source === 'keepalived' ? `keepalived (${commandLine(['vip', 'status'])})` : 'nobody')}`) : ['none'],
  )
  section('ceph', cephLines(color, status.ceph))
  section('dhcp', status.dhcp.length > 0 ? status.dhcp.map((p) => `${p.range.padEnd(10)} ${p.used}/${p.capacity} leased (${p.percent} %)`) : ['no spec'])
  section('runs', status.failedRuns.length > 0 ? status.failedRuns.map((r) => `${r.id} ${r.action} ${r.result}, ${r.failures} failure(s): ${r.resume}`) : ['no failed runs'])
  return out.join('\n')
}
