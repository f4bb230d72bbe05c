import assert from 'node:assert/strict'
import {after, before, beforeEach, describe, it} from 'node:test'

import {LeaseAllocator} from '../../src/lib/dhcp/allocator.js'
import type {Lease} from '../../src/lib/dhcp/lease.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {settings} from '../../src/lib/settings.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

// A compute range of three addresses, one of them c2's fixed IP: two to share between c1, c3, c4.
const SPEC = testSpecYaml(70)
  .replace('compute: 10.70.0.51-10.70.0.70', 'compute: 10.70.0.51-10.70.0.53')
  .replace('  - {name: f1,', '  - {name: c3, mac: "02:58:43:00:02:03"}\n  - {name: c4, mac: "02:58:43:00:02:04"}\n  - {name: f1,')
const MAC = {c1: '02:58:43:00:02:01', c2: '02:58:43:00:02:02', c3: '02:58:43:00:02:03', c4: '02:58:43:00:02:04', s1: '02:58:43:00:01:01', x: '02:99:00:00:00:09'}

describe('LeaseAllocator against real etcd', () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let clock = Date.now()
  const allocators: LeaseAllocator[] = []

  const allocator = async (serverId = '10.70.0.1', unknown: 'discover' | 'ignore' = 'discover'): Promise<LeaseAllocator> => {
    const a = new LeaseAllocator(store, {serverId, unknown, now: () => clock})
    await a.start()
    allocators.push(a)
    return a
  }
  const grant = async (a: LeaseAllocator, mac: string): Promise<string | undefined> => {
    const offer = await a.offer({mac})
    if (!offer) return undefined
    const r = await a.commit({mac}, offer.ip)
    return r?.ok ? r.lease.ip : undefined
  }

  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await applyPlan(store, await planApply(store, parseSpec(SPEC, 'test.yaml')))
  })
  beforeEach(async () => {
    for (const a of allocators.splice(0)) await a.stop()
    await store.call('clear', (c) => c.delete().prefix(`${store.keys.prefix}dhcp/`).exec())
    clock = Date.now()
  })
  after(async () => {
    for (const a of allocators) await a.stop()
    await store.close()
    await etcd.stop()
  })

  it("types by MAC: fixed IP, the type's range skipping fixed IPs, discovery for unknown MACs", async () => {
    const a = await allocator()
    assert.equal(await grant(a, MAC.s1), '10.70.0.2')
    assert.equal(await grant(a, MAC.c2), '10.70.0.51')
    assert.equal(await grant(a, MAC.c1), '10.70.0.52')
    assert.equal(await grant(a, MAC.x), '10.70.8.1')
    const lease = (await store.getJson<Lease>(store.keys.lease('10.70.0.52')))!.value
    assert.deepEqual({...lease, expiresAt: undefined}, {ip: '10.70.0.52', mac: MAC.c1, node: 'c1', type: 'compute', state: 'bound', grantedBy: '10.70.0.1', expiresAt: undefined})
    assert.equal((await store.getJson<{ip: string}>(store.keys.leaseByMac(MAC.c1)))?.value.ip, '10.70.0.52')
  })

  it("refuses addresses that are not the client's: wrong range, someone else's fixed IP, another MAC's lease", async () => {
    const a = await allocator()
    await grant(a, MAC.c1)
    assert.deepEqual(await a.commit({mac: MAC.c3}, '10.70.0.52'), {ok: false, reason: '10.70.0.52 is leased to another client'})
    assert.equal((await a.commit({mac: MAC.c3}, '10.70.0.51'))?.ok, false, "c2's fixed IP")
    assert.equal((await a.commit({mac: MAC.c3}, '10.70.0.11'))?.ok, false, 'a storage address')
    assert.equal((await a.commit({mac: MAC.s1}, '10.70.0.3'))?.ok, false, 's1 has a fixed IP')
    assert.equal((await a.commit({mac: MAC.x}, '10.70.0.1'))?.ok, false, 'the gateway')
  })

  it('a full range offers nothing; an expired lease is reclaimed by another MAC', async () => {
    const a = await allocator()
    assert.equal(await grant(a, MAC.c1), '10.70.0.52')
    assert.equal(await grant(a, MAC.c3), '10.70.0.53')
    assert.equal(await a.offer({mac: MAC.c4}), undefined)
    clock += (settings.dhcp.leaseSeconds + 1) * 1000
    assert.equal(await grant(a, MAC.c4), '10.70.0.52')
    assert.equal((await store.getJson<Lease>(store.keys.lease('10.70.0.52')))?.value.mac, MAC.c4)
  })

  it('renewals extend once the lease has aged; a fresh one is ACKed from the cache', async () => {
    const a = await allocator()
    await grant(a, MAC.c1)
    const first = await store.getJson<Lease>(store.keys.lease('10.70.0.52'))
    clock += 60_000
    const cached = await a.commit({mac: MAC.c1}, '10.70.0.52')
    assert.ok(cached?.ok && cached.leaseSeconds === settings.dhcp.leaseSeconds - 60)
    assert.equal((await store.getJson<Lease>(store.keys.lease('10.70.0.52')))?.modRevision, first?.modRevision)
    clock += settings.dhcp.leaseSeconds * 500 // half the lease
    const renewed = await a.commit({mac: MAC.c1}, '10.70.0.52')
    assert.ok(renewed?.ok && renewed.leaseSeconds === settings.dhcp.leaseSeconds)
    const after = await store.getJson<Lease>(store.keys.lease('10.70.0.52'))
    assert.equal(Date.parse(after!.value.expiresAt), clock + settings.dhcp.leaseSeconds * 1000)
  })

  it('a restarted allocator forgets nothing', async () => {
    const a = await allocator()
    await grant(a, MAC.c1)
    await grant(a, MAC.c3)
    await a.stop()
    const b = await allocator()
    assert.equal(await grant(b, MAC.c3), '10.70.0.53')
    assert.equal(await grant(b, MAC.c1), '10.70.0.52')
    assert.equal(await b.offer({mac: MAC.c4}), undefined, 'still full')
  })

  it('two allocators racing for the last address: exactly one wins', async () => {
    const a = await allocator('10.70.0.1')
    const b = await allocator('10.70.0.90')
    await grant(a, MAC.c1)
    await new Promise((r) => setTimeout(r, 100)) // b's watch sees it
    // Both offer .53 (their own holds are separate); both commit at once.
    const [oa, ob] = [await a.offer({mac: MAC.c3}), await b.offer({mac: MAC.c4})]
    assert.equal(oa?.ip, '10.70.0.53')
    assert.equal(ob?.ip, '10.70.0.53')
    const results = await Promise.all([a.commit({mac: MAC.c3}, '10.70.0.53'), b.commit({mac: MAC.c4}, '10.70.0.53')])
    assert.equal(results.filter((r) => r?.ok).length, 1, JSON.stringify(results))
    const winner = results[0]?.ok ? MAC.c3 : MAC.c4
    assert.equal((await store.getJson<Lease>(store.keys.lease('10.70.0.53')))?.value.mac, winner)
  })

  it('a declined address is held out of the pool; a released one goes back to it', async () => {
    const a = await allocator()
    assert.equal(await grant(a, MAC.c1), '10.70.0.52')
    assert.ok(await a.decline(MAC.c1, '10.70.0.52'))
    assert.equal((await store.getJson<Lease>(store.keys.lease('10.70.0.52')))?.value.state, 'declined')
    assert.equal(await grant(a, MAC.c1), '10.70.0.53', 'the client gets another address')
    assert.equal(await a.offer({mac: MAC.c3}), undefined, '.52 is held, .53 is taken')
    assert.ok(await a.release(MAC.c1, '10.70.0.53'))
    assert.equal(await store.getJson(store.keys.lease('10.70.0.53')), undefined)
    assert.equal(await grant(a, MAC.c3), '10.70.0.53')
    assert.equal(await a.release(MAC.c1, '10.70.0.53'), false, "not c1's any more")
  })

  it('a fenced allocator writes nothing once its fence no longer holds (a deposed leader)', async () => {
    const leaderKey = `${store.keys.prefix}test-leader`
    await store.put(leaderKey, 'a')
    const a = new LeaseAllocator(store, {serverId: '10.70.0.1', unknown: 'discover', now: () => clock, fence: (txn) => txn.ifValue(leaderKey, 'a')})
    await a.start()
    allocators.push(a)
    assert.equal(await grant(a, MAC.c1), '10.70.0.52', 'writes while the fence holds')
    await store.put(leaderKey, 'b')
    const before = await store.snapshot()
    assert.equal((await a.commit({mac: MAC.c3}, '10.70.0.53'))?.ok, false)
    assert.equal(await a.release(MAC.c1, '10.70.0.52'), false)
    // An unknown MAC is recorded as discovered in a batch a moment later: fenced too.
    assert.ok(await a.offer({mac: MAC.x}))
    await new Promise((r) => setTimeout(r, settings.dhcp.discoveredBatchMs * 3))
    assert.deepEqual(await store.snapshot(), before, 'nothing written')
  })

  it('with unknown: ignore, an unknown MAC gets nothing and nothing is written', async () => {
    const a = await allocator('10.70.0.1', 'ignore')
    const before = await store.snapshot()
    assert.equal(await a.offer({mac: MAC.x}), undefined)
    assert.equal(await a.commit({mac: MAC.x}, '10.70.8.1'), undefined)
    await a.stop()
    assert.deepEqual(await store.snapshot(), before)
  })
})

describe('LeaseAllocator: what a stream of new MACs leaves in etcd is bounded', () => {
  // Its own cluster, with a discovery range of four addresses.
  const SMALL = testSpecYaml(70).replace('cluster: xcluster', 'cluster: bounds').replace('discovery: 10.70.8.1-10.70.15.250', 'discovery: 10.70.8.1-10.70.8.4')
  let etcd: TestEtcd
  let store: EtcdStore

  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'bounds'})
    await applyPlan(store, await planApply(store, parseSpec(SMALL, 'test.yaml')))
  })
  after(async () => {
    await store.close()
    await etcd.stop()
  })

  it('200 MACs through a four-address range as leases expire and are released: never more index entries than leases', async () => {
    let clock = Date.now()
    const a = new LeaseAllocator(store, {serverId: '10.70.0.1', unknown: 'discover', now: () => clock})
    await a.start()
    try {
      for (let round = 0; round < 50; round++) {
        for (let i = 0; i < 4; i++) {
          const mac = `02:70:00:00:${round.toString(16).padStart(2, '0')}:0${i}`
          const offer = await a.offer({mac})
          assert.ok(offer, `round ${round}: an address for ${mac}`)
          const r = await a.commit({mac, hostname: `${'x'.repeat(300)}.example`}, offer.ip)
          assert.ok(r?.ok, JSON.stringify(r))
          assert.equal(r.lease.hostname, undefined, 'a hostname that is no DNS label is not stored')
        }
        // Every other round the clients give their addresses back; else their leases run out.
        if (round % 2 === 0) for (const l of await store.listJson<Lease>(store.keys.leasesPrefix())) await a.release(l.value.mac, l.value.ip)
        else clock += (settings.dhcp.discoveryLeaseSeconds + 1) * 1000
      }
      const leases = await store.listJson<Lease>(store.keys.leasesPrefix())
      const index = await store.listJson<{ip: string}>(store.keys.leasesByMacPrefix())
      assert.ok(leases.length <= 4, `${leases.length} leases`)
      assert.ok(index.length <= 4, `${index.length} index entries for ${leases.length} leases after 200 MACs`)
      // Each index entry names an address whose lease (if any) is its MAC's.
      const byIp = new Map(leases.map((l) => [l.value.ip, l.value.mac]))
      for (const row of index) {
        const mac = row.key.slice(store.keys.leasesByMacPrefix().length).replaceAll('-', ':')
        assert.ok(!byIp.has(row.value.ip) || byIp.get(row.value.ip) === mac, `${mac} is indexed at ${row.value.ip}, leased to ${byIp.get(row.value.ip)}`)
      }
    } finally {
      await a.stop()
    }
  })
})
