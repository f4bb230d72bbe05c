/**
 * Test machines with a Linux kernel of their own: User-mode Linux (Debian's user-mode-linux),
 * for what needs a kernel driver this machine's kernel lacks (the rbd driver: a leader's mapping
 * of its image). UML runs a real Linux kernel as ordinary processes, without virtualisation
 * hardware; its rbd and nbd drivers are modules of Debian's package.
 *
 * The machines sit on a bridge in a network namespace of the test's own (the host side is
 * BRIDGE_ADDRESS, where the test's etcd and Ceph listen); nothing reaches any other address.
 * Each machine's host processes are in a freezer cgroup, so a test can pause a whole machine
 * (kernel, serve, its guardian and its service together) as a stalled VM is paused.
 */
import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ROOT} from './cli.js'
import {freezerRoot} from './freezer.js'
import {requireTool} from './tools.js'

export const BRIDGE_ADDRESS = '10.99.0.1'
const UML_RUN = join(ROOT, 'test', 'helpers', 'uml-run')

const ip = (args: string[]) => execFileSync('ip', args, {stdio: ['ignore', 'pipe', 'pipe']})

/** The namespace and bridge the machines share; `close()` takes them down (and every tap on the bridge). */
export class UmlNetwork {
  readonly netns: string

  /** `tag` tells apart the networks of one test process (one per suite). */
  constructor(tag: string) {
    this.netns = `xct-uml-${process.pid}-${tag}`
    requireTool('linux.uml', 'user-mode-linux')
    requireTool('modprobe', 'kmod')
    ip(['netns', 'add', this.netns])
    const inNs = (args: string[]) => ip(['netns', 'exec', this.netns, 'ip', ...args])
    inNs(['link', 'set', 'lo', 'up'])
    inNs(['link', 'add', 'xctbr', 'type', 'bridge'])
    inNs(['addr', 'add', `${BRIDGE_ADDRESS}/24`, 'dev', 'xctbr'])
    inNs(['link', 'set', 'xctbr', 'up'])
  }

  /** `ip netns exec NS`: a command prefix for what must reach the machines' network. */
  get wrap(): string[] {
    return ['ip', 'netns', 'exec', this.netns]
  }

  close(): void {
    try {
      ip(['netns', 'del', this.netns])
    } catch {
      // already gone
    }
  }
}

/** One machine: the wrap that runs a command as its program, and the switch that pauses it. */
export class UmlMachine {
  readonly cgroup: string
  /** The machine's files (hostfs): its run script, the stop request. */
  readonly dir: string

  constructor(
    readonly net: UmlNetwork,
    readonly name: string,
    readonly address: string,
    baseDir: string,
    /** The kernel modules the machine has (loaded at boot): a program finds no other. */
    readonly modules: readonly string[],
  ) {
    this.cgroup = join(freezerRoot(), `${net.netns}-${name}`)
    mkdirSync(this.cgroup, {recursive: true})
    this.dir = join(baseDir, `uml-${name}`)
  }

  /** A command prefix (e.g. the Daemon's wrap) that runs the rest as this machine's program. */
  get wrap(): string[] {
    return ['bash', UML_RUN, this.net.netns, this.name, this.address, this.cgroup, this.dir, this.modules.join(',')]
  }

  /** The host processes of the machine (its kernel and every process in it). */
  pids(): number[] {
    return readFileSync(join(this.cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number)
  }

  freeze(): Promise<void> {
    return this.setState('FROZEN')
  }

  thaw(): Promise<void> {
    return this.setState('THAWED')
  }

  /** Asks the machine's program to stop (SIGTERM inside the machine); the machine then powers off. */
  requestStop(): void {
    writeFileSync(join(this.dir, 'stop'), '')
  }

  /** Kills whatever is left of the machine and removes its cgroup. */
  destroy(): void {
    if (!existsSync(this.cgroup)) return
    try {
      writeFileSync(join(this.cgroup, 'freezer.state'), 'THAWED')
    } catch {
      // gone meanwhile
    }
    for (let round = 0; round < 50 && this.pids().length > 0; round++) {
      for (const pid of this.pids()) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone meanwhile
        }
      }
      execFileSync('sleep', ['0.1'])
    }
    try {
      rmdirSync(this.cgroup)
    } catch {
      // a process still in it: left for the next run's cleanup
    }
  }

  /**
   * A freeze can stay FREEZING: the UML kernel ptrace-stops its processes, and a task stopped by
   * a tracer that is frozen itself is never marked frozen. It is paused all the same, so the
   * machine counts as paused once no thread of it is running or in an ordinary sleep: each is
   * frozen (shown as D), stopped by its tracer (t), or exited (Z).
   */
  private async setState(state: 'FROZEN' | 'THAWED'): Promise<void> {
    writeFileSync(join(this.cgroup, 'freezer.state'), state)
    const deadline = Date.now() + 10_000
    for (;;) {
      const now = readFileSync(join(this.cgroup, 'freezer.state'), 'utf8').trim()
      if (now === state || (state === 'FROZEN' && now === 'FREEZING' && this.threadStates().every((s) => 'DtZ'.includes(s)))) return
      if (Date.now() > deadline) throw new Error(`${this.name} did not become ${state} (${now}; thread states ${this.threadStates().join('')})`)
      await new Promise((r) => setTimeout(r, 10))
    }
  }

  /** The state letter (/proc/TID/stat) of every thread of the machine's host processes. */
  private threadStates(): string[] {
    return readFileSync(join(this.cgroup, 'tasks'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .flatMap((tid) => {
        try {
          // "PID (COMM) STATE ...": the command name may hold spaces and parentheses.
          const stat = readFileSync(`/proc/${tid}/stat`, 'utf8')
          return [stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)]
        } catch {
          return [] // exited meanwhile
        }
      })
  }
}

/** Removes the freezer cgroups of earlier runs whose processes are all gone. */
export function removeStaleUmlCgroups(): void {
  const root = freezerRoot()
  for (const entry of readdirSync(root)) {
    if (!entry.startsWith('xct-uml-')) continue
    try {
      rmdirSync(join(root, entry))
    } catch {
      // still in use
    }
  }
}
