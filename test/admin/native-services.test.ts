/**
 * The admin host's services run natively from the rendered configs, proven from the outside: a
 * namespace holds the admin host (the spec's gateway address), a client namespace asks it what a
 * booting node asks (DNS, TFTP, HTTP, NTP, packages through the cache), a "mirror" namespace is
 * the only origin the cache may fetch from, and a "parent" namespace is an upstream proxy. The
 * API runs inside the admin namespace as the bootstrap command will (test/helpers/admin-services-cli.ts).
 * Nothing leaves these namespaces: they have no route anywhere else.
 */
import assert from 'node:assert/strict'
import {execFile, execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {NativeStartResult, NativeStopResult, ServiceStatus} from '../../src/lib/admin-services/index.js'
import {renderAdminServices} from '../../src/lib/admin-services/index.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {ROOT} from '../helpers/cli.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {until} from '../helpers/election-harness.js'
import {mirrorBytes} from '../helpers/http-peers.js'
import {NamespaceLan} from '../helpers/netns-lan.js'
import {requireTool} from '../helpers/tools.js'

const NET = 72
const ADMIN = `10.${NET}.0.1`
const CLIENT = `10.${NET}.0.60`
const MIRROR = `10.${NET}.0.90`
const PARENT = `10.${NET}.0.95`
const MIRROR_URL = `http://${MIRROR}:8080/debian`
const PROXY = `http://${ADMIN}:3128`

interface ApiResult {
  code: number | null
  stdout: string
  stderr: string
}

describe('admin host services, native: DNS, TFTP, HTTP, NTP and the package cache from the rendered configs', () => {
  const tools = {
    busybox: requireTool('busybox', 'busybox'),
    curl: requireTool('curl', 'curl'),
    chronyd: requireTool('chronyd', 'chrony'),
  }
  requireTool('dnsmasq', 'dnsmasq-base')
  requireTool('nginx', 'nginx-light')
  requireTool('squid', 'squid')
  const lan = new NamespaceLan(
    'xct-adm-',
    [
      {name: 'admin', address: ADMIN},
      {name: 'client', address: CLIENT},
      {name: 'mirror', address: MIRROR},
      {name: 'parent', address: PARENT},
    ],
    20,
  )
  const baseSpec = `${testSpecYaml(NET)}packages:\n  mirrors: [${MIRROR_URL}]\n`
  const withUpstream = `${baseSpec}  upstream: http://${PARENT}:3129\n`
  let dir: string
  let stateDir: string
  let specFile: string
  const peers: {proc: ChildProcess; log: Record<string, string>[]}[] = []
  let origin: Record<string, string>[]
  let parent: Record<string, string>[]

  const inNs = (host: string, argv: string[], timeoutMs = 15_000): Promise<ApiResult> =>
    new Promise((resolve) => {
      execFile('ip', ['netns', 'exec', lan.namespace(host), ...argv], {cwd: ROOT, timeout: timeoutMs, encoding: 'buffer', maxBuffer: 16 * 1024 * 1024}, (err, stdout, stderr) => {
        const code = err ? (typeof (err as {code?: unknown}).code === 'number' ? (err as {code: number}).code : null) : 0
        resolve({code, stdout: stdout.toString('latin1'), stderr: stderr.toString()})
      })
    })
  const api = (...args: string[]): Promise<ApiResult> => inNs('admin', [process.execPath, '--import', 'tsx', join(ROOT, 'test', 'helpers', 'admin-services-cli.ts'), ...args], 60_000)
  const start = async (spec: string, ...flags: string[]): Promise<NativeStartResult> => {
    writeFileSync(specFile, spec)
    const r = await api('start', specFile, stateDir, ...flags)
    assert.equal(r.code, 0, `start failed: ${r.stderr}`)
    return JSON.parse(r.stdout) as NativeStartResult
  }
  const status = async (): Promise<ServiceStatus[]> => {
    const r = await api('status', stateDir)
    assert.equal(r.code, 0, r.stderr)
    return JSON.parse(r.stdout) as ServiceStatus[]
  }
  const pids = (list: ServiceStatus[]): Record<string, number | undefined> => Object.fromEntries(list.map((s) => [s.service, s.pid]))
  /** A process's start time, from the kernel: with the pid, its identity. */
  const startTime = (pid: number): string => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[19]
  /** A process that still runs: present and not a zombie (an exited one waits for init to reap it). */
  const alive = (pid: number | undefined): boolean => {
    try {
      return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].startsWith('Z')
    } catch {
      return false
    }
  }
  /** The processes whose command line names the state dir: what is running from it, observed. */
  const processesOfState = (): number[] =>
    readdirSync('/proc')
      .filter((e) => /^\d+$/.test(e))
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(stateDir) && !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].startsWith('Z')
        } catch {
          return false
        }
      })
      .map(Number)
  /** Live processes in these sessions: a service and whatever it forked. */
  const inSessions = (sids: number[]): number[] =>
    readdirSync('/proc')
      .filter((e) => /^\d+$/.test(e))
      .filter((pid) => {
        try {
          const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
          return fields[0] !== 'Z' && sids.includes(Number(fields[3]))
        } catch {
          return false
        }
      })
      .map(Number)
  const fetch = (url: string, ...curlArgs: string[]) =>
    inNs('client', [tools.curl, '-sS', '--max-time', '10', '-x', PROXY, '-o', '-', '-w', '\n%{http_code}', ...curlArgs, url]).then((r) => {
      const cut = r.stdout.lastIndexOf('\n')
      return {status: r.stdout.slice(cut + 1), body: Buffer.from(r.stdout.slice(0, cut), 'latin1'), code: r.code, stderr: r.stderr}
    })
  const peer = async (host: string, mode: string, port: number): Promise<Record<string, string>[]> => {
    const log: Record<string, string>[] = []
    const proc = spawn(
      'ip',
      ['netns', 'exec', lan.namespace(host), process.execPath, '--import', 'tsx', join(ROOT, 'test', 'helpers', 'http-peers.ts'), mode, lan.hosts.find((h) => h.name === host)!.address, String(port)],
      {cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit']},
    )
    let buffer = ''
    proc.stdout?.on('data', (d) => {
      buffer += d
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        log.push(JSON.parse(buffer.slice(0, nl)) as Record<string, string>)
        buffer = buffer.slice(nl + 1)
      }
    })
    peers.push({proc, log})
    await until(`${mode} in ${host} to listen`, () => log.some((l) => l.listening), 15_000)
    log.length = 0
    return log
  }

  before(async () => {
    for (const f of ['undionly.kpxe', 'ipxe.efi']) if (!existsSync(`/usr/lib/ipxe/${f}`)) throw new Error(`this test needs /usr/lib/ipxe/${f} (Debian package ipxe); install it or run .ci/run`)
    lan.setUp()
    dir = mkdtempSync(join(tmpdir(), 'xct-adm-'))
    chmodSync(dir, 0o755) // the daemons drop to their own users, who must walk into the state dir
    stateDir = join(dir, 'state')
    specFile = join(dir, 'xcluster.yaml')
    origin = await peer('mirror', 'origin', 8080)
    parent = await peer('parent', 'proxy', 3129)
  })

  after(async () => {
    if (stateDir && existsSync(join(stateDir, 'state'))) await api('stop', stateDir)
    for (const p of peers) p.proc.kill('SIGTERM')
    lan.tearDown()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('refuses to start while another process holds a port, naming the port and the process; writes and starts nothing', async () => {
    const empty = join(dir, 'empty')
    execFileSync('mkdir', ['-p', empty])
    // busybox httpd on the wildcard address: it takes port 80 on the gateway address too.
    const squatter = spawn('ip', ['netns', 'exec', lan.namespace('admin'), tools.busybox, 'httpd', '-f', '-p', '80', '-h', empty], {stdio: 'ignore'})
    try {
      await until('the squatter to listen', () => execFileSync('ip', ['netns', 'exec', lan.namespace('admin'), 'ss', '-Hltn', 'sport = :80'], {encoding: 'utf8'}).includes(':80'), 10_000)
      writeFileSync(specFile, baseSpec)
      const r = await api('start', specFile, stateDir)
      assert.equal(r.code, 3, `expected exit 3: ${r.stdout}${r.stderr}`)
      const err = JSON.parse(r.stderr) as {code: string; message: string; suggestion: string}
      assert.equal(err.code, 'ADMIN_PORT_TAKEN')
      assert.match(err.message, new RegExp(`80/tcp on ${ADMIN.replaceAll('.', '\\.')} \\(for http\\) is held by busybox \\(pid ${squatter.pid}\\)`))
      assert.match(err.message, /Nothing was started/)
      assert.match(err.suggestion, new RegExp(`kill ${squatter.pid}`))
      assert.equal(existsSync(stateDir), false, 'nothing was written')
      assert.deepEqual(processesOfState(), [], 'nothing was started')
    } finally {
      squatter.kill('SIGTERM')
    }
    await until('port 80 to be free', () => !execFileSync('ip', ['netns', 'exec', lan.namespace('admin'), 'ss', '-Hltn', 'sport = :80'], {encoding: 'utf8'}).includes(':80'), 10_000)
  })

  it('a dry run reports every step and changes nothing; the real run starts every service, holding its ports', async () => {
    const dry = await start(baseSpec, '--dry-run')
    assert.equal(dry.dryRun, true)
    assert.deepEqual(dry.changed, ['ntp', 'dns-tftp', 'http', 'package-cache', 'ansible'])
    assert.deepEqual(
      dry.actions.filter((a) => a.action === 'start').map((a) => a.service),
      ['ntp', 'dns-tftp', 'http', 'package-cache'],
    )
    assert.ok(dry.actions.some((a) => a.action === 'create' && a.detail === 'config/squid.conf'))
    assert.equal(existsSync(stateDir), false, 'a dry run writes nothing')
    assert.deepEqual(processesOfState(), [], 'a dry run starts nothing')

    const result = await start(baseSpec)
    assert.equal(result.manager, 'process', 'no systemd as PID 1 here: plain processes')
    assert.deepEqual(result.changed, ['ntp', 'dns-tftp', 'http', 'package-cache', 'ansible'])
    assert.deepEqual(result.unchanged, [])
    const list = await status()
    assert.deepEqual(
      list.map((s) => [s.service, s.running, s.ports.every((p) => p.held)]),
      [
        ['ntp', true, true],
        ['dns-tftp', true, true],
        ['http', true, true],
        ['package-cache', true, true],
      ],
    )
    for (const s of list) {
      const netns = execFileSync('ip', ['netns', 'identify', String(s.pid)], {encoding: 'utf8'}).trim()
      assert.equal(netns, lan.namespace('admin'), `${s.service} runs in the admin host's namespace`)
      assert.ok(readlinkSync(`/proc/${s.pid}/exe`).endsWith(({ntp: 'chronyd', 'dns-tftp': 'dnsmasq', http: 'nginx', 'package-cache': 'squid'} as Record<string, string>)[s.service]))
    }
    // The files on disk are the rendered ones.
    const bundle = renderAdminServices(parseSpec(baseSpec, 'spec'), {root: stateDir, interface: 'eth0'})
    for (const f of bundle.files) assert.equal(readFileSync(join(stateDir, f.path), 'utf8'), f.content, f.path)
  })

  it("DNS: the cluster's names resolve on the gateway address", async () => {
    for (const [name, ip] of [
      ['s1.xcluster.lan', `10.${NET}.0.2`],
      ['admin.xcluster.lan', ADMIN],
      ['api.xcluster.lan', `10.${NET}.0.254`],
    ]) {
      const r = await inNs('client', [tools.busybox, 'nslookup', name, ADMIN])
      assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`)
      assert.match(r.stdout, new RegExp(`Address:\\s+${ip.replaceAll('.', '\\.')}\\b`))
    }
    const unknown = await inNs('client', [tools.busybox, 'nslookup', 'nope.xcluster.lan', ADMIN])
    assert.notEqual(unknown.code, 0, unknown.stdout)
  })

  it("TFTP: both iPXE binaries from Debian's ipxe package, byte for byte", async () => {
    for (const [name, source] of [
      ['undionly.kpxe', '/usr/lib/ipxe/undionly.kpxe'],
      ['ipxe.efi', '/usr/lib/ipxe/ipxe.efi'],
    ]) {
      const local = join(dir, `got-${name}`)
      const r = await inNs('client', [tools.busybox, 'tftp', '-g', '-r', name, '-l', local, ADMIN], 30_000)
      assert.equal(r.code, 0, `tftp ${name}: ${r.stderr}`)
      assert.ok(readFileSync(local).equals(readFileSync(source)), `${name} differs from ${source}`)
    }
  })

  it('HTTP: the iPXE boot script at the URL the DHCP server hands out', async () => {
    const r = await inNs('client', [tools.busybox, 'wget', '-q', '-O', '-', `http://${ADMIN}/boot.ipxe`])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, readFileSync(join(stateDir, 'http', 'boot.ipxe'), 'utf8'))
    assert.match(r.stdout, /^#!ipxe\n/)
    const missing = await inNs('client', [tools.busybox, 'wget', '-q', '-O', '-', `http://${ADMIN}/nodes/nope.ipxe`])
    assert.notEqual(missing.code, 0, 'a file that is not there is a 404')
  })

  it('NTP: chronyd answers a real NTP query from the cluster network', async () => {
    const query = (server: string, seconds = 4) =>
      inNs('client', [tools.chronyd, '-Q', '-t', String(seconds), '-u', 'root', `server ${server} iburst maxsamples 1`, `pidfile ${join(dir, 'chronyd-q.pid')}`], 20_000)
    const r = await query(ADMIN)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /System clock wrong by -?\d+\.\d+ seconds/)
    // The check can fail: a host without an NTP server gives no answer.
    const none = await query(MIRROR, 2)
    assert.notEqual(none.code, 0)
    assert.match(none.stderr, /Timeout reached/)
  })

  it('Squid: fetches and caches from the mirror only; other paths and hosts get 403, CONNECT is refused', async () => {
    const path = '/debian/pool/main/h/hello/hello_2.10-3_amd64.deb'
    const first = await fetch(`http://${MIRROR}:8080${path}`)
    assert.equal(first.status, '200', first.stderr)
    assert.ok(first.body.equals(mirrorBytes(path)), 'the bytes the mirror served')
    assert.deepEqual(
      origin.map((l) => [l.url, l.from]),
      [[path, ADMIN]],
      'the cache fetched it from the admin host',
    )
    const again = await fetch(`http://${MIRROR}:8080${path}`)
    assert.ok(again.body.equals(mirrorBytes(path)))
    assert.equal(origin.length, 1, 'the second fetch came from the cache')

    for (const url of [`http://${MIRROR}:8080/other/file`, `http://${MIRROR}:8080/debian-evil/file`, `http://${PARENT}:3129/debian/file`, `http://${MIRROR}/debian/file`]) {
      const refused = await fetch(url)
      assert.equal(refused.status, '403', `${url} is not a mirror`)
    }
    const tunnel = await fetch(`http://${MIRROR}:8080/debian/x`, '--proxytunnel')
    assert.notEqual(tunnel.code, 0)
    assert.match(tunnel.stderr, /CONNECT.*403|403.*CONNECT/i)
    assert.equal(origin.length, 1, 'nothing refused reached the mirror')
    assert.equal(parent.length, 0, 'no upstream configured: the parent proxy saw nothing')
  })

  it('a re-run with the same spec changes nothing and says so: the same processes keep running', async () => {
    const before = await status()
    const times = Object.fromEntries(before.map((s) => [s.service, startTime(s.pid!)]))
    const result = await start(baseSpec)
    assert.deepEqual(result.changed, [])
    assert.deepEqual(result.unchanged, ['ntp', 'dns-tftp', 'http', 'package-cache', 'ansible'])
    assert.deepEqual(result.actions, [])
    const now = await status()
    assert.deepEqual(pids(now), pids(before))
    for (const s of now) assert.equal(startTime(s.pid!), times[s.service], `${s.service} was not restarted`)
  })

  it('a changed config restarts only its service: an upstream proxy for the cache', async () => {
    const before = pids(await status())
    const result = await start(withUpstream)
    assert.deepEqual(result.changed, ['package-cache'])
    assert.deepEqual(
      result.actions.map((a) => [a.service, a.action]),
      [
        ['package-cache', 'update'],
        ['package-cache', 'restart'],
      ],
    )
    const now = pids(await status())
    assert.notEqual(now['package-cache'], before['package-cache'])
    assert.equal(alive(before['package-cache']), false, 'the old squid is gone')
    for (const s of ['ntp', 'dns-tftp', 'http']) assert.equal(now[s], before[s], `${s} kept running`)

    const path = '/debian/dists/bookworm/Release'
    const r = await fetch(`http://${MIRROR}:8080${path}`)
    assert.equal(r.status, '200', r.stderr)
    assert.ok(r.body.equals(mirrorBytes(path)))
    assert.deepEqual(
      parent.map((l) => l.url),
      [`http://${MIRROR}:8080${path}`],
      'the cache asked its parent',
    )
    assert.deepEqual(origin.at(-1), {method: 'GET', url: path, from: PARENT}, 'the mirror was reached through the parent')
  })

  it('a dry run of a changed node list reports the restart and changes nothing; the real run restarts only DNS', async () => {
    const spec = withUpstream.replace('  - {name: f1,', `  - {name: c9, mac: "02:58:43:00:02:09", ip: 10.${NET}.0.59}\n  - {name: f1,`)
    const before = pids(await status())
    const conf = readFileSync(join(stateDir, 'config', 'dnsmasq-cluster.conf'), 'utf8')
    const dry = await start(spec, '--dry-run')
    assert.deepEqual(dry.changed, ['dns-tftp', 'ansible'])
    assert.ok(dry.actions.some((a) => a.service === 'dns-tftp' && a.action === 'restart'))
    assert.equal(readFileSync(join(stateDir, 'config', 'dnsmasq-cluster.conf'), 'utf8'), conf, 'the dry run wrote nothing')
    assert.deepEqual(pids(await status()), before, 'the dry run restarted nothing')
    assert.notEqual((await inNs('client', [tools.busybox, 'nslookup', 'c9.xcluster.lan', ADMIN])).code, 0)

    const result = await start(spec)
    assert.deepEqual(result.changed, ['dns-tftp', 'ansible'])
    const now = pids(await status())
    assert.notEqual(now['dns-tftp'], before['dns-tftp'])
    for (const s of ['ntp', 'http', 'package-cache']) assert.equal(now[s], before[s], `${s} kept running`)
    const r = await inNs('client', [tools.busybox, 'nslookup', 'c9.xcluster.lan', ADMIN])
    assert.match(r.stdout, new RegExp(`Address:\\s+10\\.${NET}\\.0\\.59\\b`))
  })

  it('stop ends every service and its children; status shows them stopped with their ports free', async () => {
    const before = await status()
    const r = await api('stop', stateDir)
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual((JSON.parse(r.stdout) as NativeStopResult).stopped, ['ntp', 'dns-tftp', 'http', 'package-cache'])
    for (const s of before) assert.equal(alive(s.pid), false, `${s.service} (pid ${s.pid}) is gone`)
    assert.deepEqual(processesOfState(), [])
    assert.deepEqual(inSessions(before.map((s) => s.pid!)), [], 'no child (nginx worker, squid helper) was left behind')
    const after = await status()
    assert.deepEqual(
      after.map((s) => [s.service, s.running, s.ports.some((p) => p.held)]),
      [
        ['ntp', false, false],
        ['dns-tftp', false, false],
        ['http', false, false],
        ['package-cache', false, false],
      ],
    )
    assert.notEqual((await inNs('client', [tools.busybox, 'nslookup', 's1.xcluster.lan', ADMIN], 20_000)).code, 0, 'DNS no longer answers')
  })
})
