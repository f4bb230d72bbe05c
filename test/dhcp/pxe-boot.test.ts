/**
 * A real network boot: a QEMU guest (TCG) whose NIC ROM is iPXE boots from the network on a tap
 * bridged to the DHCP server's link. The xcluster DHCP server gives it its MAC-typed address and
 * the boot script URL; iPXE fetches the script over HTTP and runs it, and the script reports back
 * the address iPXE configured. Nothing here is simulated: firmware, DHCP client and HTTP client
 * are the ones a bare-metal node runs.
 */
import assert from 'node:assert/strict'
import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdtempSync, rmSync} from 'node:fs'
import {createServer, type Server} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {DiscoveredMac, Lease} from '../../src/lib/dhcp/lease.js'
import {pxeSettings} from '../../src/lib/dhcp/pxe.js'
import {DhcpServer} from '../../src/lib/dhcp/server.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {until} from '../helpers/election-harness.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {ClientNet} from '../helpers/netns.js'
import {requireTool} from '../helpers/tools.js'

const NET = 68
const SERVER = `10.${NET}.0.1`
/** s4 in the test spec: a storage node without a fixed address. */
const STORAGE_MAC = '02:58:43:00:01:04'
/** QEMU's e1000 option ROM is iPXE (the 2019 virtio ROM is not offered by SeaBIOS here). */
const UNKNOWN_MAC = '02:99:00:00:00:68'
const ROM = '/usr/lib/ipxe/qemu/efi-e1000.rom'

describe('PXE boot of a QEMU guest: iPXE firmware, xcluster DHCP, the boot script over HTTP', () => {
  const qemu = requireTool('qemu-system-x86_64', 'qemu-system-x86')
  const ip = (...args: string[]) => execFileSync('ip', args, {stdio: ['ignore', 'pipe', 'pipe']})
  const net = new ClientNet('pxe')
  const spec = parseSpec(testSpecYaml(NET), 'test.yaml')
  const bootUrl = new URL(pxeSettings(spec).httpBootUrl)
  let etcd: TestEtcd
  let store: EtcdStore
  let server: DhcpServer
  let http: Server
  let guest: ChildProcess | undefined
  let dir: string
  const requests: string[] = []

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-pxe-'))
    if (!existsSync(ROM)) throw new Error(`this test needs ${ROM} (Debian package ipxe-qemu); install it or run .ci/run`)
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await applyPlan(store, await planApply(store, spec))
    // The guest's tap and the link to the server share a bridge in the client namespace. A
    // minimal machine may lack the tun device node (the module is there): make it.
    if (!existsSync('/dev/net/tun')) execFileSync('sh', ['-c', 'mkdir -p /dev/net && mknod -m 666 /dev/net/tun c 10 200'])
    net.create([`${SERVER}/20`])
    ip('-n', net.ns, 'link', 'add', 'br0', 'type', 'bridge')
    ip('-n', net.ns, 'tuntap', 'add', 'tap0', 'mode', 'tap')
    ip('-n', net.ns, 'link', 'set', 'eth0', 'master', 'br0')
    ip('-n', net.ns, 'link', 'set', 'tap0', 'master', 'br0')
    for (const dev of ['br0', 'tap0', 'eth0']) ip('-n', net.ns, 'link', 'set', dev, 'up')
    server = new DhcpServer({store, interface: net.serverIf, unknown: 'discover'})
    await server.start()
    // The boot script chains to a URL that carries what iPXE configured: proof that it ran.
    http = createServer((req, res) => {
      requests.push(req.url ?? '')
      if (req.url === bootUrl.pathname) {
        res.end('#!ipxe\necho xcluster boot script\nchain http://${next-server}/booted?mac=${net0/mac}&ip=${net0/ip}&server=${net0/dhcp-server}\n')
      } else {
        res.statusCode = req.url?.startsWith('/booted') ? 200 : 404
        res.end('#!ipxe\nshell\n')
      }
    })
    await new Promise<void>((resolve) => http.listen(Number(bootUrl.port || 80), SERVER, resolve))
  })

  after(async () => {
    guest?.kill('SIGKILL')
    await server?.stop()
    await new Promise((r) => (http ? http.close(r) : r(undefined)))
    net.destroy()
    await store?.close()
    await etcd?.stop()
    rmSync(dir, {recursive: true, force: true})
  })

  /** Boots a guest with this MAC from the network; resolves with what its boot script reported. */
  async function bootGuest(mac: string): Promise<URLSearchParams> {
    const consoleLog = join(dir, `console-${mac}.log`)
    const seen = requests.length
    guest = spawn(
      'ip',
      [
        'netns',
        'exec',
        net.ns,
        qemu,
        '-accel',
        'tcg',
        '-m',
        '128',
        '-display',
        'none',
        '-no-reboot',
        '-boot',
        'n',
        '-serial',
        `file:${consoleLog}`,
        '-netdev',
        'tap,id=n0,ifname=tap0,script=no,downscript=no',
        '-device',
        `e1000,netdev=n0,mac=${mac},romfile=${ROM}`,
      ],
      {stdio: ['ignore', 'ignore', 'pipe']},
    )
    let stderr = ''
    guest.stderr?.on('data', (d) => (stderr += d))
    try {
      const mine = () => requests.slice(seen)
      const booted = await until(
        'iPXE to run the boot script',
        () => mine().find((r) => r.startsWith('/booted')) ?? (guest?.exitCode !== null ? `qemu exited: ${stderr}` : undefined),
        120_000,
        200,
      ).catch((err: Error) => `${err.message}; requests: ${mine().join(' ')}`)
      assert.ok(booted.startsWith('/booted'), booted)
      assert.deepEqual(mine()[0], bootUrl.pathname, 'the boot script itself was fetched first')
      return new URL(booted, 'http://x').searchParams
    } finally {
      const exited = new Promise((r) => guest?.once('close', r))
      guest.kill('SIGKILL')
      await exited
      guest = undefined
    }
  }

  const leaseOf = async (mac: string) => (await store.listJson<Lease>(store.keys.leasesPrefix())).map((kv) => kv.value).find((l) => l.mac === mac)

  it("a registered storage node boots with its typed address and runs the cluster's boot script", async () => {
    const q = await bootGuest(STORAGE_MAC)
    assert.equal(q.get('mac'), STORAGE_MAC)
    assert.equal(q.get('ip'), `10.${NET}.0.11`, 'the first address of the storage range')
    assert.equal(q.get('server'), SERVER)
    assert.equal((await leaseOf(STORAGE_MAC))?.ip, `10.${NET}.0.11`, 'the lease is in etcd')
  })

  it('an unknown machine boots into enlistment from the discovery range and is recorded, with its firmware', async () => {
    const q = await bootGuest(UNKNOWN_MAC)
    const ip = q.get('ip') as string
    assert.match(ip, new RegExp(`^10\\.${NET}\\.(8|9|1[0-5])\\.\\d+$`), `${ip} is in the discovery range`)
    const lease = await leaseOf(UNKNOWN_MAC)
    assert.equal(lease?.ip, ip)
    assert.equal(lease?.type, 'discovered')
    const seen = await store.getJson<DiscoveredMac>(store.keys.discovered(UNKNOWN_MAC))
    assert.equal(seen?.value.state, 'discovered')
    assert.deepEqual(seen?.value.clientArch, [0], 'iPXE on BIOS reports architecture 0')
    assert.match(seen?.value.vendorClass ?? '', /^PXEClient/)
  })
})
