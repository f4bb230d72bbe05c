/**
 * DHCP never leases a service VIP, even when a stored spec has one inside a range (the spec check
 * refuses that now, but a spec stored before it, or written by hand, may still have it).
 */
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {LeaseAllocator} from '../../src/lib/dhcp/allocator.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {checkSpecText, parseSpec} from '../../src/lib/spec/parse.js'
import type {ClusterSpec} from '../../src/lib/spec/types.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

// Three compute addresses: .51 is c2's fixed IP, .52 a service's VIP, so only .53 is leasable.
const SPEC = testSpecYaml(71).replace('compute: 10.71.0.51-10.71.0.70', 'compute: 10.71.0.51-10.71.0.53').replace('  - {name: f1,', '  - {name: c3, mac: "02:58:43:00:02:03"}\n  - {name: f1,')
const VIP = '10.71.0.52'
const MAC = {c1: '02:58:43:00:02:01', c3: '02:58:43:00:02:03'}

describe('DHCP and service VIPs', () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let allocator: LeaseAllocator

  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    const spec = parseSpec(SPEC, 'test.yaml')
    await applyPlan(store, await planApply(store, spec))
    // The check refuses such a spec; store it as one from before the check would be.
    const withVip: ClusterSpec = {...spec, services: [{name: 'pg', ttl: 2, unit: 'postgresql.service', vip: VIP}]}
    const checked = checkSpecText(`${SPEC}services:\n  - {name: pg, unit: postgresql.service, vip: ${VIP}}\n`, 'test.yaml')
    assert.equal(checked.ok, false, 'the spec check refuses a VIP inside a DHCP range')
    await store.put(store.keys.spec(), withVip)
    allocator = new LeaseAllocator(store, {serverId: '10.71.0.1', unknown: 'discover'})
    await allocator.start()
  })
  after(async () => {
    await allocator?.stop()
    await store?.close()
    await etcd?.stop()
  })

  it('offers every other address of the range but never the VIP, and refuses a request for it', async () => {
    const offer = await allocator.offer({mac: MAC.c1})
    assert.equal(offer?.ip, '10.71.0.53')
    assert.equal((await allocator.commit({mac: MAC.c1}, offer!.ip))?.ok, true)
    assert.equal(await allocator.offer({mac: MAC.c3}), undefined, 'the range is full: the VIP is not offered')
    const asked = await allocator.commit({mac: MAC.c3}, VIP)
    assert.equal(asked?.ok, false)
    assert.equal(await store.getJson(store.keys.lease(VIP)), undefined)
  })
})
