import {createServer, connect, type Server, type Socket} from 'node:net'

/**
 * A TCP relay to one etcd member that can be cut: while cut, no byte moves in either direction
 * and new connections hang (nothing is refused or reset, as when a cable is pulled); when
 * healed, what was held back flows again, late, as TCP retransmission would deliver it. One per
 * (daemon, member) gives a daemon a network of its own to partition.
 */
export class PartitionProxy {
  private server?: Server
  private cut = false
  private readonly pairs = new Set<[Socket, Socket]>()
  /** Bytes read while cut, in order, with where they were going. */
  private held: [Socket, Buffer][] = []
  port = 0

  constructor(private readonly target: {host: string; port: number}) {}

  async start(): Promise<this> {
    this.server = createServer((client) => this.relay(client))
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as {port: number}).port
    return this
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** Cuts the link: every byte waits. */
  partition(): void {
    this.cut = true
  }

  heal(): void {
    this.cut = false
    const held = this.held
    this.held = []
    for (const [to, chunk] of held) if (!to.destroyed) to.write(chunk)
  }

  async close(): Promise<void> {
    for (const [a, b] of this.pairs) {
      a.destroy()
      b.destroy()
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }

  private relay(client: Socket): void {
    const upstream = connect(this.target.port, this.target.host)
    const pair: [Socket, Socket] = [client, upstream]
    this.pairs.add(pair)
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk: Buffer) => {
        if (this.cut) this.held.push([to, chunk])
        else to.write(chunk)
      })
    forward(client, upstream)
    forward(upstream, client)
    const end = () => {
      this.pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  }
}

/** One proxy per etcd member for one daemon: its private view of the cluster. */
export async function proxiesFor(endpoints: string[]): Promise<PartitionProxy[]> {
  return Promise.all(
    endpoints.map((e) => {
      const url = new URL(e)
      return new PartitionProxy({host: url.hostname, port: Number(url.port)}).start()
    }),
  )
}
