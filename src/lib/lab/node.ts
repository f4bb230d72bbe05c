import {randomBytes} from 'node:crypto'
import {chmodSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {join, relative} from 'node:path'

import {XclusterError} from '../errors.js'
import {renderTemplate, TEMPLATES_DIR} from '../render/template.js'
import {settings} from '../settings.js'
import {renderEtcdMemberUnit} from '../etcd/cluster-config.js'
import {renderServeUnit} from '../election/units.js'
import {cgroupDirs, netnsName, PACKAGE_ROOT, type LabPaths} from './paths.js'
import {containerInitPid} from './state.js'
import {must, run, spawnDaemon, waitFor} from './system.js'
import type {LabNodeSpec, LabTopology} from './topology.js'

export interface NodeIdentity {
  hostKeyFingerprint: string
  hostPublicKey: string
}

/**
 * A node's own root: an overlay on the shared root filesystem, with its own hostname, hosts
 * file, random machine-id, ed25519 host key, the lab's authorized key and the apt proxy.
 */
export async function prepareNode(paths: LabPaths, rootfs: string, node: LabNodeSpec, topology: LabTopology, labPublicKey: string, proxyUrl: string): Promise<NodeIdentity> {
  const dirs = paths.node(node.name)
  for (const d of [dirs.root, dirs.upper, dirs.work]) mkdirSync(d, {recursive: true})
  await must('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${rootfs},upperdir=${dirs.upper},workdir=${dirs.work}`, dirs.root])
  const root = dirs.root
  const labHosts = [{ip: topology.gateway, name: 'admin'}, ...topology.nodes.filter((n) => n.ip).map((n) => ({ip: n.ip, name: n.name}))]
  writeFileSync(join(root, 'etc', 'hostname'), `${node.name}\n`)
  writeFileSync(join(root, 'etc', 'hosts'), renderTemplate('lab/hosts', {name: node.name, domain: topology.domain, labHosts}))
  writeFileSync(join(root, 'etc', 'machine-id'), `${randomBytes(16).toString('hex')}\n`)
  writeFileSync(join(root, 'etc', 'ssh', 'sshd_config.d', 'xcluster.conf'), renderTemplate('lab/sshd.conf', {}))
  writeFileSync(join(root, 'etc', 'apt', 'apt.conf.d', '90xcluster-proxy'), renderTemplate('lab/apt-proxy.conf', {proxyUrl}))
  if (!node.ip) {
    mkdirSync(join(root, 'etc', 'systemd', 'network'), {recursive: true})
    writeFileSync(join(root, 'etc', 'systemd', 'network', '10-eth0-dhcp.network'), renderTemplate('lab/dhcp-client.network', {}))
  }
  installXclusterFiles(root)
  mkdirSync(join(root, 'root', '.ssh'), {recursive: true, mode: 0o700})
  chmodSync(join(root, 'root', '.ssh'), 0o700)
  writeFileSync(join(root, 'root', '.ssh', 'authorized_keys'), labPublicKey, {mode: 0o600})
  const key = join(root, 'etc', 'ssh', 'ssh_host_ed25519_key')
  await must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${node.name}`, '-f', key])
  const fingerprint = (await must('ssh-keygen', ['-lf', `${key}.pub`])).split(' ')[1]
  const [type, body] = readFileSync(`${key}.pub`, 'utf8').trim().split(' ')
  return {hostKeyFingerprint: fingerprint, hostPublicKey: `${type} ${body}`}
}

/** Where the node finds Node.js: the admin host's binary, bind-mounted read-only. */
const NODE_BIN = '/usr/bin/node'

/**
 * systemd-nspawn arguments that give a node this checkout and Node.js, read-only: its xcluster
 * runs the admin host's build. A node_modules that is a symlink out of the checkout (worktrees)
 * is bound at its own path so the link resolves inside the node too.
 */
export function nodeBindArgs(repo: string = PACKAGE_ROOT): string[] {
  const root = realpathSync(repo)
  const args = [`--bind-ro=${realpathSync(process.execPath)}:${NODE_BIN}`, `--bind-ro=${root}:${settings.lab.repoMount}`]
  const modules = realpathSync(join(root, 'node_modules'))
  if (relative(root, modules).startsWith('..')) args.push(`--bind-ro=${modules}`)
  return args
}

/**
 * The xcluster wrapper, and the etcd-member and xcluster-serve units (installed, not enabled:
 * what runs is up to whoever configures the node). Debian's own etcd.service is masked: a
 * node's etcd member is ours.
 */
function installXclusterFiles(root: string): void {
  const wrapper = join(root, settings.serveUnit.bin)
  mkdirSync(join(wrapper, '..'), {recursive: true})
  writeFileSync(wrapper, renderTemplate('node/xcluster-wrapper.sh', {node: NODE_BIN, repo: settings.lab.repoMount}), {mode: 0o755})
  const units = join(root, 'etc', 'systemd', 'system')
  mkdirSync(units, {recursive: true})
  writeFileSync(join(units, 'etcd-member.service'), renderEtcdMemberUnit())
  writeFileSync(join(units, 'xcluster-serve.service'), renderServeUnit())
  rmSync(join(units, 'etcd.service'), {force: true})
  symlinkSync('/dev/null', join(units, 'etcd.service'))
  mkdirSync(join(root, 'etc', 'xcluster'), {recursive: true})
}

/** Boots the node in the background (its own session and cgroups); returns the boot loop's pid. */
export async function bootNode(paths: LabPaths, node: LabNodeSpec): Promise<number> {
  for (const dir of cgroupDirs(node.name)) mkdirSync(dir, {recursive: true})
  const pid = spawnDaemon(
    'bash',
    [join(TEMPLATES_DIR, 'lab', 'node-boot.sh'), node.name, paths.node(node.name).root, `/run/netns/${netnsName(node.name)}`, paths.pidFile(`nspawn-${node.name}`), ...nodeBindArgs()],
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
