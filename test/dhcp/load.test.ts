import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync, chmodSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {DhcpServer} from '../../src/lib/dhcp/server.js'
import type {Lease, LeaseByMac} from '../../src/lib/dhcp/lease.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import type {DoraResult} from '../helpers/dhcp-sim.js'
import {BIN} from '../helpers/cli.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {ClientNet} from '../helpers/netns.js'
import {requireTool} from '../helpers/tools.js'

const NET = 67
const A = `10.${NET}.0.1`
const B = `10.${NET}.0.90`
const CLIENTS = 1200
const FUZZ = 100_000

describe('DHCP under load: two servers on one etcd, 1,200 clients, 100,000 malformed packets', () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let a: DhcpServer
  /** The second server is a real `xcluster serve --dhcp` process, so it can be SIGKILLed. */
  let b: ChildProcess
  const net = new ClientNet('ld')
  const log: string[] = []

  const sim = async (mode: string, args: unknown): Promise<unknown> => {
    const r = await net.exec(['node', '--import', 'tsx', 'test/helpers/dhcp-sim.ts', mode, JSON.stringify(args)], {timeoutMs: 60_000})
    assert.equal(r.code, 0, r.out)
    return JSON.parse(r.out.trim().split('\n').at(-1) as string)
  }
  const revision = async (): Promise<number> => Number((await store.call('rev', (c) => c.get('x').exec())).header.revision)

  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await applyPlan(store, await planApply(store, parseSpec(testSpecYaml(NET), 'test.yaml')))
    net.create([`${A}/20`, `${B}/20`])
    // The simulated clients send from a plain UDP socket, which needs a source address.
    net.addAddress(`10.${NET}.15.253/20`)
    a = new DhcpServer({store, interface: net.serverIf, address: A, unknown: 'discover', log: (l) => log.push(`A ${l}`)})
    await a.start()
    b = spawn(process.execPath, [BIN, 'serve', '--dhcp', '--interface', net.serverIf, '--address', B, '--etcd', etcd.endpoint], {stdio: ['ignore', 'ignore', 'pipe']})
    let stderr = ''
    b.stderr?.on('data', (d) => (stderr += d))
    for (let i = 0; i < 200 && !/"source":"dhcp","event":"started"/.test(stderr); i++) await new Promise((r) => setTimeout(r, 50))
    assert.match(stderr, /serving DHCP on \S+ as 10\.67\.0\.90/)
  })

  after(async () => {
    await a?.stop()
    b?.kill('SIGKILL')
    net.destroy()
    await store?.close()
    await etcd?.stop()
  })

  it('never gives one address to two MACs, with one server SIGKILLed mid-stream', async () => {
    const leasesPrefix = store.keys.leasesPrefix()
    let stoppedAt = -1
    const stopper = (async () => {
      for (;;) {
        const n = await store.call('count', (c) => c.getAll().prefix(leasesPrefix).count())
        if (n >= CLIENTS / 2) {
          stoppedAt = n
          b.kill('SIGKILL')
          return
        }
        await new Promise((r) => setTimeout(r, 25))
      }
    })()
    const out = (await sim('dora', {count: CLIENTS, macPrefix: '02:77:00:00', window: 64, prefer: [A, B]})) as {ms: number; results: DoraResult[]}
    await stopper
    const {results} = out
    const failed = results.filter((r) => !r.ip)
    assert.equal(failed.length, 0, `clients without a lease: ${JSON.stringify(failed.slice(0, 5))}`)
    // From the clients' side: every ACKed address went to exactly one MAC.
    const owner = new Map<string, string>()
    for (const r of results) {
      const prev = owner.get(r.ip as string)
      assert.ok(prev === undefined || prev === r.mac, `${r.ip} was ACKed to ${prev} and ${r.mac}`)
      owner.set(r.ip as string, r.mac)
    }
    assert.equal(owner.size, CLIENTS)
    const servedBy = new Set(results.map((r) => r.server))
    assert.deepEqual([...servedBy].sort(), [A, B].sort(), 'both servers granted leases')
    assert.ok(stoppedAt > 0 && stoppedAt < CLIENTS, 'B was killed mid-stream')
    // From etcd's side: one lease per MAC, the MAC index agrees, and it matches what clients got.
    const leases = await store.listJson<Lease>(leasesPrefix)
    const ours = leases.filter((l) => l.value.mac.startsWith('02:77:'))
    assert.equal(ours.length, CLIENTS)
    assert.equal(new Set(ours.map((l) => l.value.mac)).size, CLIENTS)
    for (const l of ours) assert.equal(owner.get(l.value.ip), l.value.mac)
    const index = await store.listJson<LeaseByMac>(store.keys.leasesByMacPrefix())
    const indexed = new Map(index.map((r) => [r.key.slice(store.keys.leasesByMacPrefix().length).replaceAll('-', ':'), r.value.ip]))
    for (const r of results) assert.equal(indexed.get(r.mac), r.ip)
    const naks = results.reduce((n, r) => n + r.naks, 0)
    console.log(`# ${CLIENTS} DORA in ${out.ms} ms (${Math.round((CLIENTS * 1000) / out.ms)}/s) with 2 servers; B killed after ${stoppedAt} leases; ${naks} NAKs from lost races`)
  })

  it(`survives ${FUZZ.toLocaleString('en')} malformed packets without a write to etcd, then serves a real client`, async () => {
    const rev = await revision()
    const before = a.stats.received
    const droppedBefore = Object.values(a.stats.dropped).reduce((x, y) => x + y, 0)
    const out = (await sim('fuzz', {count: FUZZ, target: A})) as {sent: number; ms: number}
    assert.equal(out.sent, FUZZ)
    // Let the server drain its socket buffer.
    for (let last = -1; a.stats.received !== last;) {
      last = a.stats.received
      await new Promise((r) => setTimeout(r, 200))
    }
    const received = a.stats.received - before
    const dropped = Object.values(a.stats.dropped).reduce((x, y) => x + y, 0) - droppedBefore
    console.log(`# fuzz: ${out.sent} sent in ${out.ms} ms, ${received} received, ${dropped} dropped: ${JSON.stringify(a.stats.dropped)}`)
    assert.ok(received >= FUZZ * 0.99, `the server saw ${received} of ${FUZZ} (socket buffer overflow?)`)
    assert.equal(dropped, received, 'every malformed packet was dropped and counted')
    assert.equal(a.stats.errors, 0)
    assert.equal(await revision(), rev, 'no etcd writes')

    const dir = mkdtempSync(join(tmpdir(), 'xct-dhcp-'))
    try {
      const script = join(dir, 'u.sh')
      writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] && echo $ip > ${dir}/ip\nexit 0\n`)
      chmodSync(script, 0o755)
      net.setMac('02:58:43:00:03:01')
      const r = await net.exec([requireTool('busybox', 'busybox'), 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', script])
      assert.equal(r.code, 0, r.out)
      assert.equal(readFileSync(join(dir, 'ip'), 'utf8').trim(), `10.${NET}.0.71`, 'f1 gets a frontend address')
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
