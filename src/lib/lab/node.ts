import {randomBytes} from 'node:crypto'
import {chmodSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {XclusterError} from '../errors.js'
import {renderTemplate, TEMPLATES_DIR} from '../render/template.js'
import {settings} from '../settings.js'
import {cgroupDirs, netnsName, type LabPaths} from './paths.js'
import {containerInitPid} from './state.js'
import {must, run, spawnDaemon, waitFor} from './system.js'
import type {LabNodeSpec, LabTopology} from './topology.js'

export interface NodeIdentity {
  hostKeyFingerprint: string
  hostPublicKey: string
}

/**
 * A node's own root, as a preseeded Debian install leaves a machine: an overlay on the shared
 * root filesystem, with its own hostname, hosts file, random machine-id, ed25519 host key and
 * the operator's authorized key. Nothing of xcluster's: bootstrap and node add install that.
 */
export async function prepareNode(paths: LabPaths, rootfs: string, node: LabNodeSpec, topology: LabTopology, labPublicKey: string): Promise<NodeIdentity> {
  const dirs = paths.node(node.name)
  for (const d of [dirs.root, dirs.upper, dirs.work]) mkdirSync(d, {recursive: true})
  await must('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${rootfs},upperdir=${dirs.upper},workdir=${dirs.work}`, dirs.root])
  const root = dirs.root
  const labHosts = [{ip: topology.gateway, name: 'admin'}, ...topology.nodes.filter((n) => n.ip).map((n) => ({ip: n.ip, name: n.name}))]
  writeFileSync(join(root, 'etc', 'hostname'), `${node.name}\n`)
  writeFileSync(join(root, 'etc', 'hosts'), renderTemplate('lab/hosts', {name: node.name, domain: topology.domain, labHosts}))
  writeFileSync(join(root, 'etc', 'machine-id'), `${randomBytes(16).toString('hex')}\n`)
  writeFileSync(join(root, 'etc', 'ssh', 'sshd_config.d', 'xcluster.conf'), renderTemplate('lab/sshd.conf', {}))
  if (!node.ip) {
    mkdirSync(join(root, 'etc', 'systemd', 'network'), {recursive: true})
    writeFileSync(join(root, 'etc', 'systemd', 'network', '10-eth0-dhcp.network'), renderTemplate('lab/dhcp-client.network', {}))
  }
  mkdirSync(join(root, 'root', '.ssh'), {recursive: true, mode: 0o700})
  chmodSync(join(root, 'root', '.ssh'), 0o700)
  writeFileSync(join(root, 'root', '.ssh', 'authorized_keys'), labPublicKey, {mode: 0o600})
  const key = join(root, 'etc', 'ssh', 'ssh_host_ed25519_key')
  await must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${node.name}`, '-f', key])
  const fingerprint = (await must('ssh-keygen', ['-lf', `${key}.pub`])).split(' ')[1]
  const [type, body] = readFileSync(`${key}.pub`, 'utf8').trim().split(' ')
  return {hostKeyFingerprint: fingerprint, hostPublicKey: `${type} ${body}`}
}

/** Boots the node in the background (its own session and cgroups); returns the boot loop's pid. */
export async function bootNode(paths: LabPaths, node: LabNodeSpec): Promise<number> {
  for (const dir of cgroupDirs(node.name)) mkdirSync(dir, {recursive: true})
  const pid = spawnDaemon(
    'bash',
    [join(TEMPLATES_DIR, 'lab', 'node-boot.sh'), node.name, paths.node(node.name).root, `/run/netns/${netnsName(node.name)}`, paths.pidFile(`nspawn-${node.name}`)],
    paths.logFile(node.name),
  )
  writeFileSync(paths.pidFile(`boot-${node.name}`), `${pid}\n`)
  return pid
}

/** `systemctl is-system-running` inside the container (via its PID 1's namespaces). */
export async function systemState(pid: number): Promise<string> {
  const res = await run('nsenter', ['-t', String(pid), '-a', 'systemctl', 'is-system-running'], {timeoutMs: 5000})
  return res.stdout.trim() || 'unknown'
}

export async function unitActive(pid: number, unit: string): Promise<boolean> {
  const res = await run('nsenter', ['-t', String(pid), '-a', 'systemctl', 'is-active', '--quiet', unit], {timeoutMs: 5000})
  return res.code === 0
}

/** Does anything accept TCP on ip:port, seen from the admin host's namespace? */
export async function tcpOpenFromAdmin(ip: string, port: number): Promise<boolean> {
  const res = await run('ip', ['netns', 'exec', netnsName('admin'), 'timeout', '1', 'bash', '-c', `exec 3<>/dev/tcp/${ip}/${port}`])
  return res.code === 0
}

/** Waits until systemd is up inside and, for an addressed node, sshd accepts TCP from the admin host. */
export async function waitNodeReady(paths: LabPaths, node: LabNodeSpec): Promise<void> {
  let state = 'not started'
  const ok = await waitFor(async () => {
    const pid = containerInitPid(paths.dir, node.name)
    if (pid === undefined) return false
    state = await systemState(pid)
    if (state !== 'running' && state !== 'degraded') return false
    return node.ip ? tcpOpenFromAdmin(node.ip, 22) : unitActive(pid, 'ssh')
  }, settings.lab.nodeBootTimeoutMs)
  if (!ok) {
    throw new XclusterError(`Node ${node.name} did not come up in ${settings.lab.nodeBootTimeoutMs / 1000} s (systemd: ${state}).`, {
      code: 'LAB_NODE_BOOT_FAILED',
      suggestion: `Look at ${paths.logFile(node.name)}, then run: sudo xcluster lab up`,
    })
  }
}
