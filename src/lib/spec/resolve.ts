import type {MacBinding, NodeRecord, NodeType} from '../nodes/record.js'
import type {ClusterSpec, NodeSpec} from './types.js'

/**
 * What a spec makes of the node registry (node records and MAC bindings), as pure functions: the
 * plan of `config apply` is the difference between the registry and this; the fold writes that
 * difference; and until the fold is done, readers see the registry with it applied (the overlay).
 * One function for all three, so what a reader sees mid-fold is what the fold leaves behind.
 */

/** A stored row: its value and the mod revision a write must compare (null: not stored, only overlaid). */
export interface RegistryRow<T> {
  value: T
  modRevision: string | null
}

/** A node the spec declares that the registry does not have yet. */
export interface NodeAddition {
  name: string
  type: NodeType
  mac: string
  ip: string | null
}

export interface FieldChange {
  field: 'type' | 'mac' | 'ip'
  from: string | null
  to: string | null
}

/** A node in both, whose type, MAC or IP differs; its state is kept. */
export interface NodeUpdate {
  name: string
  changes: FieldChange[]
  /** The record as it was (its state, history and timestamps are kept). */
  record: NodeRecord
  /** The record's mod revision: the write fails if it moved since. */
  modRevision: string | null
  /** What the spec says of the node. */
  node: NodeSpec
}

/** A node in the registry but not in the spec: left alone (removal is `node remove`'s job). */
export interface NodeNotInSpec {
  name: string
  type: NodeType
  mac: string
  state: string
}

export interface MacChange {
  mac: string
  /** Owner after the apply; null when the binding is removed. */
  node: string | null
  /** Owner before the apply; null when the binding is new. */
  previous: string | null
  /** The binding's mod revision; null when it did not exist (or was only overlaid). */
  modRevision: string | null
}

export interface SpecDiff {
  add: NodeAddition[]
  update: NodeUpdate[]
  notInSpec: NodeNotInSpec[]
  macs: MacChange[]
}

/** Node records by name, MAC bindings by MAC (canonical form). */
export interface Registry {
  nodes: Map<string, RegistryRow<NodeRecord>>
  macs: Map<string, RegistryRow<MacBinding>>
}

/** Whether applying the diff writes anything (nodes not in the spec are only reported). */
export const diffWrites = (diff: SpecDiff): boolean => diff.add.length > 0 || diff.update.length > 0 || diff.macs.length > 0

/**
 * What applying `spec` to the registry changes: new nodes, changed fields of existing ones (their
 * state kept), and MAC bindings: the spec's nodes own theirs; a binding to a node outside the
 * spec is left with that node; a binding pointing at a spec node that no longer has the MAC goes.
 * `only`: the one node a caller asks about (MAC bindings then left out).
 */
export function diffWithSpec(spec: ClusterSpec, registry: Registry, only?: string): SpecDiff {
  const nodes = only === undefined ? spec.nodes : spec.nodes.filter((n) => n.name === only)
  const add: NodeAddition[] = []
  const update: NodeUpdate[] = []
  for (const node of nodes) {
    const row = registry.nodes.get(node.name)
    if (!row) add.push({name: node.name, type: node.type, mac: node.mac, ip: node.ip ?? null})
    else {
      const changes = fieldChanges(row.value, node)
      if (changes.length > 0) update.push({name: node.name, changes, record: row.value, modRevision: row.modRevision, node})
    }
  }
  const wanted = new Set(spec.nodes.map((n) => n.name))
  const notInSpec =
    only === undefined ? [...registry.nodes.values()].filter((r) => !wanted.has(r.value.name)).map((r) => ({name: r.value.name, type: r.value.type, mac: r.value.mac, state: r.value.state})) : []
  const macs: MacChange[] = []
  if (only === undefined) {
    for (const node of spec.nodes) {
      const row = registry.macs.get(node.mac)
      if (!row) macs.push({mac: node.mac, node: node.name, previous: null, modRevision: null})
      else if (row.value.node !== node.name) macs.push({mac: node.mac, node: node.name, previous: row.value.node, modRevision: row.modRevision})
    }
    const specMacs = new Set(spec.nodes.map((n) => n.mac))
    for (const [mac, row] of registry.macs) {
      if (!specMacs.has(mac) && wanted.has(row.value.node)) macs.push({mac, node: null, previous: row.value.node, modRevision: row.modRevision})
    }
  }
  return {add, update, notInSpec, macs}
}

/** A node's first record: `registered`, stamped with the apply's time. */
export function newNodeRecord(node: NodeAddition, timestamp: string): NodeRecord {
  return {
    name: node.name,
    type: node.type,
    mac: node.mac,
    ...(node.ip === null ? {} : {ip: node.ip}),
    state: 'registered',
    createdAt: timestamp,
    updatedAt: timestamp,
  }
}

/** The record with the spec's type, MAC and IP; state, history and creation kept. */
export function updatedNodeRecord(record: NodeRecord, node: NodeSpec, timestamp: string): NodeRecord {
  const {ip: _oldIp, ...rest} = record
  return {...rest, type: node.type, mac: node.mac, ...(node.ip === undefined ? {} : {ip: node.ip}), updatedAt: timestamp}
}

/** The registry with the diff written over it: what readers see while the fold is unfinished. */
export function overlay(registry: Registry, diff: SpecDiff, timestamp: string): Registry {
  const nodes = new Map(registry.nodes)
  const macs = new Map(registry.macs)
  for (const n of diff.add) nodes.set(n.name, {value: newNodeRecord(n, timestamp), modRevision: null})
  for (const u of diff.update) nodes.set(u.name, {value: updatedNodeRecord(u.record, u.node, timestamp), modRevision: u.modRevision})
  for (const m of diff.macs) {
    if (m.node === null) macs.delete(m.mac)
    else macs.set(m.mac, {value: {node: m.node}, modRevision: m.modRevision})
  }
  return {nodes, macs}
}

function fieldChanges(record: NodeRecord, node: NodeSpec): FieldChange[] {
  const changes: FieldChange[] = []
  if (record.type !== node.type) changes.push({field: 'type', from: record.type, to: node.type})
  if (record.mac !== node.mac) changes.push({field: 'mac', from: record.mac, to: node.mac})
  if ((record.ip ?? null) !== (node.ip ?? null)) changes.push({field: 'ip', from: record.ip ?? null, to: node.ip ?? null})
  return changes
}
