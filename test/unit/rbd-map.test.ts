/**
 * How a leader maps its service's image: the `rbd device map|unmap|list` lines (as `rbd help
 * device map` of Ceph 16 documents them) and the choice of driver. The mapping itself is proven
 * on a real kernel's rbd driver in test/etcd/election-rbd-map.test.ts.
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {mapArgs, mapDeviceType, parseMappings, unmapArgs} from '../../src/lib/ceph/rbd-map.js'

describe('rbd device map for a leader', () => {
  it('takes the exclusive lock with the mapping, on a client of its own, and waits for udev only where it runs', () => {
    assert.deepEqual(mapArgs('rbd/pg', 'krbd', true), ['device', 'map', '--device-type', 'krbd', '--exclusive', '--options', 'noshare', 'rbd/pg'])
    assert.deepEqual(mapArgs('rbd/ns/pg', 'krbd', false), ['device', 'map', '--device-type', 'krbd', '--exclusive', '--options', 'noshare,noudev', 'rbd/ns/pg'])
    // rbd-nbd has a process (and so a client) per mapping, and neither krbd option.
    assert.deepEqual(mapArgs('rbd/pg', 'nbd', false), ['device', 'map', '--device-type', 'nbd', '--exclusive', 'rbd/pg'])
  })

  it('unmaps the device it mapped; force only for a stale one', () => {
    assert.deepEqual(unmapArgs('/dev/rbd0', 'krbd', true), ['device', 'unmap', '--device-type', 'krbd', '/dev/rbd0'])
    assert.deepEqual(unmapArgs('/dev/rbd0', 'krbd', false, true), ['device', 'unmap', '--device-type', 'krbd', '--options', 'force,noudev', '/dev/rbd0'])
    assert.deepEqual(unmapArgs('/dev/nbd1', 'nbd', false, true), ['device', 'unmap', '--device-type', 'nbd', '/dev/nbd1'])
  })

  it('reads both drivers’ listings back as the spec names images', () => {
    const krbd = '[{"id":"0","pool":"rbd","namespace":"","name":"pg","snap":"-","device":"/dev/rbd0"},{"id":"1","pool":"rbd","namespace":"ns","name":"qd","snap":"-","device":"/dev/rbd1"}]'
    assert.deepEqual(parseMappings(krbd, 'krbd'), [
      {image: 'rbd/pg', device: '/dev/rbd0', type: 'krbd'},
      {image: 'rbd/ns/qd', device: '/dev/rbd1', type: 'krbd'},
    ])
    const nbd = '[{"id":4242,"pool":"rbd","namespace":"","image":"pg","snap":"-","device":"/dev/nbd0"}]'
    assert.deepEqual(parseMappings(nbd, 'nbd'), [{image: 'rbd/pg', device: '/dev/nbd0', type: 'nbd'}])
    assert.deepEqual(parseMappings('', 'krbd'), [])
  })

  it('auto takes krbd where the kernel has it, rbd-nbd where not; none leaves the image to the service', async () => {
    const kernel = (has: boolean) => async () => has
    assert.equal(await mapDeviceType('auto', kernel(true)), 'krbd')
    assert.equal(await mapDeviceType(undefined, kernel(false)), 'nbd')
    assert.equal(await mapDeviceType('krbd', kernel(false)), 'krbd')
    assert.equal(await mapDeviceType('nbd', kernel(true)), 'nbd')
    assert.equal(await mapDeviceType('none', kernel(true)), null)
  })
})
