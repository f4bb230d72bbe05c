import type {SshHost} from '../ssh/index.js'

/**
 * The OSD ids CRUSH places under the node's host bucket, or [] where the node has no ceph CLI or
 * no cluster config for it (no Ceph there: ceph-common alone makes no cluster member). Read over
 * the node's own SSH connection, as root.
 */
export async function osdsOnNode(ssh: SshHost, node: string): Promise<number[]> {
  const cephHere = 'command -v ceph >/dev/null && { [ -n "$CEPH_CONF" ] || [ -e /etc/ceph/ceph.conf ]; }'
  if ((await ssh.exec(cephHere)).code !== 0) return []
  return JSON.parse((await ssh.run(`ceph osd ls-tree ${node} --format json`, {sudo: true})).stdout || '[]') as number[]
}
