import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {freePort} from './etcd.js'
import {requireTool} from './tools.js'

export interface EtcdMember {
  name: string
  endpoint: string
  /** Stops the member (SIGKILL by default: a crash); its data stays so it can be restarted. */
  stop(signal?: NodeJS.Signals): Promise<void>
  start(): Promise<void>
  readonly running: boolean
}

/** A real multi-member etcd cluster on loopback ports, for one test file. */
export interface EtcdCluster {
  members: EtcdMember[]
  endpoints: string[]
  /** Comma-separated, for --etcd. */
  etcdFlag: string
  destroy(): Promise<void>
}

/**
 * Starts `size` etcd members. Short raft timings (heartbeat 50 ms, election 500 ms) make a
 * member loss cost ~0.6 s instead of ~1.7 s and lower etcd's lease floor to 1 s.
 */
export async function startEtcdCluster(size = 3, timing = {heartbeatMs: 50, electionMs: 500}): Promise<EtcdCluster> {
  const bin = requireTool('etcd', 'etcd-server')
  const dir = mkdtempSync(join(tmpdir(), 'xct-election-etcd-'))
  const specs = []
  for (let i = 0; i < size; i++) specs.push({name: `m${i}`, client: await freePort(), peer: await freePort()})
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(',')
  const members: EtcdMember[] = specs.map((s) => {
    let proc: ChildProcess | undefined
    const endpoint = `http://127.0.0.1:${s.client}`
    const member: EtcdMember = {
      name: s.name,
      endpoint,
      get running() {
        return proc !== undefined && proc.exitCode === null && proc.signalCode === null
      },
      async start() {
        proc = spawn(
          bin,
          [
            '--name', s.name,
            '--data-dir', join(dir, s.name),
            '--listen-client-urls', endpoint,
            '--advertise-client-urls', endpoint,
            '--listen-peer-urls', `http://127.0.0.1:${s.peer}`,
            '--initial-advertise-peer-urls', `http://127.0.0.1:${s.peer}`,
            '--initial-cluster', initialCluster,
            '--initial-cluster-state', 'new',
            '--heartbeat-interval', String(timing.heartbeatMs),
            '--election-timeout', String(timing.electionMs),
            '--log-level', 'error',
          ],
          {stdio: ['ignore', 'ignore', 'ignore']},
        )
      },
      async stop(signal: NodeJS.Signals = 'SIGKILL') {
        const p = proc
        if (!p || p.exitCode !== null || p.signalCode !== null) return
        const exited = new Promise((r) => p.once('exit', r))
        p.kill(signal)
        // A member without quorum may ignore SIGTERM (LAB-NOTES): fall back to SIGKILL.
        const timer = setTimeout(() => p.kill('SIGKILL'), 3000)
        await exited
        clearTimeout(timer)
      },
    }
    return member
  })
  await Promise.all(members.map((m) => m.start()))
  await waitHealthy(members.map((m) => m.endpoint), 15_000)
  return {
    members,
    endpoints: members.map((m) => m.endpoint),
    etcdFlag: members.map((m) => m.endpoint).join(','),
    async destroy() {
      await Promise.all(members.map((m) => m.stop('SIGKILL')))
      rmSync(dir, {recursive: true, force: true})
    },
  }
}

/** Waits until a quorum answers: /health is true only with a leader. */
export async function waitHealthy(endpoints: string[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    for (const e of endpoints) {
      try {
        const res = await fetch(`${e}/health`, {signal: AbortSignal.timeout(500)})
        const body = (await res.json()) as {health?: string}
        if (res.ok && body.health === 'true') return
      } catch {
        // not up yet
      }
    }
    if (Date.now() > deadline) throw new Error(`etcd cluster not healthy at ${endpoints.join(', ')}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
