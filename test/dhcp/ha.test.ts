import assert from 'node:assert/strict'
import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {after, before, describe, it} from 'node:test'

import {LeaseAllocator} from '../../src/lib/dhcp/allocator.js'
import type {Lease, LeaseByMac} from '../../src/lib/dhcp/lease.js'
import type {LeaderRecord} from '../../src/lib/election/records.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import type {DoraResult} from '../helpers/dhcp-sim.js'
import {BIN, ROOT} from '../helpers/cli.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {sleep, until} from '../helpers/election-harness.js'
import {NamespaceLan} from '../helpers/netns-lan.js'
import {requireOwnNetns} from '../helpers/netns.js'
import {requireTool} from '../helpers/tools.js'

const NET = 68
const P = `10.${NET}`
const CLIENTS = 1200
const PREFIX = 'xct-dha-'
/** This test process's own leg on the LAN: etcd listens here, so the daemons' namespaces reach it. */
const HERE = `${P}.0.100`
const UPLINK = `${PREFIX}up`
const SERVERS = {n1: `${P}.0.2`, n2: `${P}.0.3`} as const
type NodeName = keyof typeof SERVERS

const ip = (...args: string[]): string => execFileSync('ip', args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})

/** A real `xcluster serve --dhcp` process in its own namespace: one core node. */
class DhcpDaemon {
  proc!: ChildProcess
  stderr = ''
  /** When each JSON event line arrived here (ms), by `source/event`. */
  readonly seen = new Map<string, number>()
  private exited!: Promise<void>

  constructor(
    readonly node: NodeName,
    readonly ns: string,
    readonly etcd: string,
  ) {}

  start(): this {
    this.proc = spawn('ip', ['netns', 'exec', this.ns, process.execPath, BIN, 'serve', '--dhcp', '--interface', 'eth0', '--node', this.node, '--etcd', this.etcd], {
      env: {...process.env, NO_COLOR: '1'},
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    this.proc.stderr?.on('data', (d: Buffer) => {
      const at = Date.now()
      for (const line of d.toString().split('\n')) {
        this.stderr += line ? `${line}\n` : ''
        const m = /"source":"([^"]+)","event":"([^"]+)"/.exec(line)
        if (m && !this.seen.has(`${m[1]}/${m[2]}`)) this.seen.set(`${m[1]}/${m[2]}`, at)
      }
    })
    this.exited = new Promise((r) => this.proc.once('exit', () => r()))
    return this
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null
  }

  /** `ip netns exec` execs the command, so this is the daemon's own pid. */
  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.alive) this.proc.kill(signal)
    await this.exited
  }
}

describe('DHCP HA: two elected, fenced daemons, the leader SIGKILLed mid-stream under 1,200 clients', () => {
  let etcd: TestEtcd
  let store: EtcdStore
  const lan = new NamespaceLan(
    PREFIX,
    [
      {name: 'n1', address: SERVERS.n1},
      {name: 'n2', address: SERVERS.n2},
      // The simulated clients send from a plain UDP socket, which needs a source address.
      {name: 'cl', address: `${P}.15.253`},
    ],
    20,
  )
  const daemons = new Map<NodeName, DhcpDaemon>()
  /** Filled by the failover test, used by the fencing test. */
  let deposedToken = ''
  let currentToken = ''

  const sim = (mode: string, args: unknown): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', lan.namespace('cl'), process.execPath, '--import', 'tsx', 'test/helpers/dhcp-sim.ts', mode, JSON.stringify(args)], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let out = ''
      let err = ''
      child.stdout.on('data', (d) => (out += d))
      child.stderr.on('data', (d) => (err += d))
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
      child.on('error', reject)
      child.on('close', (code) => {
        clearTimeout(timer)
        if (code !== 0) return reject(new Error(`dhcp-sim ${mode} exited ${code}: ${err}${out}`))
        resolve(JSON.parse(out.trim().split('\n').at(-1) as string))
      })
    })
  const leader = async (): Promise<{node: NodeName; token: string} | undefined> => {
    const row = await store.getJson<LeaderRecord>(store.keys.electionLeader('dhcp'))
    return row ? {node: row.value.node as NodeName, token: row.createRevision} : undefined
  }
  const leaseCount = (): Promise<number> => store.call('count', (c) => c.getAll().prefix(store.keys.leasesPrefix()).count())
  const ours = (mac: string): boolean => mac.startsWith('02:68:')

  before(async () => {
    requireTool('ip', 'iproute2')
    requireOwnNetns()
    lan.setUp()
    ip('link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', 'vup', 'netns', lan.lan)
    ip('-n', lan.lan, 'link', 'set', 'vup', 'master', 'br0', 'up')
    ip('addr', 'add', `${HERE}/20`, 'dev', UPLINK)
    ip('link', 'set', UPLINK, 'up')
    // Only for the limited broadcast the simulated clients send: nothing else lives here.
    ip('-n', lan.namespace('cl'), 'route', 'add', 'default', 'dev', 'eth0')
    // REBINDING replies are unicast to ciaddr: every discovery address is local to the client
    // namespace (and answered by ARP), as if each client held its own.
    ip('-n', lan.namespace('cl'), 'route', 'add', 'local', `${P}.8.0/21`, 'dev', 'lo')
    etcd = await startEtcd({host: HERE})
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await applyPlan(store, await planApply(store, parseSpec(testSpecYaml(NET), 'test.yaml')))
    // n1 first, so it leads; n2 joins as the follower.
    for (const node of ['n1', 'n2'] as const) {
      const d = new DhcpDaemon(node, lan.namespace(node), etcd.endpoint).start()
      daemons.set(node, d)
      await until(`${node} serving DHCP`, () => d.stderr.includes(`serving DHCP on eth0 as ${SERVERS[node]}`) || (!d.alive && assert.fail(`${node} exited: ${d.stderr}`)), 15_000, 50)
      if (node === 'n1') await until('n1 leading dhcp', () => d.seen.has('dhcp/started'), 10_000, 20)
    }
  })

  after(async () => {
    for (const d of daemons.values()) await d.kill('SIGKILL')
    await store?.close()
    await etcd?.stop()
    try {
      ip('link', 'del', UPLINK)
    } catch {
      // went with the LAN namespace's end
    }
    lan.tearDown()
  })

  it('every client gets a lease through the failover; no address is ever given to two MACs; leases survive', async () => {
    const first = await leader()
    assert.equal(first?.node, 'n1', 'n1 leads before the stream starts')
    const follower: NodeName = first.node === 'n1' ? 'n2' : 'n1'
    deposedToken = first.token

    // Kill whichever daemon leads (as etcd says) once about half the leases exist, and keep
    // what etcd held at that moment: those leases must come through unchanged.
    let killedAt = -1
    let killedMs = 0
    let beforeKill = new Map<string, string>()
    const killer = (async () => {
      for (;;) {
        const n = await leaseCount()
        if (n >= CLIENTS / 2) {
          const lead = (await leader())!
          await daemons.get(lead.node)!.kill('SIGKILL')
          killedMs = Date.now()
          killedAt = n
          const leases = await store.listJson<Lease>(store.keys.leasesPrefix())
          beforeKill = new Map(leases.filter((l) => ours(l.value.mac)).map((l) => [l.value.mac, l.value.ip]))
          return
        }
        await sleep(20)
      }
    })()
    const out = (await sim('dora', {count: CLIENTS, macPrefix: '02:68:00:00', window: 64})) as {ms: number; results: DoraResult[]}
    await killer
    const {results} = out

    // Every client got a lease, the killed leader died mid-stream.
    const failed = results.filter((r) => !r.ip)
    assert.equal(failed.length, 0, `clients without a lease: ${JSON.stringify(failed.slice(0, 5))}`)
    assert.ok(killedAt >= CLIENTS / 2 && killedAt < CLIENTS, `the leader was killed mid-stream (at ${killedAt} leases)`)
    const servedBy = new Map<string, number>()
    for (const r of results) servedBy.set(r.server as string, (servedBy.get(r.server as string) ?? 0) + 1)
    assert.deepEqual([...servedBy.keys()].sort(), [SERVERS.n1, SERVERS.n2], `both leaders granted leases: ${JSON.stringify([...servedBy])}`)

    // The follower took over, with a larger fencing token.
    const now = await leader()
    assert.equal(now?.node, follower, 'the follower leads')
    assert.ok(BigInt(now.token) > BigInt(first.token), `the new token ${now.token} is larger than ${first.token}`)
    currentToken = now.token

    // The clients' view: every ACKed address went to exactly one MAC, one address per MAC.
    const owner = new Map<string, string>()
    for (const r of results) {
      const prev = owner.get(r.ip as string)
      assert.ok(prev === undefined || prev === r.mac, `${r.ip} was ACKed to ${prev} and ${r.mac}`)
      owner.set(r.ip as string, r.mac)
    }
    assert.equal(owner.size, CLIENTS, 'as many addresses as clients')

    // etcd's view: one bound lease per MAC and per address, the MAC index agrees both ways,
    // and it is what each client was told.
    const leases = (await store.listJson<Lease>(store.keys.leasesPrefix())).filter((l) => ours(l.value.mac))
    assert.equal(leases.length, CLIENTS, 'one lease per client in etcd')
    assert.equal(new Set(leases.map((l) => l.value.mac)).size, CLIENTS, 'no MAC holds two addresses')
    assert.equal(new Set(leases.map((l) => l.value.ip)).size, CLIENTS, 'no address holds two MACs')
    for (const l of leases) {
      assert.equal(l.value.state, 'bound')
      assert.equal(owner.get(l.value.ip), l.value.mac, `etcd's lease on ${l.value.ip} matches the client's ACK`)
    }
    const indexPrefix = store.keys.leasesByMacPrefix()
    const index = new Map((await store.listJson<LeaseByMac>(indexPrefix)).map((r) => [r.key.slice(indexPrefix.length).replaceAll('-', ':'), r.value.ip]))
    for (const r of results) assert.equal(index.get(r.mac), r.ip, `by-mac index of ${r.mac}`)
    const afterKill = leases.filter((l) => l.value.grantedBy === SERVERS[follower]).length
    assert.ok(afterKill > 0, 'the new leader wrote leases')

    // Leases granted before the kill are intact: same address in etcd, and the new leader
    // re-ACKs the same address to every client that rebinds (its granting server is gone).
    assert.ok(beforeKill.size >= CLIENTS / 2)
    for (const [mac, addr] of beforeKill) assert.equal(owner.get(addr), mac, `${mac} kept ${addr} through the failover`)
    const rebind = (await sim('rebind', {leases: [...beforeKill].map(([mac, addr]) => ({mac, ip: addr})), window: 64})) as {
      ms: number
      results: {mac: string; ip: string; type: string; yiaddr?: string}[]
    }
    const wrong = rebind.results.filter((r) => r.type !== 'ack' || r.yiaddr !== r.ip)
    assert.equal(wrong.length, 0, `rebinding clients not re-ACKed their address: ${JSON.stringify(wrong.slice(0, 5))}`)
    const etcdAfter = new Map((await store.listJson<Lease>(store.keys.leasesPrefix())).map((l) => [l.value.mac, l.value.ip]))
    for (const [mac, addr] of beforeKill) assert.equal(etcdAfter.get(mac), addr)

    const survivor = daemons.get(follower)!
    const takeover = survivor.seen.get('dhcp/started')
    assert.ok(takeover, `${follower} started serving as leader`)
    const naks = results.reduce((n, r) => n + r.naks, 0)
    const retried = results.filter((r) => r.attempts > 1).length
    // Written by the killed leader, but its ACK never reached the client: the new leader gave the same address.
    const ackLost = results.filter((r) => beforeKill.has(r.mac) && r.server !== SERVERS[first.node]).length
    console.log(
      `# ${CLIENTS} DORA in ${out.ms} ms; leader ${first.node} (token ${first.token}) SIGKILLed at ${killedAt} leases; ` +
        `${follower} led (token ${now.token}) ${takeover - killedMs} ms later and granted ${servedBy.get(SERVERS[follower])}; ` +
        `${retried} clients retried, ${naks} NAKs, ${ackLost} ACKs lost in the kill re-ACKed with the same address; ${beforeKill.size} pre-kill leases rebound in ${rebind.ms} ms, all unchanged`,
    )
  })

  it("refuses a deposed leader's lease write in etcd: nothing is written", async () => {
    assert.ok(deposedToken && currentToken && deposedToken !== currentToken, 'the failover test ran')
    const c1 = {mac: '02:58:43:00:02:01', hostname: 'c1'}
    const address = `${P}.0.52`
    const leaderKey = store.keys.electionLeader('dhcp')
    // Every DHCP key with its revision. Not etcd's global revision: the surviving daemon keeps
    // writing its election view meanwhile, which is not what this checks.
    const dhcpKeys = async (): Promise<string[]> =>
      [...(await store.listJson(store.keys.leasesPrefix())), ...(await store.listJson(store.keys.leasesByMacPrefix()))].map((kv) => `${kv.key}@${kv.modRevision}`).sort()
    const allocatorWith = (token: string, serverId: string): LeaseAllocator => new LeaseAllocator(store, {serverId, unknown: 'ignore', fence: (txn) => void txn.ifCreatedAt(leaderKey, token)})

    // The killed leader's allocator, come back with its old token (a process paused past its lease).
    const deposed = allocatorWith(deposedToken, SERVERS.n1)
    await deposed.start()
    try {
      const before = await dhcpKeys()
      const result = await deposed.commit(c1, address)
      assert.equal(result?.ok, false, `the deposed write was refused: ${JSON.stringify(result)}`)
      assert.equal(await store.getJson(store.keys.lease(address)), undefined, 'no lease written')
      assert.equal(await store.getJson(store.keys.leaseByMac(c1.mac)), undefined, 'no index entry written')
      assert.deepEqual(await dhcpKeys(), before, 'no DHCP key changed')
    } finally {
      await deposed.stop()
    }

    // The control: the same write with the current leader's token goes through.
    const current = allocatorWith(currentToken, SERVERS.n2)
    await current.start()
    try {
      const result = await current.commit(c1, address)
      assert.equal(result?.ok, true, JSON.stringify(result))
      assert.equal((await store.getJson<Lease>(store.keys.lease(address)))?.value.mac, c1.mac)
    } finally {
      await current.stop()
    }
  })
})
