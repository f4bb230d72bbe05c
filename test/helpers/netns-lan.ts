import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'

const ip = (...args: string[]): string => execFileSync('ip', args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})

export interface LanHost {
  name: string
  address: string
}

/**
 * Network namespaces `<prefix><host>` joined by a bridge in `<prefix>lan`, addresses only inside:
 * a small LAN of this test's own. A host's link can be cut at the bridge (a partition): its
 * interface stays up, so it still reaches itself, and nothing else.
 */
export class NamespaceLan {
  readonly lan: string

  constructor(
    readonly prefix: string,
    readonly hosts: LanHost[],
    readonly prefixLength = 24,
  ) {
    this.lan = `${prefix}lan`
  }

  namespace(host: string): string {
    return `${this.prefix}${host}`
  }

  setUp(): void {
    this.tearDown()
    ip('netns', 'add', this.lan)
    ip('-n', this.lan, 'link', 'add', 'br0', 'type', 'bridge')
    ip('-n', this.lan, 'link', 'set', 'br0', 'up')
    for (const [i, h] of this.hosts.entries()) {
      const ns = this.namespace(h.name)
      ip('netns', 'add', ns)
      ip('link', 'add', `v${i}`, 'netns', this.lan, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
      ip('-n', this.lan, 'link', 'set', `v${i}`, 'master', 'br0', 'up')
      ip('-n', ns, 'link', 'set', 'lo', 'up')
      ip('-n', ns, 'addr', 'add', `${h.address}/${this.prefixLength}`, 'dev', 'eth0')
      ip('-n', ns, 'link', 'set', 'eth0', 'up')
    }
  }

  /** Cuts the host off the bridge. */
  partition(host: string): void {
    ip('-n', this.lan, 'link', 'set', this.port(host), 'down')
  }

  heal(host: string): void {
    ip('-n', this.lan, 'link', 'set', this.port(host), 'up')
  }

  tearDown(): void {
    for (const h of this.hosts) if (existsSync(`/run/netns/${this.namespace(h.name)}`)) ip('netns', 'del', this.namespace(h.name))
    if (existsSync(`/run/netns/${this.lan}`)) ip('netns', 'del', this.lan)
  }

  private port(host: string): string {
    const i = this.hosts.findIndex((h) => h.name === host)
    if (i < 0) throw new Error(`no host ${host} on ${this.lan}`)
    return `v${i}`
  }
}
