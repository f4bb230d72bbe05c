import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {renderDnsmasqConfig} from '../../src/lib/dhcp/dnsmasq.js'
import {exampleSpec} from '../helpers/dhcp.js'
import {requireTool} from '../helpers/tools.js'

describe('dnsmasq config: DNS and TFTP, DHCP off', () => {
  const text = renderDnsmasqConfig(exampleSpec(), {interface: 'eth0', tftpRoot: '/srv/tftp'})

  it('dnsmasq --test accepts it', () => {
    const dnsmasq = requireTool('dnsmasq', 'dnsmasq-base')
    const dir = mkdtempSync(join(tmpdir(), 'xct-dnsmasq-'))
    try {
      const file = join(dir, 'dnsmasq.conf')
      writeFileSync(file, text)
      const check = (): {status: number | null; out: string} => {
        const r = spawnSync(dnsmasq, ['--test', '-C', file], {encoding: 'utf8'})
        return {status: r.status, out: r.stdout + r.stderr}
      }
      const ok = check()
      assert.equal(ok.status, 0, ok.out)
      assert.match(ok.out, /syntax check OK/)
      // The check can fail: a misspelt option is refused.
      writeFileSync(file, `${text}\ndhcp-rnage=oops\n`)
      assert.notEqual(check().status, 0)
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it('has no dhcp-range (so no DHCP socket) and does not turn TFTP off with no-dhcp-interface', () => {
    assert.doesNotMatch(text, /^\s*dhcp-/m)
    assert.doesNotMatch(text, /^\s*no-dhcp-interface/m)
    assert.match(text, /^interface=eth0$/m)
  })

  it('names the admin host, the VIP and the fixed-address nodes; serves TFTP', () => {
    assert.match(text, /^host-record=admin\.xcluster\.lan,admin,10\.0\.0\.1$/m)
    assert.match(text, /^host-record=api\.xcluster\.lan,api,10\.0\.0\.254$/m)
    assert.match(text, /^host-record=s1\.xcluster\.lan,s1,10\.0\.0\.2$/m)
    assert.doesNotMatch(text, /host-record=c1/)
    assert.match(text, /^enable-tftp$/m)
    assert.match(text, /^tftp-root=\/srv\/tftp$/m)
  })
})
