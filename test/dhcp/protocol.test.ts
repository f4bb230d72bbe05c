import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {after, before, describe, it} from 'node:test'

import {DhcpServer} from '../../src/lib/dhcp/server.js'
import type {Lease} from '../../src/lib/dhcp/lease.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {BIN, xcluster} from '../helpers/cli.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {ClientNet} from '../helpers/netns.js'

const NET = 69
const SERVER = `10.${NET}.0.1`
const RELAY = `10.${NET}.15.253`
const C1 = '02:58:43:00:02:01'
const F1 = '02:58:43:00:03:01'

interface Reply {
  type: string
  yiaddr?: string
  giaddr?: string
  leaseTime?: number | null
  relayAgent?: string | null
  message?: string | null
}

describe('DHCP protocol paths: relays, DECLINE, RELEASE, INFORM, NAK, the election gate, the serve command', () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let server: DhcpServer
  let leader = true
  /** The election gate as the server sees it: by default, `leader`. */
  let gate = (): boolean => leader
  const net = new ClientNet('pr')

  const send = async (args: Record<string, unknown>): Promise<Reply> => {
    const r = await net.exec(['node', '--import', 'tsx', 'test/helpers/dhcp-sim.ts', 'send', JSON.stringify({host: SERVER, ...args})])
    return JSON.parse(r.out.trim().split('\n').at(-1) ?? '{}')
  }
  const lease = async (ip: string): Promise<Lease | undefined> => (await store.getJson<Lease>(store.keys.lease(ip)))?.value

  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await applyPlan(store, await planApply(store, parseSpec(testSpecYaml(NET), 'test.yaml')))
    net.create([`${SERVER}/20`])
    net.addAddress(`${RELAY}/20`)
    server = new DhcpServer({store, interface: net.serverIf, unknown: 'discover', canServe: async () => ({ok: gate(), token: '7'})})
    await server.start()
  })

  after(async () => {
    await server?.stop()
    net.destroy()
    await store?.close()
    await etcd?.stop()
  })

  it('answers a relay agent at giaddr:67, echoing option 82, typed as usual', async () => {
    const relayed = {fields: {giaddr: RELAY, hops: 1}, options: {relayAgent: '0104deadbeef'}}
    const offer = await send({type: 'discover', mac: C1, ...relayed})
    assert.deepEqual(offer, {type: 'offer', yiaddr: `10.${NET}.0.52`, giaddr: RELAY, leaseTime: 3600, relayAgent: '0104deadbeef', message: null})
    const ack = await send({type: 'request', mac: C1, fields: relayed.fields, options: {...relayed.options, serverId: SERVER, requestedIp: offer.yiaddr}})
    assert.equal(ack.type, 'ack')
    assert.equal((await lease(`10.${NET}.0.52`))?.node, 'c1')
  })

  it('drops a relayed packet whose giaddr is outside the subnet', async () => {
    const before = server.stats.dropped['foreign-relay'] ?? 0
    const r = await send({type: 'discover', mac: C1, fields: {giaddr: '192.168.77.1'}, wait: 500})
    assert.equal(r.type, 'none')
    assert.equal(server.stats.dropped['foreign-relay'], before + 1)
  })

  it('NAKs an INIT-REBOOT request for an address of the wrong type, and says why', async () => {
    const nak = await send({type: 'request', mac: C1, options: {requestedIp: `10.${NET}.0.12`}, fields: {flags: 0x8000}, host: '255.255.255.255'})
    assert.equal(nak.type, 'nak')
    assert.match(nak.message ?? '', /outside the compute range/)
  })

  it('stays silent for a REQUEST meant for another server', async () => {
    const r = await send({type: 'request', mac: C1, options: {serverId: `10.${NET}.0.99`, requestedIp: `10.${NET}.0.52`}, host: '255.255.255.255', wait: 500})
    assert.equal(r.type, 'none')
  })

  it('INFORM gets the configuration by unicast, no lease', async () => {
    const r = await send({type: 'inform', mac: F1, fields: {ciaddr: RELAY}})
    assert.equal(r.type, 'ack')
    assert.equal(r.yiaddr, '0.0.0.0')
    assert.equal(r.leaseTime, null)
  })

  it('DECLINE holds the address out of the pool; RELEASE frees it', async () => {
    const relay = {fields: {giaddr: RELAY}}
    const offer = await send({type: 'discover', mac: F1, ...relay})
    assert.equal(offer.yiaddr, `10.${NET}.0.71`)
    assert.equal((await send({type: 'request', mac: F1, ...relay, options: {serverId: SERVER, requestedIp: offer.yiaddr}})).type, 'ack')
    assert.equal((await send({type: 'decline', mac: F1, options: {serverId: SERVER, requestedIp: offer.yiaddr}, wait: 300})).type, 'none')
    assert.equal((await lease(offer.yiaddr as string))?.state, 'declined')
    const again = await send({type: 'discover', mac: F1, ...relay})
    assert.equal(again.yiaddr, `10.${NET}.0.72`, 'the declined address is not offered again')
    assert.equal((await send({type: 'request', mac: F1, ...relay, options: {serverId: SERVER, requestedIp: again.yiaddr}})).type, 'ack')
    assert.equal((await send({type: 'release', mac: F1, options: {serverId: SERVER}, fields: {ciaddr: again.yiaddr}, wait: 300})).type, 'none')
    assert.equal(await lease(again.yiaddr as string), undefined)
  })

  it('answers nothing while the election gate says another server leads', async () => {
    leader = false
    try {
      const r = await send({type: 'discover', mac: C1, fields: {giaddr: RELAY}, wait: 500})
      assert.equal(r.type, 'none')
      assert.ok((server.stats.ignored['not-leader'] ?? 0) >= 1)
    } finally {
      leader = true
    }
    assert.equal((await send({type: 'discover', mac: C1, fields: {giaddr: RELAY}})).type, 'offer')
  })

  it('asks the gate again before answering: leadership lost while an OFFER was worked out means no OFFER', async () => {
    const before = server.stats.ignored['not-leader'] ?? 0
    let asked = 0
    gate = () => asked++ === 0
    try {
      const r = await send({type: 'discover', mac: C1, fields: {giaddr: RELAY}, wait: 500})
      assert.equal(r.type, 'none')
      assert.equal(asked, 2, 'asked when the packet came and again before the reply')
      assert.equal(server.stats.ignored['not-leader'], before + 1)
    } finally {
      gate = () => leader
    }
  })

  it('xcluster serve --dhcp answers, and stops cleanly on SIGTERM', async () => {
    await server.stop()
    const child = spawn(process.execPath, [BIN, 'serve', '--dhcp', '--interface', net.serverIf, '--etcd', etcd.endpoint], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, NO_COLOR: '1'}})
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
    // It answers once it leads the dhcp election (the only candidate here).
    for (let i = 0; i < 100 && !/"source":"dhcp","event":"started"/.test(stderr); i++) await new Promise((r) => setTimeout(r, 50))
    assert.match(stderr, /serving DHCP on xct-dhcp-prs as 10\.69\.0\.1/)
    assert.match(stderr, /"source":"dhcp","event":"started"/)
    assert.equal((await send({type: 'discover', mac: C1, fields: {giaddr: RELAY}})).type, 'offer')
    child.kill('SIGTERM')
    assert.equal(await exited, 0, stderr)
    assert.match(stderr, /"event":"stopped","by":"SIGTERM","dhcp":.*"offer":1/)
  })

  it('serve refuses bad usage with a clear error', async () => {
    const nothing = await xcluster(['serve', '--etcd', etcd.endpoint])
    assert.equal(nothing.code, 2)
    assert.match(nothing.stderr, /Nothing to serve/)
    const noIface = await xcluster(['serve', '--dhcp', '--etcd', etcd.endpoint])
    assert.equal(noIface.code, 2)
    assert.match(noIface.stderr, /--dhcp needs --interface/)
    const badIface = await xcluster(['serve', '--dhcp', '--interface', 'nonesuch0', '--etcd', etcd.endpoint])
    assert.equal(badIface.code, 3)
    assert.match(badIface.stderr, /INTERFACE_NO_ADDRESS/)
    const badUnknown = await xcluster(['serve', '--dhcp', '--interface', net.serverIf, '--unknown', 'maybe', '--etcd', etcd.endpoint])
    assert.equal(badUnknown.code, 2)
  })
})
