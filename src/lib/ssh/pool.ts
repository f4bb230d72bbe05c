import {type ConnectOptions, SshHost, type SshTarget} from './host.js'

/**
 * One connection per host for the length of a run: every step asks the pool, gets the same live
 * connection, and a host whose connection dropped is reconnected on the next request.
 * Hosts are keyed by node name.
 */
export class HostPool {
  private readonly connections = new Map<string, Promise<SshHost>>()

  constructor(private readonly options: ConnectOptions = {}) {}

  async get(target: SshTarget): Promise<SshHost> {
    for (;;) {
      const pending = this.connections.get(target.name)
      if (!pending) break
      const host = await pending.catch(() => undefined)
      if (host?.alive) return host
      // Dead or failed: forget it (unless a concurrent caller already replaced it) and reconnect.
      if (this.connections.get(target.name) === pending) this.connections.delete(target.name)
    }
    const connecting = SshHost.connect(target, this.options)
    this.connections.set(target.name, connecting)
    connecting.catch(() => {
      if (this.connections.get(target.name) === connecting) this.connections.delete(target.name)
    })
    return connecting
  }

  /** Closes and forgets a host's connection (it rebooted: the next request connects afresh). */
  async drop(name: string): Promise<void> {
    const pending = this.connections.get(name)
    this.connections.delete(name)
    await (await pending?.catch(() => undefined))?.close()
  }

  /** Number of hosts with a pooled (or connecting) connection. */
  get size(): number {
    return this.connections.size
  }

  async closeAll(): Promise<void> {
    const pending = [...this.connections.values()]
    this.connections.clear()
    await Promise.all(pending.map(async (p) => (await p.catch(() => undefined))?.close()))
  }
}
