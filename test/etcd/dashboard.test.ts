/**
 * The web dashboard of `xcluster serve --http`, in a real browser: Debian's Chromium driven by
 * playwright-core, a real serve (the built CLI) serving the page and its event stream, real
 * electing serves and a real etcd. The page shows what etcd holds, follows a failover and a split
 * brain without a reload, stays quick with 1,000 nodes, shows names from etcd as text, and loads
 * nothing from anywhere but its own server. Screenshots go to test-artifacts/dashboard/.
 */
import assert from 'node:assert/strict'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {get, request, type IncomingMessage} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {after, before, describe, it} from 'node:test'

import {chromium, type Browser, type Page} from 'playwright-core'

import type {Lease} from '../../src/lib/dhcp/lease.js'
import type {LeaderRecord, ViewRecord} from '../../src/lib/election/records.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {settings} from '../../src/lib/settings.js'
import {ROOT, xcluster} from '../helpers/cli.js'
import {startEtcdRetrying} from '../helpers/etcd-cluster.js'
import type {TestEtcd} from '../helpers/etcd.js'
import {Daemon, sleep, specBase, until, writeSpec} from '../helpers/election-harness.js'
import {FAILED_RUN} from '../helpers/runs.js'

/** Debian's chromium (test/packages.ts): a missing browser fails this file, it never skips it. */
const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = join(ROOT, 'test-artifacts', 'dashboard')
const NODES = ['s1', 's2', 's3', 's4', 'c1', 'f1']
const ELECTED = ['s1', 's2', 's3']
const SERVICES = "  - {name: web, ttl: 2, start: 'true', stop: 'true', nodes: [s1, s2, s3]}\n"
/** The serve whose --http the browser reads: it campaigns for nothing, so it outlives every failover here. */
const VIEWER = 's4'
/** A test that hangs fails instead (a browser wait gone wrong must not stall the suite). */
const TEST_TIMEOUT_MS = 60_000
const EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'

let dir: string
let etcd: TestEtcd
let store: EtcdStore
let browser: Browser
let base: string
let viewer: Daemon
const electors = new Map<string, Daemon>()

const readLog = (node: string): string => (existsSync(join(dir, `${node}.log`)) ? readFileSync(join(dir, `${node}.log`), 'utf8') : '')

async function startViewer(): Promise<void> {
  const wrap = ['bash', '-c', 'exec "$@" --http 127.0.0.1:0', 'serve-with-http']
  viewer = new Daemon(VIEWER, [], etcd.endpoint, join(dir, `${VIEWER}.log`), wrap).start()
  const listening = await until(
    "the viewer's health API to listen",
    () => viewer.events.find((e) => e.event === 'http-listening') ?? (!viewer.alive && new Error(`serve ${VIEWER} exited: ${readLog(VIEWER)}`)),
    15_000,
  )
  if (listening instanceof Error) throw listening
  base = `http://127.0.0.1:${listening.port}`
}

function startElector(node: string): void {
  electors.set(node, new Daemon(node, ['web'], etcd.endpoint, join(dir, `${node}.log`)).start())
}

async function etcdLeader(): Promise<{node: string; token: string} | undefined> {
  const kv = await store.getJson<LeaderRecord>(store.keys.electionLeader('web'))
  return kv ? {node: kv.value.node, token: kv.createRevision} : undefined
}

async function patchNode(name: string, patch: Partial<NodeRecord>): Promise<void> {
  const n = await store.getJson<NodeRecord>(store.keys.node(name))
  await store.put(store.keys.node(name), {...n!.value, ...patch})
}

const lease = (ip: string, i: number): Lease => ({
  ip,
  mac: `02:58:43:00:09:${i.toString(16).padStart(2, '0')}`,
  type: 'compute',
  state: 'bound',
  expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  grantedBy: '10.0.0.2',
})

interface Opened {
  page: Page
  /** Every URL the page asked for. */
  requests: string[]
  /** Uncaught errors and console errors (a CSP refusal is one). */
  errors: string[]
  /** Main-frame navigations: 1 unless the page reloaded. */
  navigations: () => number
}

async function openDashboard(): Promise<Opened> {
  const page = await browser.newPage({viewport: {width: 1440, height: 900}})
  const requests: string[] = []
  const errors: string[] = []
  let navigations = 0
  page.on('request', (r) => requests.push(r.url()))
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`)
  })
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) navigations++
  })
  await page.goto(`${base}/`)
  return {page, requests, errors, navigations: () => navigations}
}

/** The rows of a table body on the page, as the text of their cells. */
const rows = (page: Page, tbody: string): Promise<string[][]> => page.$$eval(`#${tbody} tr`, (trs) => trs.map((tr) => [...(tr as HTMLTableRowElement).cells].map((c) => (c.textContent ?? '').trim())))

/** Waits until the page's leaders table names `node` and `token` for web; how long that took. */
async function pageShowsLeader(page: Page, node: string, token: string, timeoutMs: number): Promise<void> {
  await page.waitForFunction(
    ([n, t]) =>
      [...document.querySelectorAll('#leaders tr')].some(
        (tr) => (tr as HTMLTableRowElement).cells[0]?.textContent === 'web' && (tr as HTMLTableRowElement).cells[1]?.textContent === n && (tr as HTMLTableRowElement).cells[2]?.textContent === t,
      ),
    [node, token],
    {timeout: timeoutMs, polling: 'raf'},
  )
}

/** A screenshot; a full-page one from the top, or the sticky header would be drawn where the view was scrolled to. */
async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  if (fullPage) await page.evaluate(() => ((document.activeElement as HTMLElement | null)?.blur(), window.scrollTo(0, 0)))
  await page.screenshot({path: join(ARTIFACTS, name), fullPage})
}

interface Stream {
  res: IncomingMessage
  /** The events received so far, by name. */
  events: {event: string; data: string}[]
  /** Everything received (a refusal's JSON). */
  body: () => string
  ended: Promise<void>
  close(): void
}

/** A raw /events subscriber (a browser stand-in), or the refusal it got. */
function subscribe(): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = get(`${base}/events`, (res) => {
      const events: Stream['events'] = []
      let buffer = ''
      let body = ''
      // Listened to at once: a short answer can end before the caller's next await.
      const ended = new Promise<void>((r) => res.on('end', () => r()))
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        body += d
        buffer += d
        let end
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const event = /^event: (.*)$/m.exec(block)?.[1]
          const data = /^data: (.*)$/m.exec(block)?.[1]
          if (event && data !== undefined) events.push({event, data})
        }
      })
      res.on('error', () => undefined)
      resolve({res, events, body: () => body, ended, close: () => req.destroy()})
    })
    req.on('error', reject)
  })
}

/** Watchers etcd holds now (its own gauge). */
async function etcdWatchers(): Promise<number> {
  const text = await (await fetch(`${etcd.endpoint}/metrics`)).text()
  const n = Number(/^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(text)?.[1])
  assert.ok(Number.isFinite(n), 'etcd reports etcd_debugging_mvcc_watcher_total')
  return n
}

/** A GET with the path sent exactly as written (fetch would normalise `..`). */
function rawGet(path: string): Promise<{status: number; text: string}> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/`, {path}, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({status: res.statusCode ?? 0, text}))
    })
    req.on('error', reject)
    req.end()
  })
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `this test needs Debian's chromium at ${CHROMIUM}: apt-get install -y chromium (npm test installs test/packages.ts)`)
  mkdirSync(ARTIFACTS, {recursive: true})
  dir = mkdtempSync(join(tmpdir(), 'xct-dashboard-'))
  etcd = await startEtcdRetrying()
  store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
  const file = join(dir, 'spec.yaml')
  writeSpec(file, specBase(ROOT), SERVICES)
  const applied = await xcluster(['config', 'apply', '-f', file, '--yes', '--etcd', etcd.endpoint])
  assert.equal(applied.code, 0, applied.stderr)
  for (const n of NODES) await patchNode(n, {state: 'ready'})
  await patchNode('c1', {state: 'draining', reason: 'kernel upgrade'})
  for (const [i, ip] of ['10.0.0.51', '10.0.0.52', '10.0.0.53'].entries()) await store.put(store.keys.lease(ip), lease(ip, i))
  await store.put(store.keys.run(FAILED_RUN.id), FAILED_RUN)
  for (const n of ELECTED) startElector(n)
  await startViewer()
  await until('web to have a leader', etcdLeader, 15_000, 50)
  browser = await chromium.launch({executablePath: CHROMIUM, args: ['--no-sandbox']})
})

after(async () => {
  await browser?.close()
  for (const d of [...electors.values(), viewer]) await d?.stop('SIGKILL').catch(() => undefined)
  await store?.close()
  await etcd?.stop()
  rmSync(dir, {recursive: true, force: true})
})

describe('the dashboard of serve --http, in Chromium', {concurrency: false}, () => {
  it('shows the nodes and the leader etcd holds', {timeout: TEST_TIMEOUT_MS}, async () => {
    const {page, errors} = await openDashboard()
    const leader = (await etcdLeader())!
    await pageShowsLeader(page, leader.node, leader.token, 10_000)
    await page.waitForFunction((n) => document.querySelectorAll('#nodes tr').length === n, NODES.length, {timeout: 5000})
    const nodes = await rows(page, 'nodes')
    assert.deepEqual(
      nodes.map((r) => [r[0], r[2]]),
      [...NODES].sort((a, b) => a.localeCompare(b, 'en', {numeric: true})).map((n) => [n, n === 'c1' ? 'draining' : 'ready']),
    )
    assert.equal(nodes.find((r) => r[0] === 's1')?.[3], '10.0.0.2')
    assert.equal(nodes.find((r) => r[0] === 'c1')?.[5], 'kernel upgrade')
    assert.equal(await page.textContent('#cluster'), 'xcluster')
    assert.equal(await page.textContent('#verdict'), 'Warnings', 'a draining node warns')
    assert.ok((await rows(page, 'problems')).some((r) => r[1] === 'node:c1' && r[0] === 'warn'))
    assert.deepEqual(
      (await rows(page, 'runs')).map((r) => r[0]),
      [FAILED_RUN.id],
    )
    assert.ok((await rows(page, 'pools')).some((r) => r[0] === 'compute' && r[2] === '3 / 20'))
    assert.ok((await rows(page, 'changes')).some((r) => r[1] === 'web' && r[2] === 'elected' && r[3] === leader.node && r[4] === leader.token))
    assert.equal(await page.isHidden('#split-brain'), true)
    await shot(page, 'overview.png')
    assert.deepEqual(errors, [])
    await page.close()
  })

  it('follows a failover without a reload: the new leader and the change within a few seconds', {timeout: TEST_TIMEOUT_MS}, async () => {
    const {page, errors, navigations} = await openDashboard()
    const first = (await etcdLeader())!
    await pageShowsLeader(page, first.node, first.token, 10_000)
    await page.evaluate(() => ((window as unknown as {loadedOnce: boolean}).loadedOnce = true))

    electors.get(first.node)!.signal('SIGKILL')
    const killedAt = performance.now()
    const second = await until(
      'etcd to name a new leader',
      async () => {
        const l = await etcdLeader()
        return l && l.node !== first.node ? l : undefined
      },
      15_000,
      10,
    )
    const inEtcd = performance.now() - killedAt
    await pageShowsLeader(page, second.node, second.token, 5000)
    const onPage = performance.now() - killedAt
    console.log(
      `# failover: etcd named ${second.node} ${Math.round(inEtcd)} ms after SIGKILL of ${first.node}; the page showed it ${Math.round(onPage)} ms after (${Math.round(onPage - inEtcd)} ms after etcd)`,
    )
    assert.ok(onPage - inEtcd < 3000, `the page followed etcd after ${Math.round(onPage - inEtcd)} ms`)
    await page.waitForFunction(
      ([n, t]) =>
        [...document.querySelectorAll('#changes tr')].some(
          (tr) => (tr as HTMLTableRowElement).cells[2]?.textContent === 'elected' && (tr as HTMLTableRowElement).cells[3]?.textContent === n && (tr as HTMLTableRowElement).cells[4]?.textContent === t,
        ),
      [second.node, second.token],
      {timeout: 5000},
    )
    // Newest first: the new leadership heads the recent changes.
    assert.deepEqual((await rows(page, 'changes'))[0]?.slice(1, 5), ['web', 'elected', second.node, second.token])

    // A resign through the CLI: the resignation and the next leader show up too.
    const resigned = await xcluster(['election', 'resign', 'web', '--yes', '--json', '--etcd', etcd.endpoint])
    assert.equal(resigned.code, 0, resigned.stderr)
    const third = resigned.json<{to: {node: string; token: string}}>().to
    const askedAt = performance.now()
    await pageShowsLeader(page, third.node, third.token, 5000)
    console.log(`# resign: the page showed ${third.node} ${Math.round(performance.now() - askedAt)} ms after the CLI returned`)
    await page.waitForFunction(
      (n) => [...document.querySelectorAll('#changes tr')].some((tr) => (tr as HTMLTableRowElement).cells[2]?.textContent === 'resigned' && (tr as HTMLTableRowElement).cells[3]?.textContent === n),
      second.node,
      {timeout: 5000},
    )
    assert.equal(await page.evaluate(() => (window as unknown as {loadedOnce?: boolean}).loadedOnce), true, 'the page was never reloaded')
    assert.equal(navigations(), 1)
    assert.deepEqual(errors, [])
    await page.close()
    startElector(first.node)
  })

  it('a split brain (a published view that disagrees) raises the red banner, and it goes when the views agree', {timeout: TEST_TIMEOUT_MS}, async () => {
    const {page, errors} = await openDashboard()
    await page.waitForSelector('#leaders tr')
    assert.equal(await page.isHidden('#split-brain'), true)
    // c1 runs no serve: nothing republishes over this view, which claims web with a token etcd never gave.
    const rogue: ViewRecord = {node: 'c1', believesLeader: true, active: true, leader: 'c1', token: '1', since: null, updatedAt: new Date().toISOString()}
    const wroteAt = performance.now()
    await store.put(store.keys.electionView('web', 'c1'), rogue)
    try {
      await page.waitForSelector('#split-brain', {state: 'visible', timeout: 10_000})
      console.log(
        `# split brain: the banner showed ${Math.round(performance.now() - wroteAt)} ms after the rogue view was written (the check samples twice, ${settings.election.checkResampleMs} ms apart)`,
      )
      const banner = (await page.textContent('#split-brain')) ?? ''
      assert.match(banner, /web/)
      assert.match(banner, /\[multiple-leaders\][^\n]*c1/)
      assert.equal(await page.$eval('#split-brain', (el) => getComputedStyle(el).backgroundColor), 'rgb(179, 38, 30)')
      await shot(page, 'split-brain.png', false)
    } finally {
      await store.delete(store.keys.electionView('web', 'c1'))
    }
    await page.waitForSelector('#split-brain', {state: 'hidden', timeout: 10_000})
    assert.deepEqual(errors, [])
    await page.close()
  })

  it('1,000 nodes: renders them, filters them, and a change to one node touches one row', {timeout: TEST_TIMEOUT_MS}, async () => {
    const states: NodeRecord['state'][] = ['ready', 'ready', 'ready', 'ready', 'ready', 'ready', 'provisioning', 'draining', 'failed', 'registered']
    const now = new Date().toISOString()
    const added: NodeRecord[] = Array.from({length: 1000}, (_, i) => {
      const state = states[i % states.length]!
      return {
        name: `n${String(i + 1).padStart(4, '0')}`,
        type: 'compute',
        mac: `02:58:44:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`,
        ip: `10.1.${i >> 8}.${i & 0xff}`,
        state,
        ...(state === 'failed' ? {reason: 'disk gone'} : state === 'draining' ? {reason: 'maintenance'} : {}),
        createdAt: now,
        updatedAt: now,
      }
    })
    for (let i = 0; i < added.length; i += 100) {
      const txn = store.transaction()
      for (const n of added.slice(i, i + 100)) txn.put(store.keys.node(n.name), n)
      assert.ok(await txn.commit())
    }
    const total = NODES.length + added.length

    const t0 = performance.now()
    const {page, errors} = await openDashboard()
    await page.waitForFunction((n) => document.querySelectorAll('#nodes tr').length === n, total, {timeout: 15_000, polling: 'raf'})
    const wall = performance.now() - t0
    const nodesJson = await (await fetch(`${base}/nodes`)).text()
    // The page's own marks, in ms since its navigation began (window.performance: the browser's clock).
    const marks = await page.evaluate(() => ({
      nodes: window.performance.getEntriesByName('xcluster:nodes-rendered')[0]?.startTime,
      status: window.performance.getEntriesByName('xcluster:status-rendered')[0]?.startTime,
      domReady: (window.performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined)?.domContentLoadedEventEnd,
    }))
    console.log(
      `# ${total} nodes (${Math.round(nodesJson.length / 1024)} KiB as JSON): table rendered ${Math.round(marks.nodes ?? NaN)} ms after navigation start (status ${Math.round(marks.status ?? NaN)} ms, DOM ready ${Math.round(marks.domReady ?? NaN)} ms); ${Math.round(wall)} ms from goto to every row in place`,
    )
    assert.ok(marks.nodes !== undefined && marks.nodes < 5000, `rendered after ${marks.nodes} ms`)
    assert.equal(await page.textContent('#nodes-total'), String(total))

    // The filter box: every term must match (name, IP, MAC, type, state, reason).
    const typedAt = performance.now()
    await page.fill('#nodes-filter', 'n09')
    const expected = added.filter((n) => n.name.includes('n09')).length
    await page.waitForFunction((n) => document.querySelectorAll('#nodes tr').length === n, expected, {timeout: 5000, polling: 'raf'})
    console.log(`# filter "n09": ${expected} of ${total} rows in ${Math.round(performance.now() - typedAt)} ms`)
    assert.deepEqual(
      (await rows(page, 'nodes')).map((r) => r[0]),
      added.filter((n) => n.name.includes('n09')).map((n) => n.name),
    )
    assert.equal(await page.textContent('#nodes-count'), `${expected} of ${total}`)
    await page.fill('#nodes-filter', 'n09 disk')
    await page.waitForFunction((n) => document.querySelectorAll('#nodes tr').length === n, added.filter((n) => n.name.includes('n09') && n.reason === 'disk gone').length, {timeout: 5000})

    // The state list, and sorting by state keeps failed nodes together.
    await page.fill('#nodes-filter', '')
    await page.selectOption('#nodes-state', 'failed')
    const failed = added.filter((n) => n.state === 'failed').length
    await page.waitForFunction((n) => document.querySelectorAll('#nodes tr').length === n, failed, {timeout: 5000})
    assert.ok((await rows(page, 'nodes')).every((r) => r[2] === 'failed' && r[5] === 'disk gone'))
    await page.selectOption('#nodes-state', '')
    await page.waitForFunction((n) => document.querySelectorAll('#nodes tr').length === n, total, {timeout: 5000})

    // One node changes in etcd: its row is updated in place, every other row element is kept.
    await page.evaluate(() => {
      for (const tr of document.querySelectorAll('#nodes tr')) (tr as unknown as {kept: boolean}).kept = true
      const w = window as unknown as {added: number}
      w.added = 0
      new MutationObserver((records) => {
        for (const r of records) w.added += r.addedNodes.length
      }).observe(document.getElementById('nodes')!, {childList: true, subtree: true})
    })
    await patchNode('n0500', {state: 'failed', reason: 'fan failure'})
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('#nodes tr')].some((tr) => (tr as HTMLTableRowElement).cells[0]?.textContent === 'n0500' && (tr as HTMLTableRowElement).cells[5]?.textContent === 'fan failure'),
      undefined,
      {timeout: 5000},
    )
    const touched = await page.evaluate(() => ({
      replaced: [...document.querySelectorAll('#nodes tr')].filter((tr) => !(tr as unknown as {kept?: boolean}).kept).length,
      added: (window as unknown as {added: number}).added,
    }))
    assert.deepEqual(touched.replaced, 0, 'no row element was rebuilt')
    assert.ok(touched.added <= 3, `${touched.added} nodes added to the table for one changed node`)

    await shot(page, 'nodes-1000.png')
    assert.deepEqual(errors, [])
    await page.close()
  })

  it('shows names and reasons from etcd as text: a node named <script> runs nothing', {timeout: TEST_TIMEOUT_MS}, async () => {
    const record: NodeRecord = {name: EVIL, type: 'compute', mac: '02:58:44:ff:00:01', state: 'failed', reason: '<b>not bold</b>', createdAt: '', updatedAt: ''}
    await store.put(store.keys.node('evil'), record)
    const {page, errors} = await openDashboard()
    await page.fill('#nodes-filter', 'onerror')
    await page.waitForFunction(() => document.querySelectorAll('#nodes tr').length === 1, undefined, {timeout: 10_000})
    assert.deepEqual((await rows(page, 'nodes'))[0]?.slice(0, 6), [EVIL, 'compute', 'failed', '', '02:58:44:ff:00:01', '<b>not bold</b>'])
    await page.click('#problems-toggle')
    await page.waitForFunction((name) => [...document.querySelectorAll('#problems tr')].some((tr) => (tr as HTMLTableRowElement).cells[1]?.textContent === name), `node:${EVIL}`, {timeout: 5000})
    assert.equal(await page.evaluate(() => (window as unknown as {__pwned?: number}).__pwned), undefined)
    assert.equal(await page.evaluate(() => document.querySelectorAll('main img, main script, main b').length), 0)
    assert.equal(await page.evaluate(() => document.scripts.length), 1, 'only the page’s own module')
    assert.deepEqual(errors, [])
    await page.close()
    await store.delete(store.keys.node('evil'))
  })

  it('loads nothing but its own files, each with a strict CSP, the right type and only GET/HEAD', {timeout: TEST_TIMEOUT_MS}, async () => {
    const {page, requests, errors} = await openDashboard()
    await page.waitForSelector('#leaders tr')
    const origin = new URL(base).origin
    assert.ok(requests.length >= 5, requests.join('\n'))
    assert.deepEqual(
      requests.filter((u) => new URL(u).origin !== origin),
      [],
    )
    assert.deepEqual(errors, [], 'no CSP refusal or script error')
    await page.close()

    const index = await fetch(`${base}/`)
    const html = await index.text()
    const csp = index.headers.get('content-security-policy') ?? ''
    assert.match(csp, /default-src 'none'/)
    assert.match(csp, /script-src 'self'(;|$)/)
    assert.match(csp, /connect-src 'self'(;|$)/)
    assert.doesNotMatch(csp, /unsafe|https?:|\*/)
    assert.match(index.headers.get('content-type') ?? '', /^text\/html; charset=utf-8$/)
    assert.equal(index.headers.get('x-content-type-options'), 'nosniff')
    // Every file the page names, and every module those import, is ours and typed right.
    const files = new Set([...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!))
    const types: Record<string, RegExp> = {js: /^text\/javascript/, css: /^text\/css/, svg: /^image\/svg\+xml/}
    for (const path of [...files]) {
      if (!path.startsWith('/dashboard/')) continue
      const res = await fetch(`${base}${path}`)
      assert.equal(res.status, 200, path)
      assert.match(res.headers.get('content-type') ?? '', types[path.split('.').pop()!]!, path)
      assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/, path)
      const text = await res.text()
      for (const m of text.matchAll(/from '([^']+)'/g)) files.add(new URL(m[1]!, `${base}${path}`).pathname)
      assert.doesNotMatch(text, /url\(|@import|\bfetch\(|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, `${path} reaches for nothing outside`)
    }
    // Links in the page are the API's own paths; its files are all under /dashboard/.
    assert.deepEqual(
      [...files].filter((p) => !p.startsWith('/')),
      [],
    )
    assert.ok([...files].filter((p) => p.endsWith('.js')).length >= 4, [...files].join(' '))

    assert.equal((await fetch(`${base}/`, {method: 'HEAD'})).status, 200)
    assert.equal((await fetch(`${base}/`, {method: 'POST', body: '{}'})).status, 405)
    for (const path of ['/dashboard/nope.js', '/dashboard/', '/dashboard/../package.json', '/dashboard/%2e%2e/package.json', '/dashboard/../../package.json', '/index.html']) {
      const res = await rawGet(path)
      assert.equal(res.status, 404, `${path}: ${res.text}`)
      assert.equal(JSON.parse(res.text).error.code, 'NOT_FOUND', path)
    }
    const head = await fetch(`${base}/events`, {method: 'HEAD'})
    assert.equal(head.status, 200)
    assert.match(head.headers.get('content-type') ?? '', /^text\/event-stream/)
  })

  it(`/events: one etcd watch for all browsers, at most ${settings.health.dashboard.maxClients} of them, freed when they leave`, {timeout: TEST_TIMEOUT_MS}, async () => {
    // No page is open now: the hub's watch is gone.
    await sleep(300)
    const idle = await etcdWatchers()
    const max = settings.health.dashboard.maxClients
    const streams: Stream[] = []
    try {
      for (let i = 0; i < max; i++) streams.push(await subscribe())
      assert.ok(
        streams.every((s) => s.res.statusCode === 200),
        streams.map((s) => s.res.statusCode).join(' '),
      )
      await until('every stream to get the status and the nodes', () => streams.every((s) => s.events.some((e) => e.event === 'status') && s.events.some((e) => e.event === 'nodes')), 10_000, 50)
      const following = await etcdWatchers()
      console.log(`# ${max} browsers following: etcd watchers ${idle} -> ${following}`)
      assert.equal(following - idle, 1, 'one watch for every browser')

      const refused = await subscribe()
      await refused.ended
      assert.equal(refused.res.statusCode, 503)
      assert.equal(JSON.parse(refused.body()).error.code, 'DASHBOARD_FULL')
      assert.ok(Number(refused.res.headers['retry-after']) >= 1)

      // A node's change reaches every one of them once, coalesced.
      const before = streams.map((s) => s.events.filter((e) => e.event === 'nodes').length)
      await patchNode('f1', {state: 'draining', reason: 'one update for all'})
      await until('the change to reach every stream', () => streams.every((s) => s.events.some((e) => e.event === 'nodes' && e.data.includes('one update for all'))), 5000, 20)
      await sleep(settings.health.dashboard.coalesceMs * 2)
      assert.ok(
        streams.every((s, i) => s.events.filter((e) => e.event === 'nodes').length - before[i]! === 1),
        'one nodes event per stream for one change',
      )
    } finally {
      for (const s of streams) s.close()
    }
    await until('the watch to end with the last browser', async () => (await etcdWatchers()) === idle, 5000, 100)
    const again = await subscribe()
    assert.equal(again.res.statusCode, 200, 'room again once they left')
    again.close()
    await patchNode('f1', {state: 'ready'})
  })
})
