import type {SshHost} from '../ssh/index.js'

/**
 * The OSD ids CRUSH places under the node's host bucket, or [] where the node has no ceph CLI
 * (no Ceph there). Read over the node's own SSH connection, as root.
 */
export async function osdsOnNode(ssh: SshHost, node: string): Promise<number[]> {
  if ((await ssh.exec('command -v ceph >/dev/null')).code !== 0) return []
  return JSON.parse((await ssh.run(`ceph osd ls-tree ${node} --format json`, {sudo: true})).stdout || '[]') as number[]
}
