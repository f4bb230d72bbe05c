import {preconditionError, usageError} from '../errors.js'
import {commandLine} from '../output/command-line.js'
import {applyChange, type CephChange} from './change.js'
import type {CephCall, CephCli} from './cli.js'
import {checkReplicas, parseApplication, parsePoolName, type PgAutoscaleMode} from './input.js'

/** One pool, from `ceph osd pool ls detail --format json`. */
export interface CephPool {
  name: string
  id: number
  /** Replicas, and how many must be up for I/O. */
  size: number
  minSize: number
  pgNum: number
  pgAutoscale: string
  applications: string[]
}

interface PoolJson {
  pool_name: string
  pool_id?: number
  pool?: number
  size: number
  min_size: number
  pg_num: number
  pg_autoscale_mode?: string
  application_metadata?: Record<string, unknown>
}

export const parsePools = (raw: PoolJson[] | null): CephPool[] =>
  (raw ?? []).map((p) => ({
    name: p.pool_name,
    id: p.pool_id ?? p.pool ?? -1,
    size: p.size,
    minSize: p.min_size,
    pgNum: p.pg_num,
    pgAutoscale: p.pg_autoscale_mode ?? '',
    applications: Object.keys(p.application_metadata ?? {}).sort(),
  }))

export async function listPools(cli: CephCli): Promise<CephPool[]> {
  return parsePools(await cli.json<PoolJson[]>({tool: 'ceph', args: ['osd', 'pool', 'ls', 'detail']}))
}

/** OSDs up now (`ceph osd stat`): the most replicas a pool can place. */
export async function osdsUp(cli: CephCli): Promise<{up: number; total: number}> {
  const raw = await cli.json<{num_up_osds?: number; num_osds?: number; osdmap?: {num_up_osds?: number; num_osds?: number}}>({tool: 'ceph', args: ['osd', 'stat']})
  const stat = raw.osdmap ?? raw
  return {up: stat.num_up_osds ?? 0, total: stat.num_osds ?? 0}
}

/** What a pool should become: only what the operator gave. */
export interface PoolSettings {
  size?: number
  minSize?: number
  pgAutoscale?: PgAutoscaleMode
  application?: string
}

/** The `--json` of `ceph pool create` and `ceph pool set`. */
export interface PoolChange extends CephChange {
  pool: string
}

const setCall = (pool: string, key: string, value: string, extra: string[] = []): CephCall => ({tool: 'ceph', args: ['osd', 'pool', 'set', pool, key, value, ...extra]})

/** Size 1 (no redundancy) is refused by Ceph without its own confirmation flag (and mon_allow_pool_size_one). */
const sizeCall = (pool: string, size: number): CephCall => setCall(pool, 'size', String(size), size === 1 ? ['--yes-i-really-mean-it'] : [])

/** The flags that give these settings (for a suggested command line). */
function settingFlags(settings: PoolSettings): string[] {
  return [
    ...(settings.size === undefined ? [] : ['--size', String(settings.size)]),
    ...(settings.minSize === undefined ? [] : ['--min-size', String(settings.minSize)]),
    ...(settings.pgAutoscale === undefined ? [] : ['--pg-autoscale', settings.pgAutoscale]),
    ...(settings.application === undefined ? [] : ['--application', settings.application]),
  ]
}

/**
 * The operator's input alone, before any call: the name, the numbers, a min-size above the size
 * given, and for `pool set` that something is given at all. Usage errors (exit 2).
 */
export function checkPoolInput(name: string, settings: PoolSettings, action: 'create' | 'set'): void {
  parsePoolName(name)
  if (settings.size !== undefined) checkReplicas(settings.size, '--size')
  if (settings.minSize !== undefined) checkReplicas(settings.minSize, '--min-size')
  if (settings.application !== undefined) parseApplication(settings.application)
  if (settings.minSize !== undefined && settings.size !== undefined && settings.minSize > settings.size) {
    throw usageError(
      `--min-size ${settings.minSize} is larger than --size ${settings.size}.`,
      `Give a min-size of at most the size, e.g. ${commandLine(['ceph', 'pool', action, name, '--size', String(settings.size), '--min-size', String(settings.size)])}`,
    )
  }
  if (action === 'set' && Object.values(settings).every((v) => v === undefined)) {
    throw usageError('Nothing to set.', `Give at least one of --size, --min-size, --pg-autoscale, --application, e.g. ${commandLine(['ceph', 'pool', 'set', name, '--pg-autoscale', 'on'])}`)
  }
}

async function refuseSizeBeyondOsds(cli: CephCli, pool: string, size: number | undefined): Promise<void> {
  if (size === undefined) return
  const osds = await osdsUp(cli)
  if (size > osds.up) {
    throw preconditionError(
      'CEPH_POOL_SIZE_TOO_LARGE',
      `Pool ${pool}: size ${size} needs ${size} OSDs up, but only ${osds.up} of ${osds.total} are up; nothing was changed.`,
      `Give --size ${Math.max(1, osds.up)} or less, or bring more OSDs up first; see them: ${commandLine(['ceph', 'status'])}`,
      {pool, size, osdsUp: osds.up, osds: osds.total},
    )
  }
}

/**
 * Creates a pool: `osd pool create`, then each setting given. Refused, with nothing changed: a
 * name already taken, a size beyond the OSDs up, a min-size above the size.
 */
export async function createPool(cli: CephCli, name: string, settings: PoolSettings, dryRun: boolean): Promise<PoolChange> {
  checkPoolInput(name, settings, 'create')
  const pools = await listPools(cli)
  if (pools.some((p) => p.name === name)) {
    const flags = settingFlags(settings)
    const instead = flags.length > 0 ? `give the existing pool these settings: ${commandLine(['ceph', 'pool', 'set', name, ...flags])}` : `see its settings: ${commandLine(['ceph', 'pool', 'list'])}`
    throw preconditionError('CEPH_POOL_EXISTS', `A pool named ${name} exists already; nothing was changed.`, `Pick another name, or ${instead}`, {pool: name})
  }
  await refuseSizeBeyondOsds(cli, name, settings.size)
  const calls: CephCall[] = [{tool: 'ceph', args: ['osd', 'pool', 'create', name]}]
  if (settings.size !== undefined) calls.push(sizeCall(name, settings.size))
  if (settings.minSize !== undefined) calls.push(setCall(name, 'min_size', String(settings.minSize)))
  if (settings.pgAutoscale !== undefined) calls.push(setCall(name, 'pg_autoscale_mode', settings.pgAutoscale))
  if (settings.application !== undefined) calls.push({tool: 'ceph', args: ['osd', 'pool', 'application', 'enable', name, settings.application]})
  return {pool: name, ...(await applyChange(cli, calls, dryRun))}
}

/**
 * Changes a pool's settings: only those given that differ from what it has (none: nothing runs).
 * Refused, with nothing changed: an unknown pool, a size beyond the OSDs up, a min-size that would
 * end up above the size.
 */
export async function setPool(cli: CephCli, name: string, settings: PoolSettings, dryRun: boolean): Promise<PoolChange> {
  checkPoolInput(name, settings, 'set')
  const pool = (await listPools(cli)).find((p) => p.name === name)
  if (!pool) throw preconditionError('CEPH_POOL_NOT_FOUND', `No pool named ${name}; nothing was changed.`, `See the pools: ${commandLine(['ceph', 'pool', 'list'])}`, {pool: name})
  const size = settings.size ?? pool.size
  const minSize = settings.minSize ?? pool.minSize
  if (minSize > size) {
    throw preconditionError(
      'CEPH_POOL_MIN_SIZE_TOO_LARGE',
      `Pool ${name}: min-size ${minSize} would be larger than size ${size}; nothing was changed.`,
      `Set both, e.g. ${commandLine(['ceph', 'pool', 'set', name, '--size', String(size), '--min-size', String(Math.min(minSize, size))])}`,
      {pool: name, size, minSize},
    )
  }
  if (settings.size !== undefined && settings.size !== pool.size) await refuseSizeBeyondOsds(cli, name, settings.size)
  const replicas: CephCall[] = []
  const sizeChanges = settings.size !== undefined && settings.size !== pool.size
  const minChanges = settings.minSize !== undefined && settings.minSize !== pool.minSize
  // Ceph keeps min_size <= size at every step: grow the size first, shrink the min-size first.
  if (sizeChanges) replicas.push(sizeCall(name, size))
  if (minChanges) replicas[size >= pool.size ? 'push' : 'unshift'](setCall(name, 'min_size', String(minSize)))
  const calls = [...replicas]
  if (settings.pgAutoscale !== undefined && settings.pgAutoscale !== pool.pgAutoscale) calls.push(setCall(name, 'pg_autoscale_mode', settings.pgAutoscale))
  if (settings.application !== undefined && !pool.applications.includes(settings.application)) calls.push({tool: 'ceph', args: ['osd', 'pool', 'application', 'enable', name, settings.application]})
  return {pool: name, ...(await applyChange(cli, calls, dryRun))}
}
