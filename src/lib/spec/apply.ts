import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import type {MacBinding, NodeRecord, NodeType} from '../nodes/record.js'
import {settings} from '../settings.js'
import type {ClusterSpec, NodeSpec} from './types.js'

/** A node the spec declares that etcd does not have yet. */
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
  /** The stored record when planned (its state and timestamps are kept). */
  record: NodeRecord
  /** The record's mod revision when planned: the apply fails if it moved since. */
  modRevision: string
}

/** A node in etcd but not in the spec: apply leaves it alone (removal is `node remove`'s job). */
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
  /** The binding's mod revision when planned; null when it did not exist. */
  modRevision: string | null
}

/** The difference between etcd and a spec, and the revisions it was computed against. */
export interface ApplyPlan {
  cluster: string
  spec: ClusterSpec
  specChanged: boolean
  /** Mod revision of the stored spec when planned; null when no spec was stored. */
  specRevision: string | null
  add: NodeAddition[]
  update: NodeUpdate[]
  notInSpec: NodeNotInSpec[]
  macs: MacChange[]
  /** False when etcd already matches the spec: applying would write nothing. */
  changed: boolean
}

/** Reads the spec, nodes and MAC bindings from etcd and computes what applying `spec` changes. */
export async function planApply(store: EtcdStore, spec: ClusterSpec): Promise<ApplyPlan> {
  if (spec.cluster !== store.keys.cluster) {
    throw new XclusterError(`The spec is for cluster "${spec.cluster}" but the command targets cluster "${store.keys.cluster}".`, {
      code: 'CLUSTER_MISMATCH',
      exit: ExitStatus.usage,
      suggestion: `Re-run with --cluster ${spec.cluster}, or change cluster: in the spec.`,
    })
  }
  const [stored, nodeRows, macRows] = await Promise.all([
    store.getJson<ClusterSpec>(store.keys.spec()),
    store.listJson<NodeRecord>(store.keys.nodesPrefix()),
    store.listJson<MacBinding>(store.keys.macsPrefix()),
  ])
  const existing = new Map(nodeRows.map((r) => [r.value.name, r]))
  const wanted = new Map(spec.nodes.map((n) => [n.name, n]))

  const add: NodeAddition[] = []
  const update: NodeUpdate[] = []
  for (const node of spec.nodes) {
    const row = existing.get(node.name)
    if (!row) add.push({name: node.name, type: node.type, mac: node.mac, ip: node.ip ?? null})
    else {
      const changes = fieldChanges(row.value, node)
      if (changes.length > 0) update.push({name: node.name, changes, record: row.value, modRevision: row.modRevision})
    }
  }
  const notInSpec = nodeRows.filter((r) => !wanted.has(r.value.name)).map((r) => ({name: r.value.name, type: r.value.type, mac: r.value.mac, state: r.value.state}))

  // MAC bindings: the spec's nodes own theirs; a binding to a node outside the spec is left
  // with that node. A binding pointing at a spec node that no longer has the MAC is removed.
  const macs: MacChange[] = []
  const bound = new Map(macRows.map((r) => [store.keys.macFromKey(r.key), r]))
  for (const node of spec.nodes) {
    const row = bound.get(node.mac)
    if (!row) macs.push({mac: node.mac, node: node.name, previous: null, modRevision: null})
    else if (row.value.node !== node.name) macs.push({mac: node.mac, node: node.name, previous: row.value.node, modRevision: row.modRevision})
  }
  const specMacs = new Set(spec.nodes.map((n) => n.mac))
  for (const [mac, row] of bound) {
    if (!specMacs.has(mac) && wanted.has(row.value.node)) {
      macs.push({mac, node: null, previous: row.value.node, modRevision: row.modRevision})
    }
  }

  const specChanged = !stored || canonicalJson(stored.value) !== canonicalJson(spec)
  return {
    cluster: spec.cluster,
    spec,
    specChanged,
    specRevision: stored?.modRevision ?? null,
    add,
    update,
    notInSpec,
    macs,
    changed: specChanged || add.length > 0 || update.length > 0 || macs.length > 0,
  }
}

/** Does the plan change what is already registered (a node's fields, a MAC's binding)? Such an apply asks first. */
export function changesRegistered(plan: ApplyPlan): boolean {
  return plan.update.length > 0 || plan.macs.some((m) => m.previous !== null)
}

/**
 * Writes a plan in ONE etcd transaction, guarded by the revisions it was planned against: if
 * anything moved in between, nothing is written and APPLY_CONFLICT is thrown. A plan without
 * changes writes nothing. Existing nodes keep their state; new ones start `registered`.
 */
export async function applyPlan(store: EtcdStore, plan: ApplyPlan, now = new Date()): Promise<void> {
  if (!plan.changed) return
  const txn = store.transaction()
  const keys = store.keys
  const timestamp = now.toISOString()

  if (plan.specRevision === null) txn.ifAbsent(keys.spec())
  else txn.ifUnchanged(keys.spec(), plan.specRevision)
  if (plan.specChanged) txn.put(keys.spec(), plan.spec)

  const byName = new Map(plan.spec.nodes.map((n) => [n.name, n]))
  for (const node of plan.add) {
    const record: NodeRecord = {
      name: node.name,
      type: node.type,
      mac: node.mac,
      ...(node.ip === null ? {} : {ip: node.ip}),
      state: 'registered',
      createdAt: timestamp,
      updatedAt: timestamp,
    }
    txn.ifAbsent(keys.node(node.name)).put(keys.node(node.name), record)
  }
  for (const node of plan.update) {
    txn.ifUnchanged(keys.node(node.name), node.modRevision)
    txn.put(keys.node(node.name), updatedRecord(node.record, byName.get(node.name) as NodeSpec, timestamp))
  }
  for (const change of plan.macs) {
    if (change.modRevision === null) txn.ifAbsent(keys.mac(change.mac))
    else txn.ifUnchanged(keys.mac(change.mac), change.modRevision)
    if (change.node === null) txn.delete(keys.mac(change.mac))
    else txn.put(keys.mac(change.mac), {node: change.node} satisfies MacBinding)
  }

  if (txn.size > settings.etcdMaxTxnOps || txn.compareCount > settings.etcdMaxTxnOps) {
    throw new XclusterError(`Applying this spec needs ${Math.max(txn.size, txn.compareCount)} operations in one etcd transaction; etcd allows ${settings.etcdMaxTxnOps} (--max-txn-ops).`, {
      code: 'APPLY_TOO_LARGE',
      exit: ExitStatus.precondition,
      suggestion: "Apply the spec in smaller steps (add fewer nodes per apply), or raise etcd's --max-txn-ops and settings.etcdMaxTxnOps together.",
      details: {operations: txn.size, compares: txn.compareCount, limit: settings.etcdMaxTxnOps},
    })
  }
  // Idempotent: when a commit's answer is lost and call() retries it, the retry's compares fail
  // against our own write; finding every written value in place means the apply did commit.
  if (!(await txn.commitIdempotent())) {
    throw new XclusterError('etcd changed while the apply was being planned: another writer changed the spec, a node or a MAC binding. Nothing was written.', {
      code: 'APPLY_CONFLICT',
      exit: ExitStatus.precondition,
      suggestion: 'Re-run config apply: it plans again against the current state.',
    })
  }
}

function fieldChanges(record: NodeRecord, node: NodeSpec): FieldChange[] {
  const changes: FieldChange[] = []
  if (record.type !== node.type) changes.push({field: 'type', from: record.type, to: node.type})
  if (record.mac !== node.mac) changes.push({field: 'mac', from: record.mac, to: node.mac})
  if ((record.ip ?? null) !== (node.ip ?? null)) changes.push({field: 'ip', from: record.ip ?? null, to: node.ip ?? null})
  return changes
}

function updatedRecord(record: NodeRecord, node: NodeSpec, timestamp: string): NodeRecord {
  const {ip: _oldIp, ...rest} = record
  return {...rest, type: node.type, mac: node.mac, ...(node.ip === undefined ? {} : {ip: node.ip}), updatedAt: timestamp}
}

/** JSON with sorted keys, so a stored spec compares equal however its keys were ordered. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : v,
  )
}
