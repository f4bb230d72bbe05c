import {createServer, connect, type Server, type Socket} from 'node:net'

import {freePort} from './etcd.js'

/**
 * A TCP proxy on loopback in front of a real server: a test cuts a client off (every connection
 * reset, new ones refused) or freezes it (bytes held in both directions, connections kept) and
 * heals it again, as a network partition or a stalled link would, without touching the server.
 */
export class TcpProxy {
  port = 0
  private server?: Server
  private pairs = new Set<[Socket, Socket]>()
  private state: 'open' | 'cut' | 'frozen' = 'open'

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async start(): Promise<this> {
    this.port = await freePort()
    this.server = createServer((client) => {
      if (this.state === 'cut') return void client.destroy()
      const upstream = connect(this.targetPort, this.targetHost)
      const pair: [Socket, Socket] = [client, upstream]
      this.pairs.add(pair)
      const close = (): void => {
        client.destroy()
        upstream.destroy()
        this.pairs.delete(pair)
      }
      client.on('error', close).on('close', close)
      upstream.on('error', close).on('close', close)
      client.pipe(upstream)
      upstream.pipe(client)
      if (this.state === 'frozen') this.pause(pair)
    })
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve))
    return this
  }

  /** Resets every connection and refuses new ones until heal(). */
  cut(): void {
    this.state = 'cut'
    for (const [a, b] of this.pairs) {
      a.destroy()
      b.destroy()
    }
    this.pairs.clear()
  }

  /** Holds every byte in both directions (connections stay up) until heal(). */
  freeze(): void {
    this.state = 'frozen'
    for (const pair of this.pairs) this.pause(pair)
  }

  heal(): void {
    const wasFrozen = this.state === 'frozen'
    this.state = 'open'
    if (!wasFrozen) return
    for (const [a, b] of this.pairs) {
      a.pipe(b)
      b.pipe(a)
    }
  }

  async stop(): Promise<void> {
    this.cut()
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve())
  }

  /** Unpiped, not just paused: a pipe resumes its source on the next 'drain'. */
  private pause([a, b]: [Socket, Socket]): void {
    a.unpipe(b)
    b.unpipe(a)
    a.pause()
    b.pause()
  }
}
