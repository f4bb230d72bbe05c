import type {SshHost} from '../ssh/index.js'

/**
 * The OSD ids CRUSH places under the node's host bucket, or [] where the node has no ceph CLI or
 * no cluster config for it (no Ceph there: ceph-common alone makes no cluster member), or no
 * bucket in CRUSH yet. Read over the node's own SSH connection, as root.
 */
export async function osdsOnNode(ssh: SshHost, node: string): Promise<number[]> {
  const cephHere = 'command -v ceph >/dev/null && { [ -n "$CEPH_CONF" ] || [ -e /etc/ceph/ceph.conf ]; }'
  if ((await ssh.exec(cephHere)).code !== 0) return []
  try {
    return JSON.parse((await ssh.run(`ceph osd ls-tree ${node} --format json`, {sudo: true})).stdout || '[]') as number[]
  } catch (err) {
    // A node CRUSH has no bucket for (Ceph installed, no OSD added there yet) holds no OSD.
    if (/ENOENT: .* does not exist/.test((err as Error).message)) return []
    throw err
  }
}

/**
 * Ceph's own verdict on stopping these OSDs together (`ceph osd ok-to-stop`, what cephadm asks
 * before an upgrade restarts them): ok when no placement group would become unavailable.
 */
export async function osdsOkToStop(ssh: SshHost, ids: readonly number[]): Promise<{ok: boolean; message: string}> {
  const res = await ssh.exec(`ceph osd ok-to-stop ${ids.join(' ')}`, {sudo: true})
  const message = (res.code === 0 ? res.stdout : res.stderr || res.stdout).trim().split('\n').pop() ?? ''
  return {ok: res.code === 0, message}
}
