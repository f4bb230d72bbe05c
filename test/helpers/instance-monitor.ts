import {rmSync} from 'node:fs'
import {createServer, type Server, type Socket} from 'node:net'
import {join} from 'node:path'
import {createInterface} from 'node:readline'

/** Milliseconds on CLOCK_MONOTONIC: the clock every process on this host shares. */
export const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6

/** One service instance as the monitor saw it: the process's own first instant, and its death. */
export interface InstanceLife {
  service: string
  node: string
  token: string
  pid: number
  /** The instance's first instant (its own reading of the shared monotonic clock). */
  start: number
  /** When the kernel closed its socket (its death, seen here no earlier than it happened). */
  end?: number
  /** Whether it exited on SIGTERM (a stop command) rather than being killed. */
  graceful: boolean
  /**
   * Whether its start found no earlier instance alive, as the kernel arbitrates it: the start
   * command takes the service's flock, which an instance holds until its death closes its files
   * (as PostgreSQL's postmaster.pid guards a data directory). Undefined where instances share no
   * filesystem (lab nodes); there the dated start and death are compared.
   */
  exclusive?: boolean
  /** Who held the lock when it was not exclusive (test/helpers/instance-start.sh), or why flock failed. */
  lockHolder?: string
}

export interface InstanceWrite {
  service: string
  node: string
  token: string
  seq: number
  applied: boolean
  revision: bigint
}

export interface Overlap {
  service: string
  a: InstanceLife
  b: InstanceLife
  ms: number
}

/** One overlap in words: who was alive how long after whose start, and who held the lock. */
export const describeOverlap = (o: Overlap): string =>
  `${o.a.node} (token ${o.a.token}, pid ${o.a.pid}) was alive ${o.ms.toFixed(1)} ms after ${o.b.node} (token ${o.b.token}) started${o.b.lockHolder ? `; the lock was held by: ${o.b.lockHolder}` : ''}`

/**
 * What a user of the elected service would see, measured outside the daemons: every instance
 * (test/helpers/service-instance.mjs) connects here when it starts, and the connection closes
 * when it dies, however it dies. Nothing here comes from serve's own account of itself.
 */
export class InstanceMonitor {
  readonly socketPath: string
  readonly lives: InstanceLife[] = []
  readonly writes: InstanceWrite[] = []
  private server?: Server
  private readonly sockets = new Set<Socket>()

  /** Where instances report: the Unix socket, or tcp://HOST:PORT when listening on TCP. */
  address: string

  /** On a Unix socket in `dir`, or (`tcp`) on TCP at that address, for instances on other hosts. */
  constructor(
    readonly dir: string,
    private readonly tcp?: {host: string},
  ) {
    this.socketPath = join(dir, 'instances.sock')
    this.address = this.socketPath
  }

  async start(): Promise<this> {
    this.server = createServer((socket) => this.accept(socket))
    if (this.tcp) {
      await new Promise<void>((resolve) => this.server!.listen(0, this.tcp!.host, resolve))
      this.address = `tcp://${this.tcp.host}:${(this.server.address() as {port: number}).port}`
      return this
    }
    rmSync(this.socketPath, {force: true})
    await new Promise<void>((resolve) => this.server!.listen(this.socketPath, resolve))
    return this
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket)
    let life: InstanceLife | undefined
    createInterface({input: socket}).on('line', (line) => {
      const message = JSON.parse(line) as {
        hello?: {service: string; node: string; token: string; pid: number; startedNs: string; exclusive?: boolean; lockHolder?: string}
        write?: {seq: number; applied: boolean; revision: string}
        bye?: unknown
      }
      if (message.hello) {
        const h = message.hello
        life = {
          service: h.service,
          node: h.node,
          token: h.token,
          pid: h.pid,
          start: Number(BigInt(h.startedNs)) / 1e6,
          graceful: false,
          ...(h.exclusive === undefined ? {} : {exclusive: h.exclusive}),
          ...(h.lockHolder ? {lockHolder: h.lockHolder} : {}),
        }
        this.lives.push(life)
      } else if (message.write && life) {
        this.writes.push({service: life.service, node: life.node, token: life.token, seq: message.write.seq, applied: message.write.applied, revision: BigInt(message.write.revision)})
      } else if (message.bye && life) {
        life.graceful = true
      }
    })
    socket.on('close', () => {
      this.sockets.delete(socket)
      if (life) life.end = monoMs()
    })
    socket.on('error', () => undefined)
  }

  /** Instances of `service` alive now. */
  alive(service: string): InstanceLife[] {
    return this.lives.filter((l) => l.service === service && l.end === undefined)
  }

  /** The one instance of `service` alive now, if exactly one is. */
  only(service: string): InstanceLife | undefined {
    const a = this.alive(service)
    return a.length === 1 ? a[0] : undefined
  }

  /** The first instance started after `at` (monotonic ms). */
  startedAfter(service: string, at: number): InstanceLife | undefined {
    return this.lives.find((l) => l.service === service && l.start >= at)
  }

  /**
   * Every pair of instances of one service that were alive at the same time. Where the kernel
   * arbitrated (an instance's lock), its word is taken: an instance that started while an earlier
   * one held the lock overlapped it, whatever the dates say (this process dates a death when its
   * event loop gets to it, which may be late). Elsewhere the start and death dates are compared.
   */
  overlaps(service?: string): Overlap[] {
    const out: Overlap[] = []
    const services = service ? [service] : [...new Set(this.lives.map((l) => l.service))]
    const ms = (a: InstanceLife, b: InstanceLife) => (a.end ?? monoMs()) - b.start
    for (const s of services) {
      const lives = this.lives.filter((l) => l.service === s).sort((x, y) => x.start - y.start)
      for (const [i, b] of lives.entries()) {
        const earlier = lives.slice(0, i)
        if (b.exclusive === undefined) {
          for (const a of earlier) if (b.start < (a.end ?? Infinity)) out.push({service: s, a, b, ms: ms(a, b)})
        } else if (!b.exclusive) {
          // The one it overlapped: still alive by the dates, or else the last one before it.
          const a = earlier.find((e) => b.start < (e.end ?? Infinity)) ?? earlier.at(-1)
          if (a) out.push({service: s, a, b, ms: ms(a, b)})
        }
      }
    }
    return out
  }

  /**
   * Writes etcd applied for `service`, in etcd's order, whose token is older than one applied
   * before them: a deposed leader's write that got through. Must be empty.
   */
  staleWrites(service: string): InstanceWrite[] {
    const applied = this.writes.filter((w) => w.service === service && w.applied).sort((a, b) => (a.revision < b.revision ? -1 : a.revision > b.revision ? 1 : 0))
    const stale: InstanceWrite[] = []
    let newest = 0n
    for (const w of applied) {
      if (BigInt(w.token) < newest) stale.push(w)
      else newest = BigInt(w.token)
    }
    return stale
  }

  /** Writes etcd refused because their token no longer led (counted: the fence at work). */
  refusedWrites(service: string): number {
    return this.writes.filter((w) => w.service === service && !w.applied).length
  }
}

/**
 * A `services:` entry whose instance is service-instance.mjs: started in the background by the
 * start command (it stays in the instance's process group), stopped with SIGTERM by the stop
 * command, which waits until it is gone. With `writes`, it makes guarded writes under
 * `writes.prefix` while it lives.
 */
export function instanceServiceYaml(
  name: string,
  ttl: number,
  monitor: InstanceMonitor,
  options: {writes?: {prefix: string; leaderKey: string}; extra?: string; on?: {node: string; script: string; dir: string}; stopAfterSeconds?: number} = {},
): string {
  // On the test host, or (`on`) on a lab node: its Node.js, the script copied there, files in `dir`.
  const script = options.on?.script ?? new URL('./service-instance.mjs', import.meta.url).pathname
  const node = options.on?.node ?? process.execPath
  const dir = options.on?.dir ?? monitor.dir
  const pidFile = `${dir}/${name}-$XCLUSTER_NODE.pid`
  const args = [monitor.address, pidFile, ...(options.writes ? [options.writes.prefix, options.writes.leaderKey] : [])].join(' ')
  // Where every instance runs on this host, the start command takes the service's lock (fd 9,
  // inherited by the instance, released when it dies) and tells the instance whether it got it.
  const output = `</dev/null >>${dir}/${name}-$XCLUSTER_NODE.out 2>&1 &`
  const locked = new URL('./instance-start.sh', import.meta.url).pathname
  const start = options.on ? `${node} ${script} ${args} ${output}` : `${locked} ${dir}/${name}.lock ${node} ${script} ${args} ${output}`
  // Dead includes a zombie: this host's PID 1 may never reap the orphan.
  // stopAfterSeconds: a stop that takes its time (a database's checkpoint) before it ends the instance.
  const wait = options.stopAfterSeconds ? `sleep ${options.stopAfterSeconds}; ` : ''
  // Each step is dated on stderr (the guardian's log), for the diagnosis of a slow stop.
  const stamp = (what: string) => `echo "stop $(date +%T.%N): ${what}" >&2`
  const stop = `${wait}pid=$(cat ${pidFile}) && ${stamp('kill $pid')} && kill $pid; while kill -0 $pid 2>/dev/null && [ "$(cut -d" " -f3 /proc/$pid/stat)" != Z ]; do sleep 0.02; done; ${stamp('gone')}`
  return `  - {name: ${name}, ttl: ${ttl}, start: '${start}', stop: '${stop}'${options.extra ? `, ${options.extra}` : ''}}\n`
}
