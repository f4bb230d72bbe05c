import type {ApplyPlan, FieldChange, MacChange, NodeAddition, NodeNotInSpec} from './apply.js'

/** The `--json` result of `config apply`: the plan without its internal revisions. */
export interface ApplyResult {
  file: string
  cluster: string
  dryRun: boolean
  /** True when the transaction was committed. */
  applied: boolean
  changed: boolean
  specChanged: boolean
  add: NodeAddition[]
  update: {name: string; changes: FieldChange[]}[]
  notInSpec: NodeNotInSpec[]
  macs: Omit<MacChange, 'modRevision'>[]
}

export function applyResult(plan: ApplyPlan, file: string, options: {dryRun: boolean; applied: boolean}): ApplyResult {
  return {
    file,
    cluster: plan.cluster,
    dryRun: options.dryRun,
    applied: options.applied,
    changed: plan.changed,
    specChanged: plan.specChanged,
    add: plan.add,
    update: plan.update.map((u) => ({name: u.name, changes: u.changes})),
    notInSpec: plan.notInSpec,
    macs: plan.macs.map(({mac, node, previous}) => ({mac, node, previous})),
  }
}

const show = (value: string | null): string => value ?? '(none)'

/** The plan as a diff: `+` added, `~` changed, `-` removed or not in the spec (left as is). */
export function describePlan(plan: ApplyPlan): string[] {
  const lines: string[] = []
  if (plan.specChanged) lines.push(plan.specRevision === null ? '+ spec (first apply)' : '~ spec (changed)')
  for (const n of plan.add) lines.push(`+ node ${n.name}: ${n.type}, mac ${n.mac}, ip ${n.ip ?? 'dhcp'}`)
  for (const u of plan.update) {
    lines.push(`~ node ${u.name}: ${u.changes.map((c) => `${c.field} ${show(c.from)} -> ${show(c.to)}`).join(', ')} (state ${u.record.state} kept)`)
  }
  for (const m of plan.macs) {
    if (m.previous === null) lines.push(`+ mac ${m.mac} -> ${m.node}`)
    else if (m.node === null) lines.push(`- mac ${m.mac} (was ${m.previous})`)
    else lines.push(`~ mac ${m.mac}: ${m.previous} -> ${m.node}`)
  }
  for (const n of plan.notInSpec) {
    lines.push(`- node ${n.name}: not in spec, left as is (${n.state}); apply never deletes nodes, remove it with: xcluster node remove ${n.name}`)
  }
  return lines
}
