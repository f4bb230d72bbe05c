import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {linkLocalFromMac, managementAddress} from '../../src/lib/nodes/address.js'

describe('management addresses', () => {
  it('derives the EUI-64 link-local address the kernel gives a NIC', () => {
    // Read off a lab node: eth0 with 02:58:43:00:01:04 has fe80::58:43ff:fe00:104.
    assert.equal(linkLocalFromMac('02:58:43:00:01:04'), 'fe80::58:43ff:fe00:104')
    assert.equal(linkLocalFromMac('52:54:00:12:34:56'), 'fe80::5054:ff:fe12:3456')
  })
  it('prefers the IPv4 address, else the link-local one on the LAN interface', () => {
    assert.equal(managementAddress({ip: '10.0.0.2', mac: '02:58:43:00:01:01'}, 'eth0'), '10.0.0.2')
    assert.equal(managementAddress({mac: '02:58:43:00:01:04'}, 'eth0'), 'fe80::58:43ff:fe00:104%eth0')
  })
})
