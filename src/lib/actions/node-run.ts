import {homedir} from 'node:os'

import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {leasedAddress} from '../dhcp/leases.js'
import {managementAddress} from '../nodes/address.js'
import type {NodeRecord} from '../nodes/record.js'
import {NodeRegistry} from '../nodes/registry.js'
import {NodeRunContext, type NodeHost} from '../phases/context.js'
import {settings} from '../settings.js'
import type {ClusterSpec} from '../spec/types.js'
import {readStoredSpec} from '../spec/store.js'
import {HostKeyStore, HostPool} from '../ssh/index.js'
import {RunJournal} from '../tasks/journal.js'
import type {Phase} from '../tasks/phase.js'
import {runPhases, type ProgressMode, type RunSummary} from '../tasks/runner.js'

export interface SshAccess {
  /** Private key path; defaults to the spec's `ssh.key`. */
  keyPath?: string
  acceptNewHostKey: boolean
  /** The admin host's NIC on the cluster LAN: nodes without IPv4 are reached by link-local IPv6 on it. */
  lanInterface?: string
}

const expandHome = (path: string): string => (path.startsWith('~/') ? `${homedir()}${path.slice(1)}` : path)

/** Loads the named nodes (all must exist) and how to reach each over SSH with its pinned key. */
export async function nodeHosts(store: EtcdStore, spec: ClusterSpec, names: string[], access: SshAccess, pending: NodeRecord[] = []): Promise<{hosts: NodeHost[]; cluster: NodeRecord[]}> {
  // `pending`: nodes a dry run would register, so the plan can show their provisioning too.
  const registered = [...(await new NodeRegistry(store).list()).filter((n) => !pending.some((p) => p.name === n.name)), ...pending]
  // Nodes without a fixed IP go by the address DHCP leased them (for SSH, /etc/hosts, agent config).
  const cluster = await Promise.all(
    registered.map(async (n) => {
      const leased = n.ip ? undefined : await leasedAddress(store, n.mac)
      return leased ? {...n, ip: leased} : n
    }),
  )
  const byName = new Map(cluster.map((n) => [n.name, n]))
  const unknown = names.filter((n) => !byName.has(n))
  if (unknown.length > 0) {
    throw new XclusterError(`Unknown node${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}.`, {
      code: 'NODE_NOT_FOUND',
      exit: ExitStatus.precondition,
      suggestion: 'Register a new node by giving its MAC with --mac (and --ip for a fixed address), or list the known nodes: xcluster node list',
    })
  }
  const pins = new HostKeyStore(store)
  const hosts: NodeHost[] = []
  for (const name of names) {
    const node = byName.get(name)!
    const pinned = (await pins.get(name))?.fingerprints
    hosts.push({
      name,
      node: registered.find((n) => n.name === name)!,
      ...(node.ip ? {ip: node.ip} : {}),
      target: {
        name,
        address: managementAddress(node, access.lanInterface ?? settings.lanInterface),
        user: spec.ssh.user,
        privateKeyPath: expandHome(access.keyPath ?? spec.ssh.key),
        hostKey: {pinned, acceptNewHostKey: access.acceptNewHostKey && !pinned},
      },
    })
  }
  return {hosts, cluster}
}

/** How a node action runs: SSH access plus the task runner's options. */
export interface NodeActionOptions extends SshAccess {
  dryRun: boolean
  concurrency: number
  progress: ProgressMode
  resume?: string
  args: string[]
  /** `node drain --force`: drain even where Ceph could not keep every replica without the node. */
  force?: boolean
  /** Once any host failed, no later phase starts on any host (steps on different hosts that depend on each other's order). */
  stopAtFirstFailure?: boolean
}

/**
 * Runs phases on the named nodes with one pooled SSH connection per node and a journal in etcd.
 * Returns the summary and the run's context (what the phases learned: facts, holdings).
 */
export async function runOnNodes(
  store: EtcdStore,
  action: string,
  names: string[],
  phases: Phase<NodeHost, NodeRunContext>[],
  options: NodeActionOptions,
  pending: NodeRecord[] = [],
): Promise<{summary: RunSummary; ctx: NodeRunContext}> {
  const spec = await readStoredSpec(store)
  const {hosts, cluster} = await nodeHosts(store, spec, names, options, pending)
  const pool = new HostPool()
  try {
    const ctx = new NodeRunContext(hosts, options.dryRun, store, spec, cluster, pool, new HostKeyStore(store))
    ctx.force = options.force ?? false
    const summary = await runPhases(phases, ctx, {
      action,
      args: options.args,
      concurrency: options.concurrency,
      progress: options.progress,
      journal: new RunJournal(store),
      resume: options.resume,
      stopAtFirstFailure: options.stopAtFirstFailure,
    })
    return {summary, ctx}
  } finally {
    await pool.closeAll()
  }
}
