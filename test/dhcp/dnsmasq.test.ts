/**
 * The rendered dnsmasq config run by a real dnsmasq: it answers the cluster's names over DNS and
 * serves the iPXE binaries over TFTP to a client in its own namespace (busybox nslookup, tftp),
 * and never answers DHCP (busybox udhcpc gets nothing), so it can sit beside `serve --dhcp`.
 */
import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {randomBytes} from 'node:crypto'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {renderDnsmasqConfig} from '../../src/lib/dhcp/dnsmasq.js'
import {pxeSettings} from '../../src/lib/dhcp/pxe.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {until} from '../helpers/election-harness.js'
import {ClientNet} from '../helpers/netns.js'
import {requireTool} from '../helpers/tools.js'

const NET = 67
const SERVER = `10.${NET}.0.1`

describe('dnsmasq from the rendered config: DNS and TFTP for the cluster, no DHCP', () => {
  const dnsmasq = requireTool('dnsmasq', 'dnsmasq-base')
  const busybox = requireTool('busybox', 'busybox')
  const net = new ClientNet('dq')
  const spec = parseSpec(testSpecYaml(NET), 'test.yaml')
  const pxe = pxeSettings(spec)
  const bootFiles = {[pxe.biosBootFile]: randomBytes(70_000), [pxe.uefiBootFile]: randomBytes(1_100_000)}
  let dir: string
  let proc: ChildProcess
  let log = ''

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-dnsmasq-'))
    chmodSync(dir, 0o755) // dnsmasq drops to nobody before it reads the TFTP root
    const tftpRoot = join(dir, 'tftp')
    mkdirSync(tftpRoot, {mode: 0o755})
    for (const [name, bytes] of Object.entries(bootFiles)) writeFileSync(join(tftpRoot, name), bytes, {mode: 0o644})
    net.create([`${SERVER}/20`])
    net.addAddress(`10.${NET}.0.60/20`)
    const conf = join(dir, 'dnsmasq.conf')
    writeFileSync(conf, renderDnsmasqConfig(spec, {interface: net.serverIf, tftpRoot}))
    proc = spawn(dnsmasq, ['--keep-in-foreground', '--log-facility=-', '--log-queries', `--pid-file=${join(dir, 'pid')}`, '-C', conf], {stdio: ['ignore', 'pipe', 'pipe']})
    proc.stdout?.on('data', (d) => (log += d))
    proc.stderr?.on('data', (d) => (log += d))
    await until('dnsmasq to listen', () => /started, version/.test(log) || proc.exitCode !== null, 10_000)
    assert.equal(proc.exitCode, null, `dnsmasq exited: ${log}`)
  })

  after(() => {
    proc?.kill('SIGTERM')
    net.destroy()
    rmSync(dir, {recursive: true, force: true})
  })

  const nslookup = (name: string) => net.exec([busybox, 'nslookup', name, SERVER], {timeoutMs: 10_000})

  it('answers the nodes with fixed addresses, the admin host and the VIP, by full and short name', async () => {
    for (const [name, ip] of [
      ['s1.xcluster.lan', `10.${NET}.0.2`],
      ['s3.xcluster.lan', `10.${NET}.0.4`],
      ['admin.xcluster.lan', SERVER],
      ['api.xcluster.lan', `10.${NET}.0.254`],
    ]) {
      const r = await nslookup(name)
      assert.equal(r.code, 0, `${name}: ${r.out}`)
      assert.match(r.out, new RegExp(`Address:\\s+${ip.replaceAll('.', '\\.')}\\b`), `${name}: ${r.out}`)
    }
  })

  it('answers a name it does not know in the cluster domain with NXDOMAIN, without asking anyone else', async () => {
    const r = await nslookup('nope.xcluster.lan')
    assert.notEqual(r.code, 0, r.out)
    assert.match(r.out, /NXDOMAIN|can't find/i)
    assert.doesNotMatch(log, /forwarded nope/)
  })

  it('serves both iPXE binaries over TFTP, byte for byte', async () => {
    for (const [name, bytes] of Object.entries(bootFiles)) {
      const local = join(dir, `got-${name}`)
      const r = await net.exec([busybox, 'tftp', '-g', '-r', name, '-l', local, SERVER], {timeoutMs: 30_000})
      assert.equal(r.code, 0, `tftp ${name}: ${r.out}\n${log}`)
      assert.ok(readFileSync(local).equals(bytes), `${name} differs from what the TFTP root holds`)
    }
    const missing = await net.exec([busybox, 'tftp', '-g', '-r', 'nope.efi', '-l', join(dir, 'nope'), SERVER], {timeoutMs: 10_000})
    assert.notEqual(missing.code, 0, 'a file outside the TFTP root is not served')
  })

  it('never answers DHCP: a client on the same link gets no offer', async () => {
    net.flushAddresses()
    try {
      const r = await net.exec([busybox, 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '3', '-T', '1', '-s', '/bin/true'], {timeoutMs: 15_000})
      assert.notEqual(r.code, 0, `udhcpc got a lease from dnsmasq: ${r.out}`)
      assert.match(r.out, /(sending|broadcasting) discover/i, 'the client did ask')
      assert.doesNotMatch(log, /DHCPDISCOVER|DHCPOFFER|DHCP, IP range/, 'dnsmasq logged DHCP activity')
    } finally {
      net.addAddress(`10.${NET}.0.60/20`)
    }
  })
})
