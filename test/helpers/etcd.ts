import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {request as httpRequest} from 'node:http'
import {request} from 'node:https'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {renderMemberConfig} from '../../src/lib/etcd/cluster-config.js'
import {freeLoopbackPort} from '../../src/lib/lab/services.js'
import type {TestPki} from './pki.js'
import {requireTool} from './tools.js'

/** A real single-member etcd server (Debian etcd-server) on loopback, for one test file. */
export interface TestEtcd {
  endpoint: string
  /** `unix://…` endpoint of a local socket (with `unixSocket`): reaches this etcd from any network namespace. */
  unixEndpoint?: string
  clientPort: number
  peerPort: number
  dir: string
  /** Stops the server; its data stays when `keepData` so it can be started again on the same ports. */
  stop(options?: {keepData?: boolean}): Promise<void>
}

export interface StartEtcdOptions {
  dir?: string
  clientPort?: number
  peerPort?: number
  /** Client address to listen on (default loopback), e.g. a test LAN address other namespaces reach. */
  host?: string
  /** Also listen on a unix socket in the data dir (etcd names it HOST:PORT, relative to its cwd). */
  unixSocket?: boolean
  /**
   * A network namespace to run etcd in (`ip netns exec`), listening on `host` there: its
   * machines reach it at endpoint, this process at unixEndpoint (unixSocket is implied).
   */
  netns?: string
  /**
   * TLS with client-certificate authentication, from the rendered member config
   * (templates/node/etcd-member.yml) and certificates of this CA; the endpoint is https.
   */
  tls?: TestPki
}

/** A TLS client's files: the CA to trust and the certificate to present. */
export interface TlsClientFiles {
  caFile: string
  certFile: string
  keyFile: string
}

/** etcd's /health through its unix socket (from outside the namespace it listens in). */
function unixHealthy(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest({socketPath, path: '/health', timeout: 500}, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.on('timeout', () => req.destroy())
    req.end()
  })
}

/** The identity test helpers use to ask /health over TLS (any certificate of the CA will do). */
export const HEALTH_PROBE_IDENTITY = 'xcluster-test-probe'

/** GET /health over https with a client certificate; true when etcd answers healthy. */
export function tlsHealthy(endpoint: string, files: TlsClientFiles, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${endpoint}/health`, {ca: readFileSync(files.caFile), cert: readFileSync(files.certFile), key: readFileSync(files.keyFile), timeout: timeoutMs}, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)))
    })
    req.on('error', () => resolve(false))
    req.on('timeout', () => req.destroy())
    req.end()
  })
}

/** A free loopback port (the lab picks its own ports the same way). */
export const freePort = freeLoopbackPort

export async function startEtcd(options: StartEtcdOptions = {}): Promise<TestEtcd> {
  const bin = requireTool('etcd', 'etcd-server')
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'xc-etcd-'))
  const client = options.clientPort ?? (await freePort())
  const peer = options.peerPort ?? (await freePort())
  const host = options.host ?? '127.0.0.1'
  const endpoint = `${options.tls ? 'https' : 'http'}://${host}:${client}`
  let probe: TlsClientFiles | undefined
  let argv: string[]
  if (options.tls) {
    const member = {name: 'test', ip: host, clientUrl: endpoint, peerUrl: `https://127.0.0.1:${peer}`}
    const tls = await options.tls.member(member)
    const configFile = join(dir, 'etcd.yml')
    writeFileSync(configFile, renderMemberConfig('xcluster', [member], 'test', {dataDir: join(dir, 'data'), tls, logLevel: 'error'}))
    argv = ['--config-file', configFile]
    probe = {caFile: options.tls.caFile, ...(await options.tls.client(HEALTH_PROBE_IDENTITY))}
  } else {
    argv = [
      '--name',
      'test',
      '--data-dir',
      join(dir, 'data'),
      '--listen-client-urls',
      options.unixSocket || options.netns ? `${endpoint},unix://etcd.sock:1` : endpoint,
      '--advertise-client-urls',
      endpoint,
      '--listen-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-cluster',
      `test=http://127.0.0.1:${peer}`,
      '--log-level',
      'error',
    ]
  }
  const socket = join(dir, 'etcd.sock:1')
  const proc: ChildProcess = options.netns
    ? spawn('ip', ['netns', 'exec', options.netns, bin, ...argv], {stdio: ['ignore', 'ignore', 'pipe'], cwd: dir})
    : spawn(bin, argv, {stdio: ['ignore', 'ignore', 'pipe'], cwd: dir})
  let stderr = ''
  proc.stderr?.on('data', (d) => (stderr += d))
  const deadline = Date.now() + 10_000
  for (;;) {
    if (probe) {
      if (await tlsHealthy(endpoint, probe)) break
    } else if (options.netns) {
      if (await unixHealthy(socket)) break
    } else {
      try {
        const res = await fetch(`${endpoint}/health`)
        if (res.ok) break
      } catch {
        // not listening yet
      }
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL')
      throw new Error(`etcd did not start: ${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    endpoint,
    ...(options.unixSocket || options.netns ? {unixEndpoint: `unix://${socket}`} : {}),
    clientPort: client,
    peerPort: peer,
    dir,
    async stop({keepData = false} = {}) {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGTERM')
        await exited
      }
      if (!keepData) rmSync(dir, {recursive: true, force: true})
    },
  }
}
