import {connect, createServer, type Server, type Socket} from 'node:net'

/**
 * A TCP relay on loopback that counts the bytes it carries each way: what a client really sent
 * over the wire (an SSH upload's size, or that a re-run sent none), whatever the client reports.
 */
export class ByteRelay {
  port = 0
  /** Client to server. */
  sent = 0
  /** Server to client. */
  received = 0
  private server?: Server
  private readonly sockets = new Set<Socket>()

  constructor(private readonly target: {host: string; port: number}) {}

  async start(): Promise<this> {
    this.server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host)
      for (const s of [client, upstream]) {
        this.sockets.add(s)
        s.on('close', () => this.sockets.delete(s))
        s.on('error', () => {
          client.destroy()
          upstream.destroy()
        })
      }
      client.on('data', (d: Buffer) => (this.sent += d.length))
      upstream.on('data', (d: Buffer) => (this.received += d.length))
      client.pipe(upstream)
      upstream.pipe(client)
    })
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as {port: number}).port
    return this
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }
}
