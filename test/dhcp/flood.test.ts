import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {DiscoveredMac} from '../../src/lib/dhcp/lease.js'
import type {LeaderRecord} from '../../src/lib/election/records.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {settings} from '../../src/lib/settings.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {BIN} from '../helpers/cli.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {sleep, until} from '../helpers/election-harness.js'
import {ClientNet} from '../helpers/netns.js'
import {requireTool} from '../helpers/tools.js'

const NET = 72
const SERVER = `10.${NET}.0.1`
const MACS = 100_000
/** Legacy state written before a restart: well past the client's 4 MiB message limit. */
const LEGACY = 12_000

/** A real `xcluster serve --dhcp` process: the dhcp election's only candidate, so its leader. */
class Daemon {
  proc!: ChildProcess
  stderr = ''
  startedAt = 0
  private exited!: Promise<void>

  constructor(
    private readonly iface: string,
    private readonly etcd: string,
  ) {}

  start(): this {
    this.stderr = ''
    this.startedAt = Date.now()
    this.proc = spawn(process.execPath, [BIN, 'serve', '--dhcp', '--interface', this.iface, '--address', SERVER, '--node', 'n1', '--etcd', this.etcd], {
      env: {...process.env, NO_COLOR: '1'},
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    this.proc.stderr?.on('data', (d: Buffer) => (this.stderr += d))
    this.exited = new Promise((r) => this.proc.once('exit', () => r()))
    return this
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null
  }

  events(event: string): string[] {
    return this.stderr.split('\n').filter((l) => l.includes(`"event":"${event}"`))
  }

  /** Resident memory as the kernel counts it (not the daemon's own report). */
  rssMiB(): number {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.proc.pid}/status`, 'utf8'))?.[1]
    return Number(kb) / 1024
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.alive) this.proc.kill(signal)
    await this.exited
  }
}

/** etcd's own count of lease renewals (keepalives it accepted), from its metrics endpoint. */
async function renewals(endpoint: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/metrics`)).text()
  const m = /^etcd_debugging_lease_renewed_total (\S+)$/m.exec(text)
  if (!m) throw new Error('etcd exposes no etcd_debugging_lease_renewed_total')
  return Number(m[1])
}

describe('DHCP server under floods: worst-case datagrams and 100,000 spoofed MACs at a leading serve --dhcp', () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let daemon: Daemon
  const net = new ClientNet('fl', 'xct-dh-')

  const sim = async (mode: string, args: unknown): Promise<{sent: number; ms: number}> => {
    const r = await net.exec(['node', '--import', 'tsx', 'test/helpers/dhcp-sim.ts', mode, JSON.stringify(args)], {timeoutMs: 90_000})
    assert.equal(r.code, 0, r.out)
    return JSON.parse(r.out.trim().split('\n').at(-1) as string)
  }
  const leader = async (): Promise<{node: string; token: string} | undefined> => {
    const row = await store.getJson<LeaderRecord>(store.keys.electionLeader('dhcp'))
    return row ? {node: row.value.node, token: row.createRevision} : undefined
  }
  /** Keys and bytes under dhcp/, read page by page (one range would pass the 4 MiB limit). */
  const dhcpSize = async (): Promise<{keys: number; bytes: number}> => {
    let [keys, bytes] = [0, 0]
    await store.readPrefixes([store.keys.dhcpPrefix()], (page) => {
      keys += page.length
      for (const kv of page) bytes += kv.key.length + kv.value.length
    })
    return {keys, bytes}
  }
  const leaderLease = async (): Promise<string> => {
    const res = await store.call('leader lease', (c) => c.get(store.keys.electionLeader('dhcp')).exec())
    return String(res.kvs[0]?.lease)
  }
  const discoveredCount = (): Promise<number> => store.call('count', (c) => c.getAll().prefix(store.keys.discoveredPrefix()).count())
  const startDaemon = async (): Promise<void> => {
    daemon = new Daemon(net.serverIf, etcd.endpoint).start()
    await until('serve leads dhcp', () => daemon.events('started').length > 0 || (!daemon.alive && assert.fail(`serve exited: ${daemon.stderr}`)), 30_000, 20)
  }
  /** A real client (busybox udhcpc) gets an address: the server still answers. */
  const realClientLeases = async (mac: string): Promise<string> => {
    const dir = mkdtempSync(join(tmpdir(), 'xct-dh-'))
    try {
      const script = join(dir, 'u.sh')
      writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] && echo $ip > ${dir}/ip\nexit 0\n`)
      chmodSync(script, 0o755)
      net.setMac(mac)
      const r = await net.exec([requireTool('busybox', 'busybox'), 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', script])
      assert.equal(r.code, 0, r.out)
      return readFileSync(join(dir, 'ip'), 'utf8').trim()
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  }

  before(async () => {
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await applyPlan(store, await planApply(store, parseSpec(testSpecYaml(NET), 'test.yaml')))
    net.create([`${SERVER}/20`])
    // The simulated clients send from a plain UDP socket, which needs a source address.
    net.addAddress(`10.${NET}.15.253/20`)
    await startDaemon()
  })

  after(async () => {
    await daemon?.stop('SIGKILL')
    net.destroy()
    await store?.close()
    await etcd?.stop()
  })

  it('a burst of worst-case datagrams: the leader keeps renewing its lease (never demoted), then serves a real client', async () => {
    const before = await leader()
    assert.equal(before?.node, 'n1')
    const leaseBefore = await leaderLease()
    // Every change of etcd's renewal counter, as seen from outside: the daemon's keepalives.
    const seen: number[] = []
    let polling = true
    const poller = (async () => {
      let last = await renewals(etcd.endpoint)
      while (polling) {
        const now = await renewals(etcd.endpoint)
        if (now !== last) seen.push(Date.now())
        last = now
        await sleep(20)
      }
    })()
    await sleep(1000)
    const burstStart = Date.now()
    const out = await sim('burst', {target: SERVER, oversized: 2000, maxSize: 20_000, perMs: 10})
    await sleep(2000) // what the server still had queued
    const burstEnd = Date.now()
    polling = false
    await poller

    // The window's edges count: a lease that stopped being renewed leaves a gap up to the end.
    const during = seen.filter((t) => t >= burstStart - 1000 && t <= burstEnd)
    const marks = [burstStart - 1000, ...during, burstEnd]
    const maxGap = Math.max(...marks.slice(1).map((t, i) => t - marks[i]))
    console.log(`# burst: ${out.sent} datagrams (2,000 of 65,507 bytes) in ${out.ms} ms; etcd saw ${during.length} renewals in ${burstEnd - burstStart + 1000} ms, longest gap ${maxGap} ms`)
    assert.equal(daemon.events('demoted').length, 0, `the leader was demoted: ${daemon.events('demoted').join('\n')}`)
    assert.deepEqual(await leader(), before, 'the same leadership (same fencing token) throughout')
    assert.equal(await leaderLease(), leaseBefore, 'under the same etcd lease, kept alive throughout')
    // Keepalives go every TTL/8 (250 ms); the leader would demote itself 1.5 s after the last.
    assert.ok(during.length >= 4, `etcd saw ${during.length} renewals`)
    assert.ok(maxGap < 1000, `renewals stalled for ${maxGap} ms during the burst`)
    // The burst reached the allocator (its random MACs were recorded), so it was really handled.
    assert.ok((await discoveredCount()) > 100, "the burst's DISCOVERs were handled")
    assert.equal(await realClientLeases('02:58:43:00:03:01'), `10.${NET}.0.71`, 'f1 gets a frontend address')
  })

  it(`${MACS.toLocaleString('en')} random MACs with oversized hostnames: discovered MACs, etcd and memory stay bounded`, async () => {
    const cap = settings.dhcp.maxDiscovered
    // Every discovered MAC etcd ever held during the flood, and the most it held at once.
    const written = new Set<string>()
    const watcher = await store.client.watch().prefix(store.keys.discoveredPrefix()).create()
    watcher.on('put', (kv) => written.add(kv.key.toString()))
    let most = 0
    let rssAtQuarter = 0
    let rssPeak = 0
    let polling = true
    const started = Date.now()
    const flood = sim('macs', {target: SERVER, count: MACS, perMs: 8})
    const poller = (async () => {
      while (polling) {
        most = Math.max(most, await discoveredCount())
        const rss = daemon.rssMiB()
        rssPeak = Math.max(rssPeak, rss)
        if (!rssAtQuarter && Date.now() - started > (MACS / 8) * 0.25) rssAtQuarter = rss
        await sleep(200)
      }
    })()
    const out = await flood
    await sleep(1500) // the last batch of discovered MACs
    polling = false
    await poller
    await watcher.cancel()
    const rssEnd = daemon.rssMiB()

    const rows = await store.listJson<DiscoveredMac>(store.keys.discoveredPrefix())
    const {keys, bytes} = await dhcpSize()
    console.log(
      `# ${out.sent} DISCOVERs from random MACs in ${out.ms} ms: ${written.size} discovered MACs written, at most ${most} at once (cap ${cap}), ${rows.length} now; ` +
        `${keys} keys, ${(bytes / 1024).toFixed(0)} KiB under dhcp/; serve RSS ${rssAtQuarter.toFixed(0)} MiB at 25 %, ${rssEnd.toFixed(0)} MiB at the end, peak ${rssPeak.toFixed(0)} MiB`,
    )
    assert.equal(out.sent, MACS)
    assert.ok(written.size > 2 * cap, `the flood reached etcd well past the cap (${written.size} MACs written)`)
    assert.ok(most <= cap, `etcd held ${most} discovered MACs at once, more than the cap of ${cap}`)
    assert.ok(rows.length <= cap)
    assert.ok(bytes < cap * 600, `${bytes} bytes under dhcp/`)
    for (const {value} of rows) {
      assert.ok(value.hostname === undefined || /^[a-z0-9-]{1,63}$/.test(value.hostname), `stored hostname ${JSON.stringify(value.hostname)}`)
      assert.ok(value.vendorClass === undefined || /^[\x20-\x7e]{1,128}$/.test(value.vendorClass), `stored vendor class ${JSON.stringify(value.vendorClass)}`)
      assert.ok((value.clientArch?.length ?? 0) <= settings.dhcp.maxStoredClientArchs)
    }
    assert.ok(rssEnd - rssAtQuarter < 60, `serve's memory grew from ${rssAtQuarter.toFixed(0)} to ${rssEnd.toFixed(0)} MiB over the last three quarters of the flood`)
    assert.ok(rssPeak < 300, `serve peaked at ${rssPeak.toFixed(0)} MiB`)
    assert.ok(daemon.alive)
  })

  it(`restarts in seconds over ${LEGACY.toLocaleString('en')} discovered MACs (past 4 MiB, as an unbounded server left them), then trims them to the cap`, async () => {
    await daemon.stop()
    const seen = new Date(Date.now() - 86_400_000).toISOString()
    const legacy = (i: number): DiscoveredMac => ({
      mac: `02:ee:00:${[i >> 16, i >> 8, i].map((n) => (n & 255).toString(16).padStart(2, '0')).join(':')}`,
      state: 'discovered',
      firstSeen: seen,
      lastSeen: seen,
      vendorClass: 'x'.repeat(200),
      hostname: 'h'.repeat(63),
    })
    for (let i = 0; i < LEGACY; i += 128 * 8) {
      await Promise.all(
        Array.from({length: 8}, (_, t) => {
          const txn = store.transaction()
          for (let j = i + t * 128; j < Math.min(LEGACY, i + (t + 1) * 128); j++) txn.put(store.keys.discovered(legacy(j).mac), legacy(j))
          return txn.size > 0 ? txn.commit() : Promise.resolve(true)
        }),
      )
    }
    const {keys, bytes} = await dhcpSize()
    assert.ok(bytes > 4 * 1024 * 1024, `${bytes} bytes under dhcp/: more than one 4 MiB response`)

    const t0 = Date.now()
    await startDaemon()
    const startMs = Date.now() - t0
    console.log(`# restart over ${keys} keys (${(bytes / 1024 / 1024).toFixed(1)} MiB under dhcp/): leading and serving after ${startMs} ms`)
    assert.ok(startMs < 10_000, `serve took ${startMs} ms to start`)

    // New MACs make the leader record, and so trim the oldest (the legacy ones) down to the cap.
    await sim('macs', {target: SERVER, count: 200, perMs: 1})
    for (const deadline = Date.now() + 30_000; (await discoveredCount()) > settings.dhcp.maxDiscovered; await sleep(250)) {
      assert.ok(Date.now() < deadline, `still ${await discoveredCount()} discovered MACs 30 s after the restart`)
    }
    console.log(`# trimmed to ${await discoveredCount()} discovered MACs ${Date.now() - t0 - startMs} ms after the restart; RSS ${daemon.rssMiB().toFixed(0)} MiB`)
    assert.equal(await realClientLeases('02:58:43:00:02:01'), `10.${NET}.0.52`, 'c1 gets a compute address')
  })
})
