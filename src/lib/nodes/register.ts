import {ExitStatus, XclusterError, usageError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {inRange, isHostAddress, parseCidr, parseIpv4} from '../spec/ipv4.js'
import {checkMac} from '../spec/mac.js'
import {TYPE_FROM_NAME_RULES, isNodeType, typeFromName} from '../spec/node-type.js'
import {guardSpecPointer, readForWrite} from '../spec/fold.js'
import type {ClusterSpec} from '../spec/types.js'
import type {MacBinding, NodeRecord, NodeType} from './record.js'

export interface NodeRegistration {
  name: string
  mac: string
  ip?: string
  type?: string
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

/** Checks a registration against the spec's network plan; every problem is a usage error (exit 2). */
export function checkRegistration(spec: ClusterSpec, reg: NodeRegistration): {name: string; mac: string; ip?: string; type: NodeType} {
  if (!DNS_LABEL.test(reg.name)) {
    throw usageError(`Invalid node name "${reg.name}".`, 'Use a DNS label: lower-case letters, digits and hyphens, e.g. c7.')
  }
  const mac = checkMac(reg.mac)
  if (!mac.ok) throw usageError(`--mac "${reg.mac}" ${mac.reason}.`, "Give the NIC's MAC as six hex pairs, e.g. --mac 02:58:43:00:02:07.")
  if (reg.type !== undefined && !isNodeType(reg.type)) {
    throw usageError(`--type "${reg.type}" is not a node type.`, 'Use one of: core, storage, compute, frontend.')
  }
  const type = (reg.type as NodeType | undefined) ?? typeFromName(reg.name)
  if (!type) throw usageError(`Cannot tell the type of node "${reg.name}" from its name.`, `Pass --type, or follow the naming rule: ${TYPE_FROM_NAME_RULES}.`)
  if (reg.ip !== undefined) {
    const subnet = parseCidr(spec.network.subnet)!
    const ip = parseIpv4(reg.ip)
    if (ip === undefined) throw usageError(`--ip "${reg.ip}" is not an IPv4 address.`, 'Give a dotted address, e.g. --ip 10.0.0.57.')
    if (!isHostAddress(ip, subnet)) throw usageError(`--ip ${reg.ip} is not a host address in the cluster subnet ${spec.network.subnet}.`, `Pick a free address inside ${spec.network.subnet}.`)
    const taken = [spec.network.gateway, spec.network.adminVip].includes(reg.ip)
    if (taken) throw usageError(`--ip ${reg.ip} is the gateway or the admin VIP.`, 'Pick another address.')
    const discovery = spec.network.ranges.discovery
    if (inRange(ip, {start: parseIpv4(discovery.start)!, end: parseIpv4(discovery.end)!})) {
      throw usageError(`--ip ${reg.ip} lies in the discovery range ${discovery.start}-${discovery.end}, which DHCP hands to unknown machines.`, 'Pick an address outside the discovery range.')
    }
  }
  return {name: reg.name, mac: mac.mac, type, ...(reg.ip ? {ip: reg.ip} : {})}
}

/**
 * Registers a node and its MAC in one create-only transaction. Registering the same node again
 * with the same MAC (and IP) is a no-op, so `node add` can be re-run; any other clash is refused
 * and nothing is written.
 */
export async function registerNode(store: EtcdStore, spec: ClusterSpec, reg: NodeRegistration): Promise<{node: NodeRecord; created: boolean}> {
  const wanted = checkRegistration(spec, reg)
  const view = await readForWrite(store, 'all')
  const nodes = view.nodes
  const existing = nodes.find((n) => n.name === wanted.name && n.state !== 'removed')
  if (existing) {
    if (existing.mac === wanted.mac && (wanted.ip === undefined || existing.ip === wanted.ip) && (reg.type === undefined || existing.type === wanted.type)) {
      return {node: existing, created: false}
    }
    throw new XclusterError(`Node ${wanted.name} is already registered with MAC ${existing.mac}${existing.ip ? `, IP ${existing.ip}` : ''} (type ${existing.type}).`, {
      code: 'NODE_EXISTS',
      exit: ExitStatus.usage,
      suggestion: `Change it in the spec and run config apply, or remove it first: xcluster node remove ${wanted.name}`,
    })
  }
  const macOwner = nodes.find((n) => n.mac === wanted.mac && n.state !== 'removed')
  if (macOwner) throw usageError(`MAC ${wanted.mac} already belongs to node ${macOwner.name}.`, "Check the MAC on the machine's label or console.")
  const ipOwner = wanted.ip ? nodes.find((n) => n.ip === wanted.ip && n.state !== 'removed') : undefined
  if (ipOwner) throw usageError(`IP ${wanted.ip} already belongs to node ${ipOwner.name}.`, 'Pick a free address.')

  const now = new Date().toISOString()
  const node: NodeRecord = {...wanted, state: 'registered', createdAt: now, updatedAt: now}
  const nodeKey = store.keys.node(wanted.name)
  const macKey = store.keys.mac(wanted.mac)
  const previous = view.stored.nodes.get(wanted.name)
  const txn = guardSpecPointer(store.transaction().ifAbsent(macKey), store, view)
  // A removed node's name can be reused: compare on the revision of the record just read.
  if (previous?.modRevision) txn.ifUnchanged(nodeKey, previous.modRevision)
  else txn.ifAbsent(nodeKey)
  const binding: MacBinding = {node: wanted.name}
  const ok = await txn.put(nodeKey, node).put(macKey, binding).commit()
  if (!ok) {
    throw new XclusterError(`Node ${wanted.name} or MAC ${wanted.mac} was registered by someone else meanwhile; nothing was written.`, {
      code: 'NODE_REGISTER_CONFLICT',
      exit: ExitStatus.precondition,
      suggestion: 'Check with: xcluster node list, then re-run.',
    })
  }
  return {node, created: true}
}
