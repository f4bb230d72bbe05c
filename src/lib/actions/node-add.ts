import type {EtcdStore} from '../etcd/store.js'
import {usageError} from '../errors.js'
import {transitionNode} from '../nodes/lifecycle.js'
import {pinEnlistedHostKeys} from '../nodes/enlistment.js'
import type {NodeRecord} from '../nodes/record.js'
import {NodeRegistry} from '../nodes/registry.js'
import {checkRegistration, registerNode} from '../nodes/register.js'
import {agentConfigPhase} from '../phases/agent-config.js'
import {connectPhase} from '../phases/connect.js'
import {identityPhase} from '../phases/identity.js'
import {markProvisioningPhase, markReadyPhase} from '../phases/mark-state.js'
import {packageProxyPhase} from '../phases/package-proxy.js'
import {packagesPhase} from '../phases/packages.js'
import {nodePreflight} from '../phases/preflight.js'
import {servicesPhase} from '../phases/services.js'
import {timeSyncPhase} from '../phases/time-sync.js'
import {readStoredSpec} from '../spec/store.js'
import {HostKeyStore} from '../ssh/index.js'
import {assertRunSucceeded, type RunSummary} from '../tasks/runner.js'
import {runOnNodes, type NodeActionOptions} from './node-run.js'

/** `node add`: what provisioning does to a node, in order. */
export const NODE_ADD_PHASES = [connectPhase, nodePreflight, markProvisioningPhase, identityPhase, packageProxyPhase, packagesPhase, timeSyncPhase, agentConfigPhase, servicesPhase, markReadyPhase]

export interface NodeAddRequest extends NodeActionOptions {
  names: string[]
  /** A new node: its MAC (and optionally IP and type); only with one name. */
  mac?: string
  ip?: string
  type?: string
  provision: boolean
  /** A fingerprint from the node's own registration, pinned before the first connection. */
  hostKey?: string
}

export interface NodeAddResult {
  /** Nodes newly registered (or, in dry-run, that would be). */
  registered: string[]
  pinned: string[]
  run?: RunSummary
}

/** `node add`: register (when --mac is given), pin a known host key, then provision. */
export async function addNodes(store: EtcdStore, request: NodeAddRequest): Promise<NodeAddResult> {
  if (request.mac && request.names.length !== 1)
    throw usageError('--mac registers one node: give exactly one NAME with it.', 'Register nodes one at a time, or list them in the spec and run config apply.')
  if (request.hostKey && request.names.length !== 1) throw usageError("--host-key pins one node's key: give exactly one NAME with it.")
  const spec = await readStoredSpec(store)
  const result: NodeAddResult = {registered: [], pinned: []}
  const pending: NodeRecord[] = []
  const [name] = request.names
  if (request.mac) {
    const registration = {name, mac: request.mac, ip: request.ip, type: request.type}
    if (request.dryRun) {
      const checked = checkRegistration(spec, registration)
      const existing = await new NodeRegistry(store).get(name)
      if (!existing) {
        pending.push({...checked, state: 'registered', createdAt: '', updatedAt: ''})
        result.registered.push(name)
      }
    } else if ((await registerNode(store, spec, registration)).created) {
      result.registered.push(name)
    }
  }
  if (request.hostKey) {
    const pins = new HostKeyStore(store)
    if (!request.dryRun && (await pins.pin(name, request.hostKey, 'registration')).created) result.pinned.push(name)
  }
  if (!request.provision) return result
  // A node that enlisted (reported its host keys from its DHCP address) is pinned to those keys.
  const registry = new NodeRegistry(store)
  for (const n of request.names) {
    const node = await registry.get(n)
    if (node && (await pinEnlistedHostKeys(store, node, request.dryRun === true)).length > 0 && !result.pinned.includes(n)) result.pinned.push(n)
  }
  result.run = await provisionNodes(store, request.names, request, pending)
  assertRunSucceeded(result.run)
  return result
}

/** Provisions registered nodes over SSH; failed hosts end in state `failed` with the reason. */
export async function provisionNodes(store: EtcdStore, names: string[], options: NodeActionOptions, pending: NodeRecord[] = []): Promise<RunSummary> {
  const {summary} = await runOnNodes(store, 'node add', names, NODE_ADD_PHASES, options, pending)
  if (!options.dryRun) {
    for (const outcome of summary.hosts) {
      if (!outcome.failure) continue
      const reason = `${outcome.failure.phase}: ${outcome.failure.message}`
      // A node that failed before it was marked provisioning keeps its state but still says why.
      await transitionNode(store, outcome.name, 'failed', {from: ['registered', 'provisioning', 'ready'], reason}).catch(() => undefined)
    }
  }
  return summary
}
