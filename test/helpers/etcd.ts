import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {requireTool} from './tools.js'

/** A real single-member etcd server (Debian etcd-server) on loopback, for one test file. */
export interface TestEtcd {
  endpoint: string
  stop(): Promise<void>
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const {port} = srv.address() as {port: number}
      srv.close(() => resolve(port))
    })
  })
}

export async function startEtcd(): Promise<TestEtcd> {
  const bin = requireTool('etcd', 'etcd-server')
  const dir = mkdtempSync(join(tmpdir(), 'xc-etcd-'))
  const client = await freePort()
  const peer = await freePort()
  const endpoint = `http://127.0.0.1:${client}`
  const proc: ChildProcess = spawn(
    bin,
    [
      '--name', 'test',
      '--data-dir', join(dir, 'data'),
      '--listen-client-urls', endpoint,
      '--advertise-client-urls', endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `test=http://127.0.0.1:${peer}`,
      '--log-level', 'error',
    ],
    {stdio: ['ignore', 'ignore', 'pipe']},
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
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGTERM')
        await exited
      }
      rmSync(dir, {recursive: true, force: true})
    },
  }
}
