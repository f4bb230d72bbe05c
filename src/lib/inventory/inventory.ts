/**
 * Ansible's dynamic-inventory JSON (the `--list` / `--host` protocol of script inventories, which
 * the xcluster inventory plugin reads too), built from one snapshot of etcd. Pure: no I/O.
 */
import {homedir} from 'node:os'

import type {Lease} from '../dhcp/lease.js'
import {preconditionError} from '../errors.js'
import {managementAddress} from '../nodes/address.js'
import {NODE_STATES, NODE_TYPES, type NodeRecord, type NodeState, type NodeType} from '../nodes/record.js'
import type {ClusterSpec} from '../spec/types.js'

/**
 * One host's variables. Ansible's own (`ansible_*`) say how to reach it, exactly as xcluster's
 * SSH does; the `xcluster_*` ones mirror `node list --json` so a playbook can choose by them.
 */
export interface InventoryHostVars {
  /** The address xcluster reaches the node at: fixed IP, else its DHCP lease, else IPv6 link-local on the LAN interface. */
  ansible_host: string
  ansible_user: string
  ansible_ssh_private_key_file: string
  xcluster_type: NodeType
  xcluster_mac: string
  /** The fixed IP from the spec (null: served by DHCP). */
  xcluster_ip: string | null
  /** The address DHCP leases to the node's MAC now (bound, unexpired), for a node without a fixed IP. */
  xcluster_leased_ip?: string
  xcluster_state: NodeState
  /** Why the node is failed, draining or drained. */
  xcluster_reason?: string
  /** True only in state `ready`: `when: xcluster_ready` (or `hosts: state_ready`) skips the rest. */
  xcluster_ready: boolean
}

export interface AnsibleGroup {
  hosts: string[]
  children?: string[]
}

export interface AnsibleMeta {
  hostvars: Record<string, InventoryHostVars>
}

/**
 * `--list`: every group with its hosts, `all` with every group as a child, and `_meta.hostvars`
 * so Ansible never calls `--host` once per node.
 */
export interface AnsibleInventory {
  _meta: AnsibleMeta
  all: AnsibleGroup
  [group: string]: AnsibleGroup | AnsibleMeta
}

/** What the inventory is built from: one consistent read of etcd. */
export interface InventorySource {
  spec: ClusterSpec | undefined
  nodes: readonly NodeRecord[]
  leases: readonly Lease[]
  /** Leases are judged at this time (ms since the epoch). */
  now: number
}

export interface InventoryAccess {
  /** The operator's private key (`--ssh-key`); default the spec's `ssh.key`. */
  sshKey?: string
  /** Nodes without an IPv4 address are reached by link-local IPv6 on this interface. */
  lanInterface: string
}

/** Group of the nodes in a state: `state_ready`, `state_drained`, ... */
export const stateGroup = (state: NodeState): string => `state_${state}`

/** The states a node of the inventory can be in: a removed node has left the cluster (and its pin was freed). */
export const INVENTORY_STATES: readonly NodeState[] = NODE_STATES.filter((s) => s !== 'removed')

const expandHome = (path: string): string => (path.startsWith('~/') ? `${homedir()}${path.slice(1)}` : path)

/** SPEC_NOT_FOUND, as every reader of the stored spec says it. */
export const specNotFound = (cluster: string) => preconditionError('SPEC_NOT_FOUND', `No cluster spec is stored for cluster "${cluster}".`, 'Store one with: xcluster config apply -f xcluster.yaml')

/**
 * The inventory of every node `node list` shows but the removed ones, in etcd's key order. Type
 * groups are always there (a playbook for `frontend` means the same with none yet); a state
 * group only while a node is in that state, as Ansible's keyed groups do.
 */
export function buildInventory(source: InventorySource, access: InventoryAccess, cluster: string): AnsibleInventory {
  const spec = source.spec
  if (!spec) throw specNotFound(cluster)
  const leased = new Map(source.leases.filter((l) => l.state === 'bound' && Date.parse(l.expiresAt) > source.now).map((l) => [l.mac, l.ip]))
  const hostvars: Record<string, InventoryHostVars> = {}
  const groups = new Map<string, string[]>([['ungrouped', []], ...NODE_TYPES.map((t): [string, string[]] => [t, []])])
  for (const node of source.nodes) {
    if (node.state === 'removed') continue
    const leasedIp = node.ip ? undefined : leased.get(node.mac)
    hostvars[node.name] = {
      ansible_host: managementAddress({mac: node.mac, ip: node.ip ?? leasedIp}, access.lanInterface),
      ansible_user: spec.ssh.user,
      ansible_ssh_private_key_file: expandHome(access.sshKey ?? spec.ssh.key),
      xcluster_type: node.type,
      xcluster_mac: node.mac,
      xcluster_ip: node.ip ?? null,
      ...(leasedIp ? {xcluster_leased_ip: leasedIp} : {}),
      xcluster_state: node.state,
      ...(node.reason ? {xcluster_reason: node.reason} : {}),
      xcluster_ready: node.state === 'ready',
    }
    groups.get(node.type)?.push(node.name)
    const byState = stateGroup(node.state)
    groups.set(byState, [...(groups.get(byState) ?? []), node.name])
  }
  // Lifecycle order for the state groups, whatever order the nodes came in.
  const order = ['ungrouped', ...NODE_TYPES, ...INVENTORY_STATES.map(stateGroup)].filter((g) => groups.has(g))
  const inventory: AnsibleInventory = {_meta: {hostvars}, all: {hosts: [], children: order}}
  for (const name of order) inventory[name] = {hosts: groups.get(name)!}
  return inventory
}

/** `--host NAME`: the node's variables; NODE_NOT_FOUND (exit 3) for a name the inventory does not hold. */
export function inventoryHost(inventory: AnsibleInventory, name: string, removed: readonly string[] = []): InventoryHostVars {
  const vars = Object.hasOwn(inventory._meta.hostvars, name) ? inventory._meta.hostvars[name] : undefined
  if (!vars) {
    const why = removed.includes(name) ? `Node "${name}" was removed from the cluster; the inventory holds only its current nodes.` : `No node named "${name}" in the inventory.`
    throw preconditionError('NODE_NOT_FOUND', why, 'See the hosts it holds with: xcluster inventory --list (or xcluster node list)')
  }
  return vars
}
