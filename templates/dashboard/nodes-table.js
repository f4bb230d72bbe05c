// The node table, made for 1,000 nodes and more: one row element per node, kept across updates
// (only the cells of a node that changed are touched), and filtering or sorting only reorders
// the existing rows. A push that changes one node changes one row.
import {h, setText} from './dom.js'

/** Lifecycle order, as `xcluster status` lists states. */
const STATES = ['registered', 'discovered', 'provisioning', 'ready', 'draining', 'drained', 'removed', 'failed']
/** States that need no one: "Needs attention" shows the rest. */
const SETTLED = new Set(['ready', 'removed'])
const ATTENTION = '!attention'

const collator = new Intl.Collator('en', {numeric: true})

/** IPv4 as a sortable number; anything else after every IPv4 address. */
function ipRank(ip) {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip ?? '')
  return m ? ((+m[1] * 256 + +m[2]) * 256 + +m[3]) * 256 + +m[4] : Number.MAX_SAFE_INTEGER
}

const address = (n) => n.ip ?? n.leasedIp ?? ''

/** Every row is a clone of this one: cloning is several times quicker than building 7 elements per node. */
let prototypeRow
const newRow = () =>
  (prototypeRow ??= h(
    'tr',
    {},
    h('td', {className: 'name'}),
    h('td'),
    h('td', {}, h('span', {className: 'badge'})),
    h('td', {className: 'mono'}),
    h('td', {className: 'mono'}),
    h('td', {className: 'reason'}),
  )).cloneNode(true)

const COMPARE = {
  name: (a, b) => collator.compare(a.name, b.name),
  type: (a, b) => collator.compare(a.type, b.type) || collator.compare(a.name, b.name),
  state: (a, b) => STATES.indexOf(a.state) - STATES.indexOf(b.state) || collator.compare(a.name, b.name),
  ip: (a, b) => ipRank(address(a)) - ipRank(address(b)) || collator.compare(address(a), address(b)) || collator.compare(a.name, b.name),
  mac: (a, b) => collator.compare(a.mac, b.mac),
}

export class NodesTable {
  /** @param {{tbody: HTMLElement, filter: HTMLInputElement, state: HTMLSelectElement, count: HTMLElement, empty: HTMLElement, sortButtons: NodeListOf<HTMLButtonElement>}} els */
  constructor(els) {
    this.els = els
    /** name -> {node, key, tr, text} */
    this.rows = new Map()
    this.shown = []
    this.sort = {by: 'name', dir: 1}
    this.terms = []
    this.stateFilter = ''
    this.stateCounts = ''
    let pending = 0
    els.filter.addEventListener('input', () => {
      // One pass per frame however fast the operator types.
      cancelAnimationFrame(pending)
      pending = requestAnimationFrame(() => {
        this.terms = els.filter.value.toLowerCase().split(/\s+/).filter(Boolean)
        this.apply()
      })
    })
    els.state.addEventListener('change', () => {
      this.stateFilter = els.state.value
      this.apply()
    })
    for (const b of els.sortButtons) {
      b.addEventListener('click', () => {
        const by = b.dataset.sort
        this.sort = {by, dir: this.sort.by === by ? -this.sort.dir : 1}
        this.apply()
      })
    }
  }

  /** Shows only nodes in `state` (or '' for all), as if chosen in the list. */
  showState(state) {
    this.els.state.value = state
    this.stateFilter = this.els.state.value
    this.apply()
  }

  /** The whole node list, as /nodes gives it. */
  update(nodes) {
    const seen = new Set()
    for (const n of nodes) {
      if (typeof n?.name !== 'string' || seen.has(n.name)) continue
      seen.add(n.name)
      const key = JSON.stringify([n.type, n.state, n.ip, n.leasedIp, n.mac, n.reason])
      const row = this.rows.get(n.name)
      if (!row) {
        this.rows.set(n.name, fill({node: n, key, tr: newRow()}))
      } else if (row.key !== key) {
        row.node = n
        row.key = key
        fill(row)
      }
    }
    for (const name of this.rows.keys()) if (!seen.has(name)) this.rows.delete(name)
    this.updateStates()
    this.apply()
  }

  /** The state list with each state's count (rebuilt only when a count changed). */
  updateStates() {
    const counts = new Map()
    for (const {node} of this.rows.values()) counts.set(node.state, (counts.get(node.state) ?? 0) + 1)
    const attention = [...this.rows.values()].filter((r) => !SETTLED.has(r.node.state)).length
    const states = [...counts.keys()].sort((a, b) => STATES.indexOf(a) - STATES.indexOf(b))
    const signature = JSON.stringify([this.rows.size, attention, states.map((s) => [s, counts.get(s)])])
    if (signature === this.stateCounts) return
    this.stateCounts = signature
    const chosen = this.els.state.value
    this.els.state.replaceChildren(
      h('option', {value: ''}, `All states (${this.rows.size})`),
      h('option', {value: ATTENTION}, `Needs attention (${attention})`),
      ...states.map((s) => h('option', {value: s}, `${s} (${counts.get(s)})`)),
    )
    // A state that has no node now stays chosen (showing none) rather than silently widening the view.
    if (chosen && ![...this.els.state.options].some((o) => o.value === chosen)) this.els.state.append(h('option', {value: chosen}, `${chosen} (0)`))
    this.els.state.value = chosen
  }

  /** Filters and sorts; moves rows only when what is shown, or its order, changed. */
  apply() {
    const {by, dir} = this.sort
    const wanted = this.stateFilter
    const visible = [...this.rows.values()]
      .filter((r) => (wanted === '' || (wanted === ATTENTION ? !SETTLED.has(r.node.state) : r.node.state === wanted)) && this.terms.every((t) => r.text.includes(t)))
      .sort((a, b) => dir * COMPARE[by](a.node, b.node))
      .map((r) => r.tr)
    if (visible.length !== this.shown.length || visible.some((tr, i) => tr !== this.shown[i])) {
      this.els.tbody.replaceChildren(...visible)
      this.shown = visible
    }
    for (const b of this.els.sortButtons) b.dataset.dir = b.dataset.sort === by ? (dir > 0 ? 'asc' : 'desc') : ''
    const total = this.rows.size
    setText(this.els.count, visible.length === total ? String(total) : `${visible.length} of ${total}`)
    this.els.empty.hidden = visible.length > 0
    setText(this.els.empty, total === 0 ? 'No nodes in etcd.' : 'No node matches the filter.')
  }
}

/** Writes a row's cells from its node (text only) and what the filter searches. */
function fill(row) {
  const n = row.node
  const [name, type, state, ip, mac, reason] = row.tr.cells
  setText(name, n.name)
  setText(type, n.type)
  setText(state.firstChild, n.state)
  state.firstChild.dataset.status = n.state
  setText(ip, address(n))
  const leased = !n.ip && Boolean(n.leasedIp)
  if (leased || ip.title) {
    ip.title = leased ? 'leased by DHCP' : ''
    ip.classList.toggle('leased', leased)
  }
  setText(mac, n.mac)
  setText(reason, n.reason ?? '')
  if (n.reason || reason.title) reason.title = n.reason ?? ''
  row.text = [n.name, n.type, n.state, n.ip, n.leasedIp, n.mac, n.reason].filter(Boolean).join(' ').toLowerCase()
  return row
}
