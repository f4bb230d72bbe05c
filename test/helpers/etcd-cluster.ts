import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {closeSync, mkdtempSync, openSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {renderMemberConfig, type EtcdMemberPlan} from '../../src/lib/etcd/cluster-config.js'
import {freePort, HEALTH_PROBE_IDENTITY, startEtcd, tlsHealthy, type StartEtcdOptions, type TestEtcd, type TlsClientFiles} from './etcd.js'
import type {TestPki} from './pki.js'
import {requireTool} from './tools.js'

export interface EtcdMember {
  name: string
  endpoint: string
  /** Stops the member (SIGKILL by default: a crash); its data stays so it can be restarted. */
  stop(signal?: NodeJS.Signals): Promise<void>
  start(): Promise<void>
  readonly running: boolean
  /** The member's process id while it runs (to freeze it with SIGSTOP, say). */
  readonly pid: number | undefined
}

/** A real multi-member etcd cluster on loopback ports, for one test file. */
export interface EtcdCluster {
  members: EtcdMember[]
  endpoints: string[]
  /** Comma-separated, for --etcd. */
  etcdFlag: string
  destroy(): Promise<void>
}

/** A member placed in a network namespace at an address (instead of loopback ports). */
export interface MemberHost {
  namespace: string
  address: string
}

/**
 * Starts `size` etcd members (on loopback ports, or one per `hosts` namespace on ports
 * 2379/2380 of its address). Short raft timings (heartbeat 50 ms, election 500 ms) make a
 * member loss cost ~0.6 s instead of ~1.7 s and lower etcd's lease floor to 1 s.
 */
export async function startEtcdCluster(size = 3, timing = {heartbeatMs: 50, electionMs: 500}, hosts?: MemberHost[]): Promise<EtcdCluster> {
  // Free loopback ports are picked before etcd binds them: a test file running in parallel can
  // take one in between. Try again with new ports rather than fail.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEtcdClusterOnce(size, timing, hosts)
    } catch (err) {
      if (attempt >= 3) throw err
    }
  }
}

/** startEtcd() (single member) with the same retry on a port taken in between. */
export async function startEtcdRetrying(options: StartEtcdOptions = {}): Promise<TestEtcd> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEtcd(options)
    } catch (err) {
      if (attempt >= 3) throw err
    }
  }
}

/** A TLS cluster: also the members' rendered config files, which started them, and their logs. */
export interface TlsEtcdCluster extends EtcdCluster {
  configFiles: string[]
  /** Each member's stderr (zap JSON lines at `logLevel`). */
  logFiles: string[]
}

export interface TlsEtcdClusterOptions {
  size?: number
  cluster?: string
  /** etcd's log level ('info' logs every user and role change). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error'
}

/**
 * Starts `size` etcd members on loopback ports, each from its config file rendered by
 * src/lib/etcd/cluster-config.ts with peer and client TLS and client-certificate authentication,
 * with certificates of `pki` (member SANs: its name and 127.0.0.1).
 */
export async function startTlsEtcdCluster(pki: TestPki, options: TlsEtcdClusterOptions = {}): Promise<TlsEtcdCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startTlsEtcdClusterOnce(pki, options.size ?? 3, options.cluster ?? 'xcluster', options.logLevel ?? 'error')
    } catch (err) {
      if (attempt >= 3) throw err
    }
  }
}

async function startTlsEtcdClusterOnce(pki: TestPki, size: number, cluster: string, logLevel: string): Promise<TlsEtcdCluster> {
  const bin = requireTool('etcd', 'etcd-server')
  const dir = mkdtempSync(join(tmpdir(), 'xct-tls-etcd-'))
  const plans: EtcdMemberPlan[] = []
  for (let i = 0; i < size; i++) plans.push({name: `s${i + 1}`, ip: '127.0.0.1', clientUrl: `https://127.0.0.1:${await freePort()}`, peerUrl: `https://127.0.0.1:${await freePort()}`})
  const configFiles: string[] = []
  for (const plan of plans) {
    const tls = await pki.member(plan)
    const file = join(dir, `${plan.name}.yml`)
    writeFileSync(file, renderMemberConfig(cluster, plans, plan.name, {dataDir: join(dir, plan.name), tls, heartbeatMs: 50, electionMs: 500, logLevel}))
    configFiles.push(file)
  }
  const logFiles = plans.map((plan) => join(dir, `${plan.name}.log`))
  const members = plans.map((plan, i) => memberProcess(plan.name, plan.clientUrl, [bin, '--config-file', configFiles[i] as string], logFiles[i]))
  const probe: TlsClientFiles = {caFile: pki.caFile, ...(await pki.client(HEALTH_PROBE_IDENTITY))}
  await Promise.all(members.map((m) => m.start()))
  try {
    await untilHealthyOrDead(
      members,
      waitTlsHealthy(
        members.map((m) => m.endpoint),
        probe,
        15_000,
      ),
    )
  } catch (err) {
    await Promise.all(members.map((m) => m.stop('SIGKILL')))
    rmSync(dir, {recursive: true, force: true})
    throw err
  }
  return {
    members,
    endpoints: members.map((m) => m.endpoint),
    etcdFlag: members.map((m) => m.endpoint).join(','),
    configFiles,
    logFiles,
    async destroy() {
      await Promise.all(members.map((m) => m.stop('SIGKILL')))
      rmSync(dir, {recursive: true, force: true})
    },
  }
}

/** Waits until a quorum answers /health over TLS. */
export async function waitTlsHealthy(endpoints: string[], probe: TlsClientFiles, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    for (const e of endpoints) if (await tlsHealthy(e, probe)) return
    if (Date.now() > deadline) throw new Error(`etcd cluster not healthy at ${endpoints.join(', ')}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** One member process, started from `argv`; restartable with its data. Its stderr goes to `logFile` if given. */
function memberProcess(name: string, endpoint: string, argv: string[], logFile?: string): EtcdMember {
  let proc: ChildProcess | undefined
  return {
    name,
    endpoint,
    get running() {
      return proc !== undefined && proc.exitCode === null && proc.signalCode === null
    },
    get pid() {
      return proc?.pid
    },
    async start() {
      const log = logFile ? openSync(logFile, 'a') : 'ignore'
      proc = spawn(argv[0] as string, argv.slice(1), {stdio: ['ignore', 'ignore', log]})
      if (typeof log === 'number') closeSync(log)
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
}

/** Resolves when `healthy` does; fails fast when a member exits during start-up (its port taken). */
async function untilHealthyOrDead(members: EtcdMember[], healthy: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const exited = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      const dead = members.find((m) => !m.running)
      if (dead) reject(new Error(`etcd member ${dead.name} exited during start-up`))
    }, 50)
  })
  exited.catch(() => undefined)
  try {
    await Promise.race([healthy, exited])
  } finally {
    clearInterval(timer)
  }
}

async function startEtcdClusterOnce(size: number, timing: {heartbeatMs: number; electionMs: number}, hosts?: MemberHost[]): Promise<EtcdCluster> {
  const bin = requireTool('etcd', 'etcd-server')
  if (hosts) requireTool('etcdctl', 'etcd-client')
  const dir = mkdtempSync(join(tmpdir(), 'xct-election-etcd-'))
  const specs = []
  for (let i = 0; i < size; i++) {
    const host = hosts?.[i]
    specs.push(
      host
        ? {name: `m${i}`, address: host.address, client: 2379, peer: 2380, wrap: ['ip', 'netns', 'exec', host.namespace]}
        : {name: `m${i}`, address: '127.0.0.1', client: await freePort(), peer: await freePort(), wrap: []},
    )
  }
  const initialCluster = specs.map((s) => `${s.name}=http://${s.address}:${s.peer}`).join(',')
  const members: EtcdMember[] = specs.map((s) => {
    const endpoint = `http://${s.address}:${s.client}`
    return memberProcess(s.name, endpoint, [
      ...s.wrap,
      bin,
      '--name',
      s.name,
      '--data-dir',
      join(dir, s.name),
      '--listen-client-urls',
      endpoint,
      '--advertise-client-urls',
      endpoint,
      '--listen-peer-urls',
      `http://${s.address}:${s.peer}`,
      '--initial-advertise-peer-urls',
      `http://${s.address}:${s.peer}`,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-state',
      'new',
      '--heartbeat-interval',
      String(timing.heartbeatMs),
      '--election-timeout',
      String(timing.electionMs),
      // A member rejoining after a partition must not depose the leader (etcd 3.4 default: off).
      '--pre-vote=true',
      '--log-level',
      'error',
    ])
  })
  await Promise.all(members.map((m) => m.start()))
  try {
    await untilHealthyOrDead(
      members,
      hosts
        ? waitHealthyIn(
            hosts[0] as MemberHost,
            members.map((m) => m.endpoint),
            15_000,
          )
        : waitHealthy(
            members.map((m) => m.endpoint),
            15_000,
          ),
    )
  } catch (err) {
    await Promise.all(members.map((m) => m.stop('SIGKILL')))
    rmSync(dir, {recursive: true, force: true})
    throw err
  }
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

/** Waits until a quorum answers, asking from inside a namespace (etcdctl endpoint health). */
export async function waitHealthyIn(host: MemberHost, endpoints: string[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) =>
      execFile('ip', ['netns', 'exec', host.namespace, 'etcdctl', `--endpoints=${endpoints.join(',')}`, '--command-timeout=1s', 'endpoint', 'health'], (err) => resolve(!err)),
    )
    if (ok) return
    if (Date.now() > deadline) throw new Error(`etcd cluster not healthy at ${endpoints.join(', ')} (from ${host.namespace})`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * The highest raft term the reachable members report. A change means etcd elected a new leader,
 * and a new etcd leader extends every lease (by design), so a lease-expiry time measured across
 * it is not the election's own.
 */
export async function raftTerm(endpoints: string[]): Promise<number> {
  let term = 0
  for (const endpoint of endpoints) {
    const res = await fetch(`${endpoint}/v3/maintenance/status`, {method: 'POST', body: '{}', signal: AbortSignal.timeout(1000)}).catch(() => undefined)
    if (!res?.ok) continue
    const body = (await res.json()) as {raftTerm?: string; header?: {raft_term?: string}}
    term = Math.max(term, Number(body.raftTerm ?? body.header?.raft_term ?? 0))
  }
  return term
}

/** Which member leads raft now (an index into `cluster.members`). */
export async function etcdLeaderIndex(cluster: EtcdCluster, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    for (const [i, m] of cluster.members.entries()) {
      if (!m.running) continue
      const res = await fetch(`${m.endpoint}/v3/maintenance/status`, {method: 'POST', body: '{}', signal: AbortSignal.timeout(1000)}).catch(() => undefined)
      if (!res?.ok) continue
      const body = (await res.json()) as {leader: string; header: {member_id: string}}
      if (body.leader === body.header.member_id) return i
    }
    if (Date.now() > deadline) throw new Error('no etcd raft leader')
    await new Promise((r) => setTimeout(r, 50))
  }
}
