/**
 * Ceph in `health --ssh` and `status --ssh`: Ceph's own verdict (`ceph -s`), asked over SSH of the
 * first ready core or storage node whose Ceph answers, as `xcluster ceph status` asks it. Only a
 * cluster whose spec declares `ceph:` is expected to run Ceph; the others are not asked.
 */
import {openCeph, type CephAccess} from '../ceph/admin-node.js'
import {humanSize} from '../ceph/input.js'
import {cephStatus, type CephStatus} from '../ceph/status.js'
import {XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {commandLine} from '../output/command-line.js'
import type {CephReading, HealthCheck} from './types.js'

/** Reads Ceph's status; a Ceph that no node answers for is a reading with the reason, not an error. */
export async function readCeph(store: EtcdStore, access: Omit<CephAccess, 'node'>): Promise<CephReading> {
  let session
  try {
    session = await openCeph(store, access)
    return {checked: true, status: await cephStatus(session.cli)}
  } catch (err) {
    if (!(err instanceof XclusterError)) throw err
    return {checked: true, problem: err.message, ...(err.suggestion ? {next: err.suggestion} : {})}
  } finally {
    await session?.close()
  }
}

/** A multi-line reason (a heading, then a line per node) as one line. */
export const oneLine = (text: string): string =>
  text
    .trim()
    .replaceAll(/:\s*\n\s*/g, ': ')
    .replaceAll(/\s*\n\s*/g, '; ')

/** `HEALTH_WARN from s3: 3 OSDs, 2 up, 3 in; 16 PGs (12 active+clean, 4 undersized); 12 MiB used of 3 GiB`. */
export function cephSummary(status: CephStatus): string {
  const {osds, pgs, usage} = status
  const states = pgs.byState.map((s) => `${s.count} ${s.state}`).join(', ')
  return `${status.health.status} from ${status.node}: ${osds.total} OSDs, ${osds.up} up, ${osds.in} in; ${pgs.total} PGs${states ? ` (${states})` : ''}; ${humanSize(usage.usedBytes)} used of ${humanSize(usage.totalBytes)}`
}

/** The `ceph` check: Ceph's HEALTH_OK, HEALTH_WARN and HEALTH_ERR are ok, warn and fail; Ceph that no node answers for fails. */
export function cephCheck(reading: CephReading): HealthCheck | undefined {
  if (!reading.checked) return undefined
  if (!('status' in reading)) {
    return {name: 'ceph', status: 'fail', observed: oneLine(reading.problem), next: reading.next ?? commandLine(['ceph', 'status'])}
  }
  const {status} = reading
  const raised = status.health.checks.filter((c) => !c.muted).map((c) => `${c.name}: ${c.summary}`)
  const observed = [cephSummary(status), ...raised].join('; ')
  if (status.health.status === 'HEALTH_OK') return {name: 'ceph', status: 'ok', observed}
  return {name: 'ceph', status: status.health.status === 'HEALTH_ERR' ? 'fail' : 'warn', observed, next: commandLine(['ceph', 'status', '--node', status.node])}
}
