import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {after, before, describe, it} from 'node:test'

import {LeaseAllocator, type Offer} from '../../src/lib/dhcp/allocator.js'
import type {Lease, LeaseByMac} from '../../src/lib/dhcp/lease.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {sleep} from '../helpers/election-harness.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {TcpProxy} from '../helpers/tcp-proxy.js'
import {requireTool} from '../helpers/tools.js'

const NET = 73
const SPEC = testSpecYaml(NET)
const C3 = '02:58:43:00:02:03'
const C4 = '02:58:43:00:02:04'
const withNodes = (...nodes: [string, string][]): string => SPEC.replace('  - {name: f1,', `${nodes.map(([name, mac]) => `  - {name: ${name}, mac: "${mac}"}\n`).join('')}  - {name: f1,`)

/** Polls an async check until it returns a value, or fails after `timeoutMs`. */
async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(100)
  }
}

describe("The DHCP allocator's cache follows etcd through a lost stream, a compaction and its own lag", () => {
  let etcd: TestEtcd
  let store: EtcdStore
  const closers: (() => Promise<void>)[] = []

  /** An allocator whose every etcd call goes through its own proxy. */
  const behindProxy = async (serverId: string, unknown: 'discover' | 'ignore', log?: (line: string) => void): Promise<{allocator: LeaseAllocator; proxy: TcpProxy}> => {
    const proxy = await new TcpProxy('127.0.0.1', etcd.clientPort).start()
    const viaProxy = new EtcdStore({endpoints: [proxy.endpoint], cluster: 'xcluster'})
    const allocator = new LeaseAllocator(viaProxy, {serverId, unknown, ...(log ? {log} : {})})
    await allocator.start()
    closers.push(async () => {
      proxy.heal()
      await allocator.stop()
      await viaProxy.close()
      await proxy.stop()
    })
    return {allocator, proxy}
  }
  const apply = async (yaml: string): Promise<void> => {
    await applyPlan(store, await planApply(store, parseSpec(yaml, 'test.yaml')))
  }
  const revision = async (): Promise<number> => Number((await store.call('rev', (c) => c.get('x').exec())).header.revision)

  before(async () => {
    requireTool('etcdctl', 'etcd-client')
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await apply(SPEC)
  })
  after(async () => {
    for (const close of closers.reverse()) await close()
    await store?.close()
    await etcd?.stop()
  })

  it('reloads when etcd compacted past its watch: sees a MAC registered while it was cut off, then follows changes again', async () => {
    const lines: string[] = []
    const {allocator, proxy} = await behindProxy(`10.${NET}.0.1`, 'ignore', (l) => lines.push(l))
    assert.equal(await allocator.offer({mac: C3}), undefined, 'c3 is not registered yet')

    // Cut off: c3 is registered meanwhile, and etcd compacts that history away.
    proxy.cut()
    await sleep(500)
    await apply(withNodes(['c3', C3]))
    // Later revisions, so compacting at the newest removes the one that registered c3.
    const scratch = store.keys.lease(`10.${NET}.9.200`)
    await store.put(scratch, {})
    await store.delete(scratch)
    const compactedAt = await revision()
    execFileSync('etcdctl', ['--endpoints', etcd.endpoint, 'compact', String(compactedAt)], {stdio: 'pipe'})
    proxy.heal()

    // Only a fresh snapshot can know c3: the events that registered it are gone.
    const offer = await eventually<Offer>('a typed offer for c3', async () => (await allocator.offer({mac: C3})) ?? undefined)
    assert.equal(offer.identity.type, 'compute')
    assert.equal(offer.identity.node, 'c3')
    assert.ok(allocator.load.reloads >= 1, `the cache was reloaded: ${lines.join(' | ')}`)
    assert.ok(
      lines.some((l) => /cancelled by etcd/.test(l)),
      lines.join('\n'),
    )

    // Following again: c4, registered now, gets its typed lease, written to etcd.
    await apply(withNodes(['c3', C3], ['c4', C4]))
    const c4 = await eventually<Offer>('a typed offer for c4', async () => (await allocator.offer({mac: C4})) ?? undefined)
    const granted = await allocator.commit({mac: C4}, c4.ip)
    assert.ok(granted?.ok, JSON.stringify(granted))
    const lease = await store.getJson<Lease>(store.keys.lease(c4.ip))
    assert.deepEqual([lease?.value.mac, lease?.value.node, lease?.value.type], [C4, 'c4', 'compute'])
    console.log(`# compacted at revision ${compactedAt}; ${allocator.load.reloads} reload(s); log: ${lines.join(' | ')}`)
  })

  it('never ACKs from a lagging cache what etcd no longer holds: a cached renewal is checked in etcd first', async () => {
    const mac = '02:73:00:00:00:01'
    const direct = new LeaseAllocator(store, {serverId: `10.${NET}.0.1`, unknown: 'discover'})
    await direct.start()
    closers.push(() => direct.stop())
    const {allocator: lagging, proxy} = await behindProxy(`10.${NET}.0.90`, 'discover')

    const first = await direct.offer({mac})
    assert.ok(first)
    assert.ok((await direct.commit({mac}, first.ip))?.ok)
    await sleep(500) // the lagging server's watch sees the lease

    // Its link stalls; meanwhile the client gives its address back and takes another one at
    // the other server.
    proxy.freeze()
    const other = `10.${NET}.9.9`
    assert.ok(await direct.release(mac, first.ip))
    assert.ok((await direct.commit({mac}, other))?.ok)
    assert.equal(await store.getJson(store.keys.lease(first.ip)), undefined, 'the first address is free in etcd')
    // The client renews its old address at the lagging server (its cache still shows it bound).
    const answer = lagging.commit({mac}, first.ip)
    await sleep(500)
    proxy.heal()
    const result = await answer

    // Whatever it answered, etcd holds exactly that: an ACK is never only the cache's word. And
    // the address the other server ACKed last stays the client's: a stale REQUEST must not
    // take it away.
    const lease = await store.getJson<Lease>(store.keys.lease(first.ip))
    const index = await store.getJson<LeaseByMac>(store.keys.leaseByMac(mac))
    assert.equal((await store.getJson<Lease>(store.keys.lease(other)))?.value.mac, mac, `${other}, ACKed last, is still the client's`)
    if (result?.ok) {
      assert.equal(lease?.value.mac, mac, `ACKed ${first.ip}, which etcd holds for ${lease?.value.mac ?? 'nobody'}`)
    } else assert.equal(index?.value.ip, other)
    console.log(
      `# the lagging server answered ${JSON.stringify(result?.ok ? {ok: true, ip: result.lease.ip} : result)}; etcd: ${first.ip} -> ${lease?.value.mac ?? 'free'}, index -> ${index?.value.ip}`,
    )
  })
})
