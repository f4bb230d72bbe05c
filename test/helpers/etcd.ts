import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {freeLoopbackPort} from '../../src/lib/lab/services.js'
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
}

/** A free loopback port (the lab picks its own ports the same way). */
export const freePort = freeLoopbackPort

export async function startEtcd(options: StartEtcdOptions = {}): Promise<TestEtcd> {
  const bin = requireTool('etcd', 'etcd-server')
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'xc-etcd-'))
  const client = options.clientPort ?? (await freePort())
  const peer = options.peerPort ?? (await freePort())
  const endpoint = `http://${options.host ?? '127.0.0.1'}:${client}`
  const proc: ChildProcess = spawn(
    bin,
    [
      '--name', 'test',
      '--data-dir', join(dir, 'data'),
      '--listen-client-urls', options.unixSocket ? `${endpoint},unix://etcd.sock:1` : endpoint,
      '--advertise-client-urls', endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `test=http://127.0.0.1:${peer}`,
      '--log-level', 'error',
    ],
    {stdio: ['ignore', 'ignore', 'pipe'], cwd: dir},
  )
  let stderr = ''
  proc.stderr?.on('data', (d) => (stderr += d))
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      const res = await fetch(`${endpoint}/health`)
      if (res.ok) break
    } catch {
      // not listening yet
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL')
      throw new Error(`etcd did not start: ${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    endpoint,
    ...(options.unixSocket ? {unixEndpoint: `unix://${join(dir, 'etcd.sock:1')}`} : {}),
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
