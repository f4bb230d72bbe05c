import {nodeHosts} from '../actions/node-run.js'
import {preconditionError, usageError, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import type {NodeRecord} from '../nodes/record.js'
import {NodeRegistry} from '../nodes/registry.js'
import {commandLine} from '../output/command-line.js'
import {readStoredSpec} from '../spec/store.js'
import {HostPool} from '../ssh/index.js'
import {CephCli, DEFAULT_CEPH_BACKEND} from './cli.js'

/** Which node to ask and how to reach it. */
export interface CephAccess {
  /** `--node`: ask this node; without it, the first ready core or storage node whose Ceph answers. */
  node?: string
  /** Private key path; defaults to the spec's `ssh.key`. */
  keyPath?: string
  lanInterface?: string
}

/** A node's ceph/rbd CLIs for the length of one command; close() ends its SSH connection. */
export interface CephSession {
  cli: CephCli
  close(): Promise<void>
}

/** Core nodes first, then storage nodes, each by name: the nodes that run Ceph's daemons. */
export function adminCandidates(nodes: readonly NodeRecord[]): NodeRecord[] {
  const rank = (n: NodeRecord) => (n.type === 'core' ? 0 : 1)
  return nodes.filter((n) => n.state === 'ready' && (n.type === 'core' || n.type === 'storage')).sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name))
}

/**
 * Opens the ceph/rbd CLIs of the node to ask (as cephadm's shell runs on an admin host): the one
 * named, else the first ready core or storage node whose Ceph answers `ceph fsid`. An unknown
 * --node is a usage error (exit 2); no node answering is CEPH_UNAVAILABLE (exit 3), with each
 * node's reason.
 */
export async function openCeph(store: EtcdStore, access: CephAccess): Promise<CephSession> {
  const spec = await readStoredSpec(store)
  const backend = spec.ceph?.backend ?? DEFAULT_CEPH_BACKEND
  const nodes = await new NodeRegistry(store).list()
  if (access.node !== undefined && !nodes.some((n) => n.name === access.node)) {
    throw usageError(
      `Unknown node ${JSON.stringify(access.node)} for --node.`,
      `Name one of the cluster's nodes, or leave --node out to ask the first ready core or storage node; the nodes: ${commandLine(['node', 'list'])}`,
      {node: access.node},
    )
  }
  const candidates = access.node === undefined ? adminCandidates(nodes).map((n) => n.name) : [access.node]
  if (candidates.length === 0) {
    throw preconditionError('CEPH_NO_ADMIN_NODE', 'No ready core or storage node to ask for Ceph.', `See the nodes and their states: ${commandLine(['node', 'list'])}`)
  }
  // A candidate that does not answer is passed over quickly: one retry, not a provisioning's five.
  const pool = new HostPool(access.node === undefined ? {retries: 1} : {})
  const sshAccess = {acceptNewHostKey: false, ...(access.keyPath ? {keyPath: access.keyPath} : {}), ...(access.lanInterface ? {lanInterface: access.lanInterface} : {})}
  const reasons: {node: string; reason: string}[] = []
  try {
    for (const name of candidates) {
      try {
        const {hosts} = await nodeHosts(store, spec, [name], sshAccess)
        const cli = new CephCli(await pool.get(hosts[0]!.target), backend)
        // With --node, the command's own first call says what is wrong there.
        if (access.node !== undefined) return {cli, close: () => pool.closeAll()}
        const probe = await cli.exec({tool: 'ceph', args: ['fsid']})
        if (probe.code === 0) return {cli, close: () => pool.closeAll()}
        reasons.push({node: name, reason: `${cli.line({tool: 'ceph', args: ['fsid']})}: ${(probe.stderr || probe.stdout).trim().split('\n').pop() ?? `exit ${probe.code}`}`})
      } catch (error) {
        if (access.node !== undefined) throw error
        reasons.push({node: name, reason: error instanceof XclusterError ? error.message : String(error)})
      }
      await pool.drop(name)
    }
  } catch (error) {
    await pool.closeAll()
    throw error
  }
  await pool.closeAll()
  throw preconditionError(
    'CEPH_UNAVAILABLE',
    `No node's Ceph (${backend}) answered:\n${reasons.map((r) => `  ${r.node}: ${r.reason}`).join('\n')}`,
    `Check Ceph on the nodes (the spec's ceph.backend is ${backend}), or name the one to ask with --node; the nodes: ${commandLine(['node', 'list'])}`,
    {backend, nodes: reasons},
  )
}
