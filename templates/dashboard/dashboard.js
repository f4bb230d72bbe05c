// The dashboard: follows /events (server-sent events) and draws what serve pushes. Read-only;
// every value is set as text (dom.js). A section is redrawn only when its own data changed.
import {badge, byId, fillRows, h, setText, td} from './dom.js'
import {age, bytes, clock, plural} from './format.js'
import {NodesTable} from './nodes-table.js'

/** Problems listed before "show all": a cluster of 1,000 unready nodes has 1,000 of them. */
const PROBLEMS_SHOWN = 12
const VERDICT = {ok: 'Healthy', warn: 'Warnings', fail: 'Failing', unknown: 'Unknown'}
const EVENT_STATUS = {elected: 'ok', resigned: 'info', demoted: 'warn', 'start-failed': 'fail'}

const table = new NodesTable({
  tbody: byId('nodes'),
  filter: byId('nodes-filter'),
  state: byId('nodes-state'),
  count: byId('nodes-count'),
  empty: byId('nodes-empty'),
  sortButtons: document.querySelectorAll('button[data-sort]'),
})

let refreshMs = 5000
let reconnectMs = 2000
let lastStatusAt = 0
let problemsOpen = false
let lastStatus
const drawn = new Map()

/** Runs `draw` only when `value` differs from what this section last drew. */
function section(name, value, draw) {
  const text = JSON.stringify(value)
  if (drawn.get(name) === text) return
  drawn.set(name, text)
  draw(value)
}

/** A time that keeps telling how long ago it was (see tick). */
const since = (iso) => h('span', {title: iso ?? ''}, clock(iso), ' ', h('span', {className: 'age', data: {at: iso}}, age(iso)))

/**
 * The services in split brain. Serves that predate `splitBrain` in /status only say so in the
 * `election:SERVICE` check, whose observation starts with "split brain:".
 */
function splitBrains(status) {
  if (Array.isArray(status.splitBrain)) return status.splitBrain.map((s) => ({service: s.service, observed: [].concat(s.observed ?? [])}))
  return (status.problems ?? [])
    .filter((p) => p.name.startsWith('election:') && p.observed.startsWith('split brain:'))
    .map((p) => ({service: p.name.slice('election:'.length), observed: [p.observed.slice('split brain:'.length).trim()]}))
}

function drawHeader({cluster, health, revision, fails, warns}) {
  setText(byId('cluster'), cluster)
  const verdict = byId('verdict')
  verdict.dataset.status = health
  setText(verdict, VERDICT[health] ?? health)
  setText(byId('revision'), `revision ${revision}`)
  document.title = `${health === 'ok' ? '' : `${health.toUpperCase()} · `}xcluster ${cluster}`
  const big = byId('health-verdict')
  big.dataset.status = health
  setText(big, VERDICT[health] ?? health)
  setText(byId('health-counts'), fails + warns === 0 ? 'every check is ok' : [fails && `${fails} failing`, warns && plural(warns, 'warning')].filter(Boolean).join(' · '))
}

function drawSplitBrain(list) {
  byId('split-brain').hidden = list.length === 0
  byId('split-brain-list').replaceChildren(
    ...list.map((s) =>
      h(
        'li',
        {},
        h('strong', {}, s.service),
        h(
          'ul',
          {},
          s.observed.map((o) => h('li', {}, o)),
        ),
      ),
    ),
  )
}

function drawEtcd(etcd) {
  const q = etcd.quorum
  const big = byId('etcd-quorum')
  big.dataset.status = q.ok ? (q.healthy === q.members ? 'ok' : 'warn') : 'fail'
  setText(big, q.ok ? 'Quorum' : 'No quorum')
  const fact = (k, v) => [h('dt', {}, k), h('dd', {}, v)]
  byId('etcd-facts').replaceChildren(
    ...fact('members', `${q.healthy}/${q.members} healthy, needs ${q.needed}`),
    ...fact('leader', etcd.leader ?? 'none'),
    ...fact('database', bytes(etcd.dbSize)),
    ...fact('TLS', etcd.tls ? 'on' : 'off'),
  )
  fillRows(byId('members'), byId('members-empty'), etcd.members, (m) =>
    h(
      'tr',
      {title: m.problem ?? ''},
      td(m.name || `unstarted ${m.id ?? ''}`, 'name'),
      td(m.endpoint ?? m.clientUrls.join(', '), 'mono'),
      h(
        'td',
        {},
        badge(m.healthy ? 'healthy' : 'unhealthy', m.problem ?? ''),
        m.isLeader ? h('span', {className: 'tag'}, 'leader') : null,
        m.learner ? h('span', {className: 'tag'}, 'learner') : null,
      ),
      td(m.version ?? '–'),
      td(bytes(m.dbSize), 'num'),
    ),
  )
}

function drawNodeCounts(nodes) {
  setText(byId('nodes-total'), nodes.total)
  byId('nodes-by-state').replaceChildren(
    ...Object.entries(nodes.byState).map(([state, n]) => {
      const chip = h('button', {type: 'button', className: 'chip', title: `Show the ${state} nodes`, data: {status: state}}, `${n} ${state}`)
      chip.addEventListener('click', () => {
        table.showState(state)
        byId('nodes-title').scrollIntoView({behavior: 'smooth', block: 'start'})
      })
      return chip
    }),
  )
}

function drawServices({services, split}) {
  setText(byId('services-total'), services.length)
  const led = services.filter((s) => s.leader).length
  setText(byId('services-sub'), [`${led} led`, services.length > led && `${services.length - led} without a leader`, split && `${split} in split brain`].filter(Boolean).join(' · '))
  fillRows(byId('leaders'), byId('leaders-empty'), services, (s) =>
    h(
      'tr',
      {},
      td(s.service, 'name'),
      s.leader ? td(s.leader) : h('td', {}, badge('none')),
      td(s.token ?? '–', 'num mono'),
      h('td', {}, s.since ? since(s.since) : '–'),
      td(s.candidates.join(', ') || 'none', 'muted'),
    ),
  )
}

function drawProblems(problems) {
  const shown = problemsOpen ? problems : problems.slice(0, PROBLEMS_SHOWN)
  setText(byId('problems-count'), problems.length || '')
  fillRows(byId('problems'), byId('problems-empty'), shown, (p) => h('tr', {}, h('td', {}, badge(p.status)), td(p.name, 'mono'), td(p.observed), td(p.next ?? '', 'next')))
  const toggle = byId('problems-toggle')
  toggle.hidden = problems.length <= PROBLEMS_SHOWN
  setText(toggle, problemsOpen ? `Show the first ${PROBLEMS_SHOWN}` : `Show all ${problems.length}`)
}

byId('problems-toggle').addEventListener('click', () => {
  problemsOpen = !problemsOpen
  if (lastStatus) drawProblems(lastStatus.problems)
})

function drawChanges(changes) {
  fillRows(byId('changes'), byId('changes-empty'), changes, (c) =>
    h(
      'tr',
      {},
      h('td', {}, since(c.at)),
      td(c.service, 'name'),
      h('td', {}, h('span', {className: 'badge', data: {status: EVENT_STATUS[c.event] ?? 'info'}}, c.event)),
      td(c.node),
      td(c.token, 'num mono'),
      td(c.reason ?? '', 'muted'),
    ),
  )
}

function drawVips(vips) {
  fillRows(byId('vips'), byId('vips-empty'), vips, (v) =>
    h('tr', {}, td(v.address, 'mono'), td(v.purpose), v.holder ? td(v.holder) : td(v.source === 'keepalived' ? 'keepalived decides' : 'nobody', 'muted'), td(v.source, 'muted')),
  )
}

function drawPools(pools) {
  fillRows(byId('pools'), byId('pools-empty'), pools, (p) => {
    const level = p.percent >= 95 ? 'fail' : p.percent >= 80 ? 'warn' : 'ok'
    const fill = h('div', {className: 'bar-fill', data: {status: level}})
    // CSSOM, not a style attribute: the page's CSP allows no inline styles.
    fill.style.width = `${Math.min(100, Math.max(0, p.percent))}%`
    return h(
      'tr',
      {},
      td(p.range, 'name'),
      td(`${p.start} – ${p.end}`, 'mono'),
      td(`${p.used} / ${p.capacity}`, 'num'),
      h('td', {}, h('div', {className: 'bar', title: `${p.percent} %`}, fill), h('span', {className: 'pct'}, `${p.percent} %`)),
    )
  })
}

function drawRuns(runs) {
  fillRows(byId('runs'), byId('runs-empty'), runs, (r) =>
    h(
      'tr',
      {},
      td(r.id, 'mono'),
      td(r.action),
      h('td', {}, badge(r.result), h('div', {className: 'muted'}, plural(r.failures, 'failure'))),
      h('td', {}, since(r.startedAt)),
      h('td', {}, h('code', {}, r.resume)),
    ),
  )
}

function onStatus({status, changes}) {
  lastStatus = status
  lastStatusAt = Date.now()
  const fails = status.problems.filter((p) => p.status === 'fail').length
  const warns = status.problems.filter((p) => p.status === 'warn').length
  const split = splitBrains(status)
  section('header', {cluster: status.cluster, health: status.health, revision: status.revision, fails, warns}, drawHeader)
  section('split', split, drawSplitBrain)
  section('etcd', {...status.etcd, members: status.etcd.members.map(({tookMs: _, ...m}) => m)}, drawEtcd)
  section('nodeCounts', status.nodes, drawNodeCounts)
  section('services', {services: status.services, split: split.length}, drawServices)
  section('problems', status.problems, drawProblems)
  section('changes', changes, drawChanges)
  section('vips', status.vips, drawVips)
  section('pools', status.dhcp, drawPools)
  section('runs', status.failedRuns, drawRuns)
  byId('unavailable').hidden = true
  tick()
  if (performance.getEntriesByName('xcluster:status-rendered').length === 0) performance.mark('xcluster:status-rendered')
}

function onNodes(nodes) {
  table.update(nodes)
  if (performance.getEntriesByName('xcluster:nodes-rendered').length === 0) performance.mark('xcluster:nodes-rendered')
}

function setLink(state, text) {
  const link = byId('link')
  link.dataset.state = state
  setText(link, text)
}

/** Once a second: the ages shown, and whether the picture is stale (no status for three refreshes). */
function tick() {
  const now = Date.now()
  for (const el of document.querySelectorAll('.age[data-at]')) setText(el, age(el.dataset.at, now))
  if (lastStatus) setText(byId('updated'), `updated ${clock(lastStatus.at)}`)
  const stale = lastStatusAt > 0 && now - lastStatusAt > 3 * refreshMs
  document.body.classList.toggle('stale', stale)
  if (stale && byId('link').dataset.state === 'live') setLink('stale', `no update for ${age(new Date(lastStatusAt).toISOString(), now)}`)
}

function connect() {
  const source = new EventSource('/events')
  const on = (event, fn) => source.addEventListener(event, (e) => fn(JSON.parse(e.data)))
  source.onopen = () => setLink('live', 'live')
  on('hello', (hello) => {
    refreshMs = hello.refreshMs ?? refreshMs
    reconnectMs = hello.reconnectMs ?? reconnectMs
  })
  on('status', (update) => {
    onStatus(update)
    setLink('live', 'live')
  })
  on('nodes', onNodes)
  on('unavailable', (u) => {
    const notice = byId('unavailable')
    notice.hidden = false
    setText(notice, `Cannot read the cluster's state: ${u.message}${u.suggestion ? ` ${u.suggestion}` : ''} Showing the picture of ${lastStatus ? clock(lastStatus.at) : 'nothing yet'}.`)
  })
  source.onerror = () => {
    // The browser retries a dropped stream by itself; a refused one (503: too many browsers) it closes.
    setLink('down', 'reconnecting')
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, reconnectMs)
  }
}

document.addEventListener('keydown', (e) => {
  if (e.key === '/' && !(e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement)) {
    e.preventDefault()
    byId('nodes-filter').focus()
  }
})

setInterval(tick, 1000)
connect()
