import {spawn} from 'node:child_process'

import {RbdCli, releaseRbdLock, takeRbdLock} from '../ceph/rbd.js'
import {settings} from '../settings.js'
import type {ServiceSpec} from '../spec/types.js'

export interface CommandOutcome {
  ok: boolean
  code: number | null
  ms: number
  output: string
}

/**
 * A guarded service that runs inside the `serve` process (e.g. the DHCP server): started when
 * this node wins, stopped before it could lose. A throw from start counts as a failed start.
 */
export interface InProcessService {
  start(token: string): Promise<void>
  stop(token: string | null): Promise<void>
}

/**
 * Starts and stops one guarded service on this node with its start/stop commands (or systemctl
 * for a unit). Calls are serialized: a stop requested while a start runs waits for it, so the
 * service is never left running behind a stop.
 */
export class ServiceRunner {
  running = false
  private queue: Promise<unknown> = Promise.resolve()
  private readonly rbd = new RbdCli()

  constructor(
    readonly service: ServiceSpec,
    readonly node: string,
    private readonly inProcess?: InProcessService,
  ) {}

  start(token: string): Promise<CommandOutcome> {
    return this.serial(async () => {
      // The image's lock first: the service never runs on data another leadership still holds.
      const image = this.service.rbdImage
      if (image) {
        const locked = await timed(() => takeRbdLock(this.rbd, image, this.node, token))
        if (!locked.ok) return {...locked, output: `could not lock ${image}: ${locked.output}`}
      }
      if (this.inProcess) {
        const outcome = await timed(() => (this.inProcess as InProcessService).start(token))
        this.running = outcome.ok
        return outcome
      }
      const outcome = await this.exec(this.service.unit ? `systemctl start ${quote(this.service.unit)}` : (this.service.start as string), token)
      this.running = outcome.ok
      return outcome
    })
  }

  /** Stops the service when it runs (or a start is in flight); a no-op otherwise. */
  stop(token: string | null, timeoutMs: number = settings.election.commandTimeoutMs): Promise<CommandOutcome | undefined> {
    return this.serial(async () => {
      if (!this.running) return undefined
      if (this.inProcess) {
        const outcome = await timed(() => (this.inProcess as InProcessService).stop(token))
        this.running = false
        return this.releaseLock(token, outcome)
      }
      const outcome = await this.exec(this.service.unit ? `systemctl stop ${quote(this.service.unit)}` : (this.service.stop as string), token ?? '', timeoutMs)
      // A failed stop command still leaves us not claiming the service: leadership is gone.
      this.running = false
      return this.releaseLock(token, outcome)
    })
  }

  /** After a stop: frees the image for the next leader at once (else it breaks the lock itself). */
  private async releaseLock(token: string | null, outcome: CommandOutcome): Promise<CommandOutcome> {
    const image = this.service.rbdImage
    if (!image || !token) return outcome
    const released = await timed(() => releaseRbdLock(this.rbd, image, this.node, token))
    return released.ok ? outcome : {...outcome, output: `${outcome.output}\nlock of ${image} not released: ${released.output}`}
  }

  private serial<R>(fn: () => Promise<R>): Promise<R> {
    const next = this.queue.then(fn, fn)
    this.queue = next.catch(() => undefined)
    return next
  }

  private exec(command: string, token: string, timeoutMs: number = settings.election.commandTimeoutMs): Promise<CommandOutcome> {
    const started = Date.now()
    return new Promise((resolve) => {
      const child = spawn('/bin/sh', ['-c', command], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {...process.env, XCLUSTER_SERVICE: this.service.name, XCLUSTER_NODE: this.node, XCLUSTER_TOKEN: token},
      })
      let output = ''
      child.stdout.on('data', (d) => (output += d))
      child.stderr.on('data', (d) => (output += d))
      const timer = setTimeout(() => child.kill('SIGKILL'), Math.max(1, timeoutMs))
      child.on('error', (err) => {
        clearTimeout(timer)
        resolve({ok: false, code: null, ms: Date.now() - started, output: String(err)})
      })
      child.on('close', (code) => {
        clearTimeout(timer)
        resolve({ok: code === 0, code, ms: Date.now() - started, output: output.slice(-2000)})
      })
    })
  }
}

async function timed(fn: () => Promise<void>): Promise<CommandOutcome> {
  const started = Date.now()
  try {
    await fn()
    return {ok: true, code: 0, ms: Date.now() - started, output: ''}
  } catch (err) {
    return {ok: false, code: null, ms: Date.now() - started, output: String((err as Error)?.message ?? err)}
  }
}

const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`
