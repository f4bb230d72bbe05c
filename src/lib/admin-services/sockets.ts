import {readFileSync, readdirSync, readlinkSync} from 'node:fs'

/**
 * Who holds a port, read from the kernel (/proc/net of this process's network namespace, and
 * each process's open sockets): what the preflight and the start check observe, never what a
 * daemon says about itself.
 */
export interface BoundSocket {
  protocol: 'tcp' | 'udp'
  /** `0.0.0.0` / `::` for a wildcard bind; IPv4-mapped IPv6 addresses as plain IPv4. */
  address: string
  port: number
  inode: number
}

export interface SocketHolder {
  pid: number
  /** The program's name (/proc/PID/comm). */
  command: string
  /** Session id: a process --native started leads its own session, so its children share it. */
  sid: number
  /** The systemd unit it runs in, when there is one (e.g. a distribution's squid.service). */
  unit?: string
}

const TCP_LISTEN = '0A'

/** Sockets bound in this network namespace: listening TCP, and every UDP socket. */
export function boundSockets(): BoundSocket[] {
  const sockets: BoundSocket[] = []
  for (const [file, protocol, v6] of [
    ['tcp', 'tcp', false],
    ['tcp6', 'tcp', true],
    ['udp', 'udp', false],
    ['udp6', 'udp', true],
  ] as const) {
    let text: string
    try {
      text = readFileSync(`/proc/net/${file}`, 'utf8')
    } catch {
      continue // no IPv6 in this kernel
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10) continue
      if (protocol === 'tcp' && fields[3] !== TCP_LISTEN) continue
      const [hexAddress, hexPort] = fields[1].split(':')
      sockets.push({protocol, address: v6 ? ipv6FromHex(hexAddress) : ipv4FromHex(hexAddress), port: Number.parseInt(hexPort, 16), inode: Number(fields[9])})
    }
  }
  return sockets
}

/** /proc/net prints an IPv4 address as one little-endian 32-bit word. */
function ipv4FromHex(hex: string): string {
  const bytes = Buffer.from(hex, 'hex')
  return [bytes[3], bytes[2], bytes[1], bytes[0]].join('.')
}

/** Four little-endian words; `::` and IPv4-mapped addresses come back in their usual short forms. */
function ipv6FromHex(hex: string): string {
  const bytes = Buffer.alloc(16)
  for (let word = 0; word < 4; word++)
    Buffer.from(hex.slice(word * 8, word * 8 + 8), 'hex')
      .reverse()
      .copy(bytes, word * 4)
  if (bytes.every((b) => b === 0)) return '::'
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return [...bytes.subarray(12)].join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16))
  return groups.join(':')
}

/** A socket bound here takes `address:port` from us: same address, or a wildcard. */
export function conflicts(socket: BoundSocket, want: {protocol: 'tcp' | 'udp'; address: string; port: number}): boolean {
  return socket.protocol === want.protocol && socket.port === want.port && (socket.address === want.address || socket.address === '0.0.0.0' || socket.address === '::')
}

/** The processes holding these socket inodes (every process the caller may read; root sees all). */
export function socketHolders(inodes: Set<number>): Map<number, SocketHolder[]> {
  const holders = new Map<number, SocketHolder[]>()
  if (inodes.size === 0) return holders
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    let fds: string[]
    try {
      fds = readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue // gone, or not ours to read
    }
    for (const fd of fds) {
      let target: string
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`)
      } catch {
        continue
      }
      const match = /^socket:\[(\d+)\]$/.exec(target)
      if (!match || !inodes.has(Number(match[1]))) continue
      const info = processInfo(pid)
      if (!info) continue
      const list = holders.get(Number(match[1])) ?? []
      const unit = systemdUnit(pid)
      if (!list.some((h) => h.pid === pid)) list.push({pid, command: info.command, sid: info.sid, ...(unit ? {unit} : {})})
      holders.set(Number(match[1]), list)
    }
  }
  return holders
}

/** The .service a process belongs to, from its cgroup path (none outside systemd). */
function systemdUnit(pid: number): string | undefined {
  try {
    return /\/([^/\n]+\.service)(\/|\n|$)/.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1]
  } catch {
    return undefined
  }
}

/** A process's name, session and start time (clock ticks after boot: with the pid, its identity). */
export function processInfo(pid: number): {command: string; sid: number; startTime: number; pgid: number} | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The name may hold spaces and parentheses: the fields after it follow the last ')'.
    const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields[0] is field 3 of stat(5): state, ppid, pgrp, session ... starttime is field 22.
    return {command, pgid: Number(fields[2]), sid: Number(fields[3]), startTime: Number(fields[19])}
  } catch {
    return undefined
  }
}

/** Every live process in session `sid` (a --native service and the children it forked). */
export function sessionMembers(sid: number): number[] {
  const members: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const info = processInfo(Number(entry))
    // A zombie has left its sockets behind already; it only waits to be reaped.
    if (info && info.sid === sid && !isZombie(Number(entry))) members.push(Number(entry))
  }
  return members
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z'
  } catch {
    return true
  }
}
