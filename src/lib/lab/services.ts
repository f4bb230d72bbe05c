import {existsSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createConnection, createServer} from 'node:net'
import {join} from 'node:path'

import {XclusterError} from '../errors.js'
import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'
import {labCacheDir, netnsName, type LabPaths} from './paths.js'
import {mirrorHosts} from './rootfs.js'
import {must, run, spawnDaemon, waitFor} from './system.js'

const ADMIN_NS = netnsName('admin')

/** Ports handed out by this process: two calls in a row never return the same one. */
const handedOut = new Set<number>()

/**
 * A free loopback TCP port *below* the kernel's ephemeral range. Port 0 would give one from that
 * range, which outgoing connections also draw from: between our check and the server's bind, a
 * client socket could take it ("address already in use").
 */
export async function freeLoopbackPort(): Promise<number> {
  const low = ephemeralLow()
  const from = Math.max(1024, Math.min(20_000, low - 2000))
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = from + Math.floor(Math.random() * (low - from))
    if (handedOut.has(port)) continue
    if (await bindable(port)) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error(`no free loopback port found between ${from} and ${low}`)
}

function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768
  } catch {
    return 32768
  }
}

const bindable = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })

const loopbackOpen = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const sock = createConnection({host: '127.0.0.1', port}, () => {
      sock.destroy()
      resolve(true)
    })
    sock.once('error', () => resolve(false))
  })

function started(name: string, paths: LabPaths, pid: number): void {
  writeFileSync(paths.pidFile(name), `${pid}\n`)
}

async function mustComeUp(what: string, logFile: string, check: () => Promise<boolean>): Promise<void> {
  if (!(await waitFor(check, settings.lab.serviceStartTimeoutMs))) {
    throw new XclusterError(`${what} did not start in ${settings.lab.serviceStartTimeoutMs / 1000} s.`, {
      code: 'LAB_SERVICE_FAILED',
      suggestion: `Look at ${logFile}, then run: sudo xcluster lab up`,
    })
  }
}

/**
 * The lab's only way out: Squid on root-namespace loopback (Debian mirror hosts only), reached
 * through a unix socket that socat bridges to <admin IP>:3129 inside xc-admin. It is the upstream
 * of the admin host's own package cache (<admin IP>:3128, started by bootstrap), as a site proxy
 * would be on a real network.
 */
export async function startPackageProxy(paths: LabPaths, adminIp: string): Promise<{squidPort: number}> {
  const squidPort = await freeLoopbackPort()
  const cacheDir = join(labCacheDir(), 'squid')
  mkdirSync(paths.squid, {recursive: true})
  mkdirSync(cacheDir, {recursive: true})
  await must('chown', ['-R', 'proxy:proxy', paths.squid, cacheDir])
  const conf = join(paths.squid, 'squid.conf')
  writeFileSync(conf, renderTemplate('lab/squid.conf', {port: squidPort, dir: paths.squid, cacheDir, mirrorHosts: mirrorHosts().join(' ')}))
  // The cache survives `lab down` (only --purge removes it): create its swap dirs once.
  if (!existsSync(join(cacheDir, '00'))) await must('squid', ['-z', '-N', '-f', conf])
  started('squid', paths, spawnDaemon('squid', ['-N', '-f', conf], paths.logFile('squid')))

  rmSync(paths.proxySocket, {force: true})
  started('socat-root', paths, spawnDaemon('socat', [`UNIX-LISTEN:${paths.proxySocket},fork,mode=600`, `TCP:127.0.0.1:${squidPort}`], paths.logFile('socat-root')))
  const port = settings.lab.upstreamProxyPort
  started(
    'socat-admin',
    paths,
    spawnDaemon('ip', ['netns', 'exec', ADMIN_NS, 'socat', `TCP-LISTEN:${port},bind=${adminIp},fork,reuseaddr`, `UNIX-CONNECT:${paths.proxySocket}`], paths.logFile('socat-admin')),
  )
  await mustComeUp('Squid', join(paths.squid, 'cache.log'), () => loopbackOpen(squidPort))
  await mustComeUp('The proxy bridge', paths.logFile('socat-admin'), async () => existsSync(paths.proxySocket) && (await adminTcpOpen(adminIp, port)))
  return {squidPort}
}

const adminTcpOpen = async (ip: string, port: number) => (await run('ip', ['netns', 'exec', ADMIN_NS, 'timeout', '1', 'bash', '-c', `exec 3<>/dev/tcp/${ip}/${port}`])).code === 0

/** The admin host's etcd (Debian etcd-server), inside xc-admin on <admin IP> and its own loopback. */
export async function startEtcd(paths: LabPaths, adminIp: string): Promise<{endpoint: string}> {
  const port = settings.lab.etcdClientPort
  const endpoint = `http://${adminIp}:${port}`
  const peer = `http://127.0.0.1:${port + 1}`
  started(
    'etcd',
    paths,
    spawnDaemon(
      'ip',
      [
        'netns',
        'exec',
        ADMIN_NS,
        'etcd',
        '--name',
        'admin',
        '--data-dir',
        paths.etcdData,
        '--listen-client-urls',
        `${endpoint},http://127.0.0.1:${port}`,
        '--advertise-client-urls',
        endpoint,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `admin=${peer}`,
        '--log-level',
        'warn',
      ],
      paths.logFile('etcd'),
    ),
  )
  await mustComeUp('etcd', paths.logFile('etcd'), () => etcdHealthy(endpoint))
  return {endpoint}
}

export async function etcdHealthy(endpoint: string): Promise<boolean> {
  const res = await run('ip', ['netns', 'exec', ADMIN_NS, 'etcdctl', `--endpoints=${endpoint}`, '--command-timeout=2s', 'endpoint', 'health'], {timeoutMs: 5000})
  return res.code === 0
}
