import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {DhcpServer} from '../../src/lib/dhcp/server.js'
import type {DiscoveredMac, Lease, LeaseSummary} from '../../src/lib/dhcp/lease.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {xcluster} from '../helpers/cli.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {ClientNet} from '../helpers/netns.js'
import {requireTool} from '../helpers/tools.js'

const NET = 66
const SERVER = `10.${NET}.0.1`
const MAC = {c1: '02:58:43:00:02:01', s4: '02:58:43:00:01:04', s1: '02:58:43:00:01:01', unknown: '02:99:00:00:00:01', ignored: '02:99:00:00:00:02'}

describe('DHCP server against real clients (busybox udhcpc, ISC dhclient)', () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let server: DhcpServer
  let dir: string
  const net = new ClientNet('cl')
  const busybox = requireTool('busybox', 'busybox')
  const dhclient = requireTool('dhclient', 'isc-dhcp-client')

  const startServer = async (unknown: 'discover' | 'ignore' = 'discover'): Promise<DhcpServer> => {
    const s = new DhcpServer({store, interface: net.serverIf, unknown})
    await s.start()
    return s
  }

  /** udhcpc as the lab notes run it; its script records what it was told. */
  async function udhcpc(mac: string, tries = 5): Promise<Record<string, string> | undefined> {
    net.setMac(mac)
    const out = join(dir, `udhcpc-${mac}.env`)
    rmSync(out, {force: true})
    const script = join(dir, 'udhcpc.sh')
    writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] && env | grep -E '^(ip|subnet|router|dns|domain|hostname|lease|serverid|siaddr|boot_file)=' > ${out}\nexit 0\n`)
    chmodSync(script, 0o755)
    const r = await net.exec([busybox, 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', String(tries), '-T', '1', '-s', script])
    if (r.code !== 0) return undefined
    return Object.fromEntries(
      readFileSync(out, 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(/=(.*)/s).slice(0, 2) as [string, string]),
    )
  }

  /** dhclient in the foreground; stopped (without a release) once bound. Same lease file = same client. */
  async function dhclientBound(mac: string): Promise<string | undefined> {
    net.setMac(mac)
    const r = await net.exec([dhclient, '-1', '-v', '-d', '-sf', '/bin/true', '-lf', join(dir, `dhclient-${mac}.leases`), '-pf', join(dir, 'dhclient.pid'), 'eth0'], {
      until: /bound to \S+/,
      timeoutMs: 20_000,
    })
    return /bound to (\S+)/.exec(r.out)?.[1]
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'xct-dhcp-'))
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await applyPlan(store, await planApply(store, parseSpec(testSpecYaml(NET), 'test.yaml')))
    net.create([`${SERVER}/20`])
    server = await startServer()
  })

  after(async () => {
    await server?.stop()
    net.destroy()
    await store?.close()
    await etcd?.stop()
    rmSync(dir, {recursive: true, force: true})
  })

  it("udhcpc with a compute MAC gets the first free compute address (skipping c2's fixed IP) and the network settings", async () => {
    const got = await udhcpc(MAC.c1)
    assert.ok(got, 'udhcpc got a lease')
    assert.equal(got.ip, `10.${NET}.0.52`)
    assert.equal(got.subnet, '255.255.240.0')
    assert.equal(got.router, SERVER)
    assert.equal(got.dns, SERVER)
    assert.equal(got.domain, 'xcluster.lan')
    assert.equal(got.hostname, 'c1')
    assert.equal(got.serverid, SERVER)
    assert.equal(got.lease, '3600')
  })

  it('dhclient with a storage MAC gets a storage address', async () => {
    assert.equal(await dhclientBound(MAC.s4), `10.${NET}.0.11`)
  })

  it('a node with a fixed IP always gets it', async () => {
    assert.equal((await udhcpc(MAC.s1))?.ip, `10.${NET}.0.2`)
  })

  it('an unknown MAC gets a short discovery lease and is recorded as discovered', async () => {
    const got = await udhcpc(MAC.unknown)
    assert.equal(got?.ip, `10.${NET}.8.1`)
    assert.equal(got?.lease, '300')
    // Discovered MACs are written in batches, shortly after they are seen.
    let seen = await store.getJson<DiscoveredMac>(store.keys.discovered(MAC.unknown))
    for (let i = 0; !seen && i < 40; i++) {
      await new Promise((r) => setTimeout(r, 50))
      seen = await store.getJson<DiscoveredMac>(store.keys.discovered(MAC.unknown))
    }
    assert.equal(seen?.value.state, 'discovered')
    assert.match(seen?.value.vendorClass ?? '', /^udhcp /)
    assert.ok(seen?.value.firstSeen && seen.value.lastSeen)
    const lease = await store.getJson<Lease>(store.keys.lease(`10.${NET}.8.1`))
    assert.equal(lease?.value.type, 'discovered')
  })

  it('renewing gives the same address: udhcpc again, dhclient INIT-REBOOT, and a unicast RENEWING request', async () => {
    assert.equal((await udhcpc(MAC.c1))?.ip, `10.${NET}.0.52`)
    assert.equal(await dhclientBound(MAC.s4), `10.${NET}.0.11`)
    const key = store.keys.lease(`10.${NET}.0.52`)
    net.setMac(MAC.c1)
    net.addAddress(`10.${NET}.0.52/20`)
    const renew = async (): Promise<{type: string; yiaddr: string; ciaddr: string; leaseTime: number}> => {
      const r = await net.exec(['node', '--import', 'tsx', 'test/helpers/dhcp-sim.ts', 'renew', JSON.stringify({mac: MAC.c1, ip: `10.${NET}.0.52`, server: SERVER})])
      return JSON.parse(r.out.trim().split('\n').at(-1) ?? '{}')
    }
    try {
      // A lease granted moments ago is ACKed from the cache: the time it has left, no write.
      const fresh = await store.getJson<Lease>(key)
      const cached = await renew()
      assert.equal(cached.type, 'ack')
      assert.equal(cached.yiaddr, `10.${NET}.0.52`)
      assert.equal(cached.ciaddr, `10.${NET}.0.52`, 'RENEWING: the ACK carries ciaddr and came by unicast')
      assert.ok(cached.leaseTime <= 3600 && cached.leaseTime > 3000, `lease time ${cached.leaseTime}`)
      assert.equal((await store.getJson<Lease>(key))?.modRevision, fresh?.modRevision, 'no write for a fresh lease')
      // An aged lease (1,000 s left) is extended in etcd and ACKed with a full lease time.
      const aged = {...fresh!.value, expiresAt: new Date(Date.now() + 1000_000).toISOString()}
      await store.put(key, aged)
      await new Promise((r) => setTimeout(r, 200)) // the server's watch delivers the change
      const extended = await renew()
      assert.equal(extended.type, 'ack')
      assert.equal(extended.leaseTime, 3600)
      const after = await store.getJson<Lease>(key)
      assert.ok(Date.parse(after!.value.expiresAt) > Date.now() + 3500_000, 'the renewal extended the lease in etcd')
    } finally {
      net.flushAddresses()
    }
  })

  it('a restarted server forgets nothing: same addresses for every client', async () => {
    await server.stop()
    server = await startServer()
    assert.equal((await udhcpc(MAC.c1))?.ip, `10.${NET}.0.52`)
    assert.equal(await dhclientBound(MAC.s4), `10.${NET}.0.11`)
    assert.equal((await udhcpc(MAC.unknown))?.ip, `10.${NET}.8.1`)
  })

  it('PXE: BIOS and UEFI firmware get their iPXE binary over TFTP, iPXE gets the boot script URL', async () => {
    net.addAddress(`10.${NET}.15.253/20`) // the simulated client sends from a plain UDP socket
    try {
      const offer = async (extra: Record<string, unknown>): Promise<Record<string, unknown>> => {
        const r = await net.exec(['node', '--import', 'tsx', 'test/helpers/dhcp-sim.ts', 'offer', JSON.stringify({mac: MAC.c1, ...extra})])
        return JSON.parse(r.out.trim().split('\n').at(-1) ?? '{}')
      }
      const tftp = {siaddr: SERVER, tftpServer: SERVER}
      assert.deepEqual(await offer({clientArch: 0, vendorClass: 'PXEClient:Arch:00000:UNDI:002001'}), {yiaddr: `10.${NET}.0.52`, file: 'undionly.kpxe', bootfile: 'undionly.kpxe', ...tftp})
      assert.deepEqual(await offer({clientArch: 7, vendorClass: 'PXEClient:Arch:00007:UNDI:003016'}), {yiaddr: `10.${NET}.0.52`, file: 'ipxe.efi', bootfile: 'ipxe.efi', ...tftp})
      const url = `http://${SERVER}/boot.ipxe`
      assert.deepEqual(await offer({clientArch: 7, userClass: 'iPXE'}), {yiaddr: `10.${NET}.0.52`, file: url, bootfile: url, ...tftp})
      assert.deepEqual(await offer({}), {yiaddr: `10.${NET}.0.52`, siaddr: '0.0.0.0', file: '', tftpServer: null, bootfile: null}, 'no boot answer for a plain client')
    } finally {
      net.flushAddresses()
    }
  })

  it('xcluster dhcp leases --json shows the leases', async () => {
    const r = await xcluster(['dhcp', 'leases', '--json', '--etcd', etcd.endpoint])
    assert.equal(r.code, 0, r.stderr)
    const leases = r.json<LeaseSummary[]>()
    const byIp = new Map(leases.map((l) => [l.ip, l]))
    assert.equal(byIp.get(`10.${NET}.0.52`)?.node, 'c1')
    assert.equal(byIp.get(`10.${NET}.0.52`)?.type, 'compute')
    assert.equal(byIp.get(`10.${NET}.0.52`)?.grantedBy, SERVER)
    assert.equal(byIp.get(`10.${NET}.0.11`)?.mac, MAC.s4)
    assert.equal(byIp.get(`10.${NET}.0.2`)?.node, 's1')
    assert.equal(byIp.get(`10.${NET}.8.1`)?.type, 'discovered')
    const table = await xcluster(['dhcp', 'leases', '--etcd', etcd.endpoint])
    assert.match(table.stdout, /10\.66\.0\.52\s+02:58:43:00:02:01\s+c1\s+compute\s+bound/)
  })

  it('xcluster dhcp release refuses without --yes, then frees the address', async () => {
    const dry = await xcluster(['dhcp', 'release', `10.${NET}.8.1`, '--dry-run', '--etcd', etcd.endpoint])
    assert.equal(dry.code, 0, dry.stderr)
    assert.match(dry.stdout, /Would release 10\.66\.8\.1, leased to 02:99:00:00:00:01/)
    const refused = await xcluster(['dhcp', 'release', `10.${NET}.8.1`, '--etcd', etcd.endpoint])
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /CONFIRMATION_REQUIRED/)
    assert.ok(await store.getJson(store.keys.lease(`10.${NET}.8.1`)), 'nothing removed')
    const r = await xcluster(['dhcp', 'release', `10.${NET}.8.1`, '--yes', '--json', '--etcd', etcd.endpoint])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.json<{released: Lease}>().released.mac, MAC.unknown)
    assert.equal(await store.getJson(store.keys.lease(`10.${NET}.8.1`)), undefined)
    const missing = await xcluster(['dhcp', 'release', `10.${NET}.8.1`, '--yes', '--etcd', etcd.endpoint])
    assert.equal(missing.code, 3)
    assert.match(missing.stderr, /LEASE_NOT_FOUND/)
    const bad = await xcluster(['dhcp', 'release', 'nonsense', '--yes', '--etcd', etcd.endpoint])
    assert.equal(bad.code, 2)
  })

  it('with --unknown ignore an unknown MAC gets nothing, and nothing is written', async () => {
    await server.stop()
    server = await startServer('ignore')
    const before = await store.snapshot()
    assert.equal(await udhcpc(MAC.ignored, 2), undefined)
    assert.deepEqual(await store.snapshot(), before)
    assert.equal((await udhcpc(MAC.c1))?.ip, `10.${NET}.0.52`, 'known MACs are still served')
  })
})
