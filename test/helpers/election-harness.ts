import {spawn, type ChildProcess} from 'node:child_process'
import {appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import type {LeaderRecord} from '../../src/lib/election/records.js'
import type {EtcdStore} from '../../src/lib/etcd/store.js'

import {BIN} from './cli.js'
import {raftTerm} from './etcd-cluster.js'

/** One line the guarded service's start/stop command wrote: what ran, where, with which token, when. */
export interface ServiceEvent {
  kind: 'start' | 'stop'
  node: string
  token: string
  /** Wall-clock milliseconds (fractional), from `date +%s%N`. */
  at: number
}

/** A service entry for the spec whose start/stop commands append to `log`. */
export function loggedService(name: string, log: string, ttl: number): string {
  const line = (kind: string) => `echo "${kind} $XCLUSTER_NODE $XCLUSTER_TOKEN $(date +%s%N)" >> ${log}`
  return `  - {name: ${name}, ttl: ${ttl}, start: '${line('start')}', stop: '${line('stop')}'}\n`
}

export function readEvents(log: string): ServiceEvent[] {
  if (!existsSync(log)) return []
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [kind, node, token, ns] = l.split(' ')
      return {kind: kind as 'start' | 'stop', node: node as string, token: token as string, at: Number(BigInt(ns as string) / 1000n) / 1000}
    })
}

export interface DaemonEvent {
  event: string
  node: string
  service: string
  token?: string
  receivedAt: number
  [k: string]: unknown
}

/**
 * Where this test process's daemons keep their runtime files (instance logs, lease records):
 * one directory per test process, so tests running at once never see each other's.
 */
let runDir: string | undefined
export const daemonRunDir = (): string => (runDir ??= mkdtempSync(join(tmpdir(), 'xct-serve-run-')))

/** A real `xcluster serve --elect` process, as it would run on a node. */
export class Daemon {
  /** Every daemon this test process started, so a failed test can still kill them all. */
  static readonly started = new Set<Daemon>()

  static {
    // Whatever a test left running dies with the test file's process, never outliving it to
    // load the machine (or talk to a later test's etcd) while the next file runs.
    process.on('exit', () => {
      for (const d of Daemon.started) d.proc.kill('SIGKILL')
    })
  }

  /** Kills every daemon still alive (a test's after hook): none may outlive its test file. */
  static async killAll(): Promise<void> {
    await Promise.all([...Daemon.started].map((d) => d.stop('SIGKILL').catch(() => undefined)))
  }

  readonly events: DaemonEvent[] = []
  proc!: ChildProcess
  private exited!: Promise<void>

  constructor(
    readonly node: string,
    readonly services: string[],
    readonly etcd: string,
    readonly stderrLog?: string,
    /** A command prefix, e.g. `ip netns exec NS`, to run the daemon on a node's network. */
    readonly wrap: string[] = [],
    /** Extra environment, e.g. XCLUSTER_ETCD_CA / _CERT / _KEY for a TLS etcd. */
    readonly env: Record<string, string> = {},
    /** More of serve's flags, e.g. `--http 127.0.0.1:0`. */
    readonly args: string[] = [],
  ) {}

  start(): this {
    const argv = [...this.wrap, process.execPath, BIN, 'serve', '--node', this.node, ...this.services.flatMap((s) => ['--elect', s]), ...this.args]
    this.proc = spawn(argv[0] as string, argv.slice(1), {
      // The Rathole clients' configs of serve --certs stay in the test's run dir unless a test says where.
      env: {...process.env, XCLUSTER_ETCD: this.etcd, XCLUSTER_RUN_DIR: daemonRunDir(), XCLUSTER_RATHOLE_CLIENT_DIR: join(daemonRunDir(), 'rathole-clients', this.node), NO_COLOR: '1', ...this.env},
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let buffer = ''
    this.proc.stderr?.on('data', (d) => {
      buffer += d
      let nl
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        if (this.stderrLog) appendFileSync(this.stderrLog, line + '\n')
        try {
          this.events.push({...JSON.parse(line), receivedAt: Date.now()})
        } catch {
          // not an event line
        }
      }
    })
    Daemon.started.add(this)
    this.exited = new Promise((r) =>
      this.proc.once('exit', () => {
        Daemon.started.delete(this)
        r()
      }),
    )
    return this
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null
  }

  signal(sig: NodeJS.Signals): void {
    if (this.alive) this.proc.kill(sig)
  }

  /** Signals the daemon and waits for it to exit; one that outlives SIGTERM by 15 s is a bug, reported (never a hang). */
  async stop(sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const sentAt = new Date().toISOString().slice(11, 23)
    if (this.alive) {
      this.proc.kill('SIGCONT')
      this.proc.kill(sig)
    }
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), 15_000)))
    const outcome = await Promise.race([this.exited, late])
    clearTimeout(timer)
    if (outcome === 'late') {
      this.proc.kill('SIGKILL')
      await this.exited
      // What it was doing: its last events, as it logged them (and the time each arrived).
      const last = this.events.slice(-8).map((e) => `${new Date(e.receivedAt).toISOString().slice(11, 23)} ${e.service ?? ''} ${e.event}${e.token ? ` ${e.token}` : ''}`)
      throw new Error(`daemon ${this.node} did not exit within 15 s of ${sig} (sent at ${sentAt}); its last events: ${last.join(' | ')}`)
    }
  }

  wait(): Promise<void> {
    return this.exited
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `fn` until it returns a value, or fails after `timeoutMs`. */
export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, everyMs = 10): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

/** The start events whose matching stop has not been logged yet (the services running now). */
export function running(events: ServiceEvent[]): ServiceEvent[] {
  const open = new Map<string, ServiceEvent>()
  for (const e of events) {
    const key = `${e.node}|${e.token}`
    if (e.kind === 'start') open.set(key, e)
    else open.delete(key)
  }
  return [...open.values()]
}

export function writeSpec(path: string, base: string, services: string): void {
  writeFileSync(path, `${base}services:\n${services}`)
}

export const specBase = (root: string): string => readFileSync(join(root, 'templates', 'xcluster.yaml'), 'utf8')

/**
 * Runs a failover trial until it ran on a stable etcd, at most `attempts` times. A new etcd raft
 * leader extends every lease, so a trial across one measures etcd, not the daemon; `again`
 * restores what the trial broke before the next one.
 */
export async function onStableEtcd<T>(endpoints: string[], trial: () => Promise<T>, again: (result: T) => Promise<void>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const term = await raftTerm(endpoints)
    if (term <= 0) throw new Error(`etcd at ${endpoints.join(',')} reports no raft term`)
    const result = await trial()
    if ((await raftTerm(endpoints)) === term || attempt >= attempts) return result
    console.log('# etcd elected a new raft leader during the trial (leases extended): trying again')
    await again(result)
  }
}

/** Who leads SERVICE as etcd records it: the node and its fencing token (the leader key's create revision). */
export async function electionLeader(store: EtcdStore, service: string): Promise<{node: string; token: string} | undefined> {
  const held = await store.getJson<LeaderRecord>(store.keys.electionLeader(service))
  return held ? {node: held.value.node, token: held.createRevision} : undefined
}
