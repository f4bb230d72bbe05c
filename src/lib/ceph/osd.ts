import {XclusterError} from '../errors.js'
import type {CephCli} from './cli.js'

/**
 * The OSD ids CRUSH places under the node's host bucket, or [] where the node has no Ceph of the
 * spec's backend (no CLI, or no cluster config for it: ceph-common alone makes no cluster
 * member), or no bucket in CRUSH yet. Read over the node's own SSH connection, as root.
 */
export async function osdsOnNode(cli: CephCli, node: string): Promise<number[]> {
  if (!(await cli.present())) return []
  const noBucket = new XclusterError(`CRUSH has no bucket ${node}`, {code: 'CEPH_NO_BUCKET'})
  try {
    return (await cli.json<number[] | null>({tool: 'ceph', args: ['osd', 'ls-tree', node]}, (output) => (/ENOENT: .* does not exist/.test(output) ? noBucket : undefined))) ?? []
  } catch (error) {
    // A node CRUSH has no bucket for (Ceph installed, no OSD added there yet) holds no OSD.
    if (error === noBucket) return []
    throw error
  }
}

/**
 * Ceph's own verdict on stopping these OSDs together (`ceph osd ok-to-stop`, what cephadm asks
 * before an upgrade restarts them): ok when no placement group would become unavailable.
 */
export async function osdsOkToStop(cli: CephCli, ids: readonly number[]): Promise<{ok: boolean; message: string}> {
  const res = await cli.exec({tool: 'ceph', args: ['osd', 'ok-to-stop', ...ids.map(String)]})
  const message = (res.code === 0 ? res.stdout : res.stderr || res.stdout).trim().split('\n').pop() ?? ''
  return {ok: res.code === 0, message}
}
