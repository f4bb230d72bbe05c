/**
 * The dashboard's server side without etcd: its files are the only paths it answers, and its hub
 * turns a burst of etcd changes into one read and one update for every browser, skipping keys the
 * page does not show and node lists that did not change. (The page itself, in a real browser
 * against real etcd: test/etcd/dashboard.test.ts.)
 */
import assert from 'node:assert/strict'
import {createServer, get, type IncomingMessage, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {after, before, describe, it} from 'node:test'

import {KeySchema} from '../../src/lib/etcd/keys.js'
import type {EtcdStore, RawKv} from '../../src/lib/etcd/store.js'
import type {PrefixWatchHandlers} from '../../src/lib/etcd/watch.js'
import {DashboardAssets, DashboardHub, type DashboardView} from '../../src/lib/health/dashboard.js'
import type {ClusterStatus} from '../../src/lib/health/types.js'
import type {NodeSummary} from '../../src/lib/nodes/record.js'
import {sleep, until} from '../helpers/election-harness.js'

describe('dashboard files', () => {
  const assets = DashboardAssets.load()

  it('serves the page at / and its files under /dashboard/, typed', () => {
    assert.ok(assets.ready, `index.html in ${assets.dir}`)
    assert.match(assets.find('/')!.contentType, /^text\/html; charset=utf-8$/)
    assert.match(assets.find('/dashboard/dashboard.js')!.contentType, /^text\/javascript/)
    assert.match(assets.find('/dashboard/dashboard.css')!.contentType, /^text\/css/)
  })

  it('answers nothing else: no traversal, no directory, no other path', () => {
    for (const path of ['/dashboard/', '/dashboard/../package.json', '/dashboard/../../package.json', '/dashboard/%2e%2e/package.json', '/index.html', '/dashboard/index.html/x', '/dashboard']) {
      assert.equal(assets.find(path), undefined, path)
    }
  })
})

const keys = new KeySchema('t')

const status = (revision: string): ClusterStatus => ({
  cluster: 't',
  revision,
  at: new Date().toISOString(),
  health: 'ok',
  etcd: {endpoints: [], tls: false, members: [], leader: null, quorum: {members: 1, healthy: 1, needed: 1, ok: true}, dbSize: null},
  nodes: {total: 0, byState: {}},
  services: [],
  vips: [],
  dhcp: [],
  failedRuns: [],
  ceph: {checked: false, reason: 'the spec has no ceph section'},
  splitBrain: [],
  problems: [],
})

const node = (name: string, state: NodeSummary['state'] = 'ready'): NodeSummary => ({name, type: 'compute', mac: '02:00:00:00:00:01', ip: null, state})

/** A store with only what the hub uses: its keys and one watch, driven by the test. */
function fakeStore(): {store: EtcdStore; watches: {handlers: PrefixWatchHandlers; cancelled: boolean}[]} {
  const watches: {handlers: PrefixWatchHandlers; cancelled: boolean}[] = []
  const store = {
    keys,
    watchPrefix(_prefix: string, handlers: PrefixWatchHandlers) {
      const w = {handlers, cancelled: false}
      watches.push(w)
      return {cancel: async () => void (w.cancelled = true)}
    },
  } as unknown as EtcdStore
  return {store, watches}
}

interface Subscriber {
  res: IncomingMessage
  events: {event: string; data: string}[]
}

describe('dashboard hub', () => {
  let server: Server
  let port: number
  let hub: DashboardHub
  let reads = 0
  let nodes: NodeSummary[] = [node('n1')]
  const {store, watches} = fakeStore()
  const subscribers: Subscriber[] = []

  before(async () => {
    hub = new DashboardHub({
      store,
      read: async (): Promise<DashboardView> => {
        reads++
        return {status: status(String(reads)), nodes}
      },
      tuning: {settleMs: 10, coalesceMs: 150, refreshMs: 60_000, maxClients: 2},
    })
    server = createServer((req, res) => (hub.full ? res.writeHead(503).end() : hub.subscribe(req, res)))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    port = (server.address() as AddressInfo).port
  })

  after(async () => {
    await hub.close()
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })

  const subscribe = (): Promise<Subscriber> =>
    new Promise((resolve, reject) => {
      get(`http://127.0.0.1:${port}/events`, (res) => {
        const s: Subscriber = {res, events: []}
        let buffer = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => {
          buffer += d
          let end
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            const event = /^event: (.*)$/m.exec(block)?.[1]
            if (event) s.events.push({event, data: /^data: (.*)$/m.exec(block)?.[1] ?? ''})
          }
        })
        subscribers.push(s)
        resolve(s)
      }).on('error', reject)
    })
  const count = (s: Subscriber, event: string) => s.events.filter((e) => e.event === event).length
  const put = (key: string) => watches.at(-1)!.handlers.onPut!({key, value: {}, createRevision: '1', modRevision: '1', lease: '0'} satisfies RawKv)

  it('the first browser opens the one watch and gets the picture', async () => {
    const a = await subscribe()
    assert.equal(a.res.headers['content-type'], 'text/event-stream; charset=utf-8')
    assert.match(String(a.res.headers['content-security-policy']), /default-src 'none'/)
    await until('status and nodes', () => count(a, 'status') === 1 && count(a, 'nodes') === 1, 2000)
    assert.equal(a.events[0]?.event, 'hello')
    assert.deepEqual(JSON.parse(a.events.find((e) => e.event === 'nodes')!.data), [node('n1')])
    assert.equal(watches.length, 1)
    assert.equal(reads, 1)
  })

  it('a burst of changes is one read; keys the page does not show wake nothing', async () => {
    const [a] = subscribers
    await sleep(200)
    const before = reads
    for (let i = 0; i < 50; i++) put(keys.hostKey(`n${i}`))
    await sleep(300)
    assert.equal(reads, before, 'host-key changes are not shown')
    nodes = [node('n1', 'failed')]
    for (let i = 0; i < 50; i++) put(keys.node('n1'))
    await until('the change to reach the browser', () => count(a!, 'nodes') === 2, 2000)
    await sleep(300)
    assert.equal(reads - before, 1, '50 changes, one read')
    assert.equal(count(a!, 'nodes'), 2)
  })

  it('an unchanged node list is not sent again; a newcomer gets the last picture at once', async () => {
    const [a] = subscribers
    const before = reads
    put(keys.electionLeader('web'))
    await until('a read', () => reads === before + 1 && count(a!, 'status') === 3, 2000)
    await sleep(50)
    assert.equal(count(a!, 'nodes'), 2, 'same nodes: no nodes event')
    const b = await subscribe()
    await until('the newcomer to have the picture', () => count(b, 'status') === 1 && count(b, 'nodes') === 1, 1000)
    assert.equal(reads, before + 1, 'served from the last read')
    assert.equal(watches.length, 1, 'still one watch')
  })

  it('refuses a browser over maxClients, and closes the watch when the last one leaves', async () => {
    assert.equal(hub.full, true)
    const refused = await subscribe()
    assert.equal(refused.res.statusCode, 503)
    for (const s of subscribers) s.res.destroy()
    await until('the hub to be empty', () => hub.clientCount === 0, 2000)
    await until('the watch cancelled', () => watches[0]!.cancelled, 2000)
    assert.equal(hub.full, false)
  })
})
