import {existsSync} from 'node:fs'

import {bridgePortName, LAN_BRIDGE, LAN_NETNS, netnsName} from './paths.js'
import {must, run} from './system.js'

/** One host's link on the lab LAN. */
export interface LanLink {
  host: string
  mac: string
  /** With prefix, e.g. 10.0.0.2/24; absent for nodes served by DHCP later. */
  cidr?: string
  /** Default route for addressed nodes; the admin host needs none. */
  gateway?: string
}

const ip = (...args: string[]) => must('ip', args, {code: 'LAB_NETWORK_FAILED'})

/**
 * The lab LAN: a bridge in its own namespace and, per host, a namespace whose eth0 is one end of
 * a veth pair created directly inside the namespaces. Nothing is added to the root namespace.
 */
export async function createLan(links: LanLink[]): Promise<void> {
  await ip('netns', 'add', LAN_NETNS)
  await ip('-n', LAN_NETNS, 'link', 'set', 'lo', 'up')
  await ip('-n', LAN_NETNS, 'link', 'add', LAN_BRIDGE, 'type', 'bridge')
  // No STP/forward delay: ports forward as soon as they are up.
  await ip('-n', LAN_NETNS, 'link', 'set', LAN_BRIDGE, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0')
  await ip('-n', LAN_NETNS, 'link', 'set', LAN_BRIDGE, 'up')
  await Promise.all(links.map(attachHost))
}

async function attachHost(link: LanLink): Promise<void> {
  const ns = netnsName(link.host)
  const port = bridgePortName(link.host)
  await ip('netns', 'add', ns)
  await ip('-n', ns, 'link', 'set', 'lo', 'up')
  await ip('link', 'add', port, 'netns', LAN_NETNS, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
  await ip('-n', LAN_NETNS, 'link', 'set', port, 'master', LAN_BRIDGE, 'up')
  await ip('-n', ns, 'link', 'set', 'eth0', 'address', link.mac, 'up')
  if (link.cidr) {
    await ip('-n', ns, 'addr', 'add', link.cidr, 'dev', 'eth0')
    if (link.gateway) await ip('-n', ns, 'route', 'add', 'default', 'via', link.gateway, 'dev', 'eth0')
  }
}

/** Every xc-* namespace on the machine (ours by naming convention). */
export async function labNamespaces(): Promise<string[]> {
  const res = await run('ip', ['netns', 'list'])
  return res.stdout
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith('xc-'))
}

export async function deleteNamespace(ns: string): Promise<void> {
  await run('ip', ['netns', 'del', ns])
  if (existsSync(`/run/netns/${ns}`)) {
    // Still mounted (a process kept it busy): detach lazily and remove the file.
    await run('umount', ['-l', `/run/netns/${ns}`])
    await run('rm', ['-f', `/run/netns/${ns}`])
  }
}

/** Processes living in a namespace (`ip netns pids`). */
export async function namespacePids(ns: string): Promise<number[]> {
  const res = await run('ip', ['netns', 'pids', ns])
  return res.stdout.split(/\s+/).filter(Boolean).map(Number)
}
