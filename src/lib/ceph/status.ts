import {XclusterError} from '../errors.js'
import type {CephCli} from './cli.js'

/** What `ceph -s --format json` prints, in the parts xcluster reads (Pacific 16.2). */
export interface CephStatusJson {
  fsid?: string
  quorum_names?: string[]
  monmap?: {num_mons?: number}
  mgrmap?: {available?: boolean; num_standbys?: number}
  health?: {status?: string; checks?: Record<string, {severity?: string; summary?: {message?: string; count?: number}; muted?: boolean}>}
  /** Pacific and later: flat; Nautilus and Octopus nested it once more under `osdmap`. */
  osdmap?: OsdMapJson & {osdmap?: OsdMapJson}
  pgmap?: {
    pgs_by_state?: {state_name: string; count: number}[]
    num_pgs?: number
    num_pools?: number
    num_objects?: number
    bytes_used?: number
    bytes_avail?: number
    bytes_total?: number
  }
}

interface OsdMapJson {
  num_osds?: number
  num_up_osds?: number
  num_in_osds?: number
}

export type CephHealth = 'HEALTH_OK' | 'HEALTH_WARN' | 'HEALTH_ERR'

/** The `--json` of `xcluster ceph status`. */
export interface CephStatus {
  /** The node whose Ceph CLI answered. */
  node: string
  fsid: string
  health: {status: CephHealth; checks: {name: string; severity: string; summary: string; muted: boolean}[]}
  /** The monitors: how many the monmap has, and which are in quorum (by name, sorted). */
  mons: {total: number; inQuorum: string[]}
  /** Whether a manager is active, and how many stand by. */
  mgr: {available: boolean; standbys: number}
  osds: {total: number; up: number; in: number}
  pgs: {total: number; byState: {state: string; count: number}[]}
  pools: number
  objects: number
  usage: {usedBytes: number; availBytes: number; totalBytes: number}
}

const HEALTH: readonly string[] = ['HEALTH_OK', 'HEALTH_WARN', 'HEALTH_ERR']

/** The parts of `ceph -s` an operator looks at first. Refuses output without a health verdict. */
export function parseCephStatus(raw: CephStatusJson, node: string): CephStatus {
  const status = raw.health?.status
  if (!status || !HEALTH.includes(status)) {
    throw new XclusterError(`ceph -s on ${node} gave no health status (got ${JSON.stringify(status ?? null)}).`, {code: 'CEPH_OUTPUT_INVALID', details: {node, health: raw.health ?? null}})
  }
  const osdmap = raw.osdmap?.osdmap ?? raw.osdmap ?? {}
  const pgmap = raw.pgmap ?? {}
  const byState = (pgmap.pgs_by_state ?? []).map((s) => ({state: s.state_name, count: s.count})).sort((a, b) => b.count - a.count || a.state.localeCompare(b.state))
  return {
    node,
    fsid: raw.fsid ?? '',
    health: {
      status: status as CephHealth,
      checks: Object.entries(raw.health?.checks ?? {}).map(([name, c]) => ({name, severity: c.severity ?? '', summary: c.summary?.message ?? '', muted: c.muted === true})),
    },
    mons: {total: raw.monmap?.num_mons ?? 0, inQuorum: [...(raw.quorum_names ?? [])].sort()},
    mgr: {available: raw.mgrmap?.available === true, standbys: raw.mgrmap?.num_standbys ?? 0},
    osds: {total: osdmap.num_osds ?? 0, up: osdmap.num_up_osds ?? 0, in: osdmap.num_in_osds ?? 0},
    pgs: {total: pgmap.num_pgs ?? byState.reduce((n, s) => n + s.count, 0), byState},
    pools: pgmap.num_pools ?? 0,
    objects: pgmap.num_objects ?? 0,
    usage: {usedBytes: pgmap.bytes_used ?? 0, availBytes: pgmap.bytes_avail ?? 0, totalBytes: pgmap.bytes_total ?? 0},
  }
}

export async function cephStatus(cli: CephCli): Promise<CephStatus> {
  return parseCephStatus(await cli.json<CephStatusJson>({tool: 'ceph', args: ['-s']}), cli.host.name)
}
