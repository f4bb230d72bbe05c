import {execFileSync, spawn} from 'node:child_process'

import {requireTool} from './tools.js'

/**
 * Namespace tests must not touch the machine's own network: refuse to run in the root
 * namespace (test/run.sh runs the suite inside xc-admin; by hand, use `ip netns exec`).
 */
export function requireOwnNetns(): void {
  if (ip('netns', 'identify', String(process.pid)).trim() === '') {
    throw new Error('this test adds interfaces and addresses: run it inside a network namespace (test/run.sh does; by hand: ip netns exec xc-admin node --import tsx --test FILE)')
  }
}

const ip = (...args: string[]): string => execFileSync('ip', args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})

/**
 * A client namespace joined to the current namespace by a veth pair: `serverIf` here (with the
 * server's addresses), `eth0` in `ns`. Names carry `tag` so test files running in parallel
 * never collide.
 */
export class ClientNet {
  readonly ns: string
  readonly serverIf: string

  constructor(tag: string, prefix = 'xct-dhcp-') {
    requireTool('ip', 'iproute2')
    this.ns = `${prefix}${tag}`
    this.serverIf = `${prefix}${tag}s`
    if (this.serverIf.length > 15) throw new Error(`interface name ${this.serverIf} is longer than 15 characters`)
  }

  create(serverCidrs: string[]): void {
    requireOwnNetns()
    this.destroy()
    ip('netns', 'add', this.ns)
    ip('link', 'add', this.serverIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ns)
    for (const cidr of serverCidrs) ip('addr', 'add', cidr, 'dev', this.serverIf)
    ip('link', 'set', this.serverIf, 'up')
    ip('-n', this.ns, 'link', 'set', 'lo', 'up')
    ip('-n', this.ns, 'link', 'set', 'eth0', 'up')
    // Only for the limited broadcast our simulated clients send: nothing else lives here.
    ip('-n', this.ns, 'route', 'add', 'default', 'dev', 'eth0')
  }

  setMac(mac: string): void {
    ip('-n', this.ns, 'link', 'set', 'eth0', 'down')
    ip('-n', this.ns, 'link', 'set', 'eth0', 'address', mac)
    ip('-n', this.ns, 'link', 'set', 'eth0', 'up')
    // Taking the link down dropped its routes.
    ip('-n', this.ns, 'route', 'replace', 'default', 'dev', 'eth0')
  }

  addAddress(cidr: string): void {
    ip('-n', this.ns, 'addr', 'add', cidr, 'dev', 'eth0')
  }

  flushAddresses(): void {
    ip('-n', this.ns, 'addr', 'flush', 'dev', 'eth0')
    ip('-n', this.ns, 'route', 'replace', 'default', 'dev', 'eth0')
  }

  /** Runs argv inside the namespace; resolves with exit code and output (never rejects on exit codes). */
  exec(argv: string[], options: {timeoutMs?: number; until?: RegExp} = {}): Promise<{code: number | null; out: string}> {
    return new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', this.ns, ...argv], {stdio: ['ignore', 'pipe', 'pipe']})
      let out = ''
      let settled = false
      const finish = (code: number | null): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve({code, out})
      }
      const onData = (d: Buffer): void => {
        out += d
        // Long-running clients (dhclient -d) are stopped once they said what we wait for.
        if (options.until?.test(out)) {
          child.kill('SIGKILL')
          finish(0)
        }
      }
      child.stdout.on('data', onData)
      child.stderr.on('data', onData)
      child.on('error', reject)
      child.on('close', (code) => finish(code))
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        finish(null)
      }, options.timeoutMs ?? 15_000)
    })
  }

  destroy(): void {
    try {
      ip('link', 'del', this.serverIf)
    } catch {
      // not there
    }
    try {
      ip('netns', 'del', this.ns)
    } catch {
      // not there
    }
  }
}
