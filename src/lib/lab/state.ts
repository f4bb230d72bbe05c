import {existsSync, readFileSync, readdirSync, writeFileSync} from 'node:fs'

import {ExitStatus, XclusterError} from '../errors.js'
import type {NodeType} from '../nodes/record.js'
import {labDir, labPaths} from './paths.js'

export interface LabHost {
  name: string
  kind: 'admin' | 'node'
  netns: string
  mac: string
  ip?: string
  type?: NodeType
  /** SHA256:... as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint?: string
  /** The host key's public line, e.g. `ssh-ed25519 AAAA...`. */
  hostPublicKey?: string
  /** The container's PID 1 in the root PID namespace (read live: a guest reboot changes it). */
  pid?: number
}

export interface LabState {
  dir: string
  cluster: string
  specFile: string
  sshKey: string
  sshUser: string
  etcdEndpoint: string
  adminIp: string
  /** The nodes' apt proxy (the spec's packages.proxy; DIRECT for none). */
  proxyUrl: string
  /** The lab's way out, bridged into xc-admin: the upstream of the admin host's cache. */
  upstreamProxyUrl?: string
  hosts: LabHost[]
  /** The shared lower layer the node overlays sit on. */
  rootfs?: string
  /** Squid's loopback port in the root namespace. */
  squidPort?: number
  createdAt?: string
}

export const labNotUp = (dir: string, why = `no lab state in ${dir}`): XclusterError =>
  new XclusterError(`The lab is not up (${why}).`, {code: 'LAB_NOT_UP', exit: ExitStatus.precondition, suggestion: 'Run: sudo xcluster lab up'})

/** Reads $LAB/state.json (written last by `lab up`); the nodes' PID 1 is looked up live. */
export function readLabState(dir: string = labDir()): LabState {
  const paths = labPaths(dir)
  if (!existsSync(paths.state)) throw labNotUp(dir)
  const state = JSON.parse(readFileSync(paths.state, 'utf8')) as LabState
  for (const host of state.hosts) {
    if (host.kind === 'node') {
      const pid = containerInitPid(dir, host.name)
      if (pid === undefined) delete host.pid
      else host.pid = pid
    }
  }
  return state
}

export function writeLabState(state: LabState): void {
  writeFileSync(labPaths(state.dir).state, JSON.stringify(state, null, 2) + '\n')
}

export function findHost(state: LabState, name: string): LabHost {
  const host = state.hosts.find((h) => h.name === name)
  if (!host) {
    throw new XclusterError(`The lab has no host named ${name}.`, {
      code: 'LAB_UNKNOWN_HOST',
      exit: ExitStatus.usage,
      suggestion: `Use one of: ${state.hosts.map((h) => h.name).join(', ')}`,
    })
  }
  return host
}

/** A live process's pid from a pid file, or undefined when the file or the process is gone. */
export function livePid(pidFile: string): number | undefined {
  if (!existsSync(pidFile)) return undefined
  const pid = Number(readFileSync(pidFile, 'utf8').trim())
  return Number.isInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`) ? pid : undefined
}

/** The container's init: the child of its systemd-nspawn process (whose pid the boot loop records). */
export function containerInitPid(dir: string, node: string): number | undefined {
  const nspawn = livePid(labPaths(dir).pidFile(`nspawn-${node}`))
  if (nspawn === undefined) return undefined
  return childPids(nspawn)[0]
}

export function childPids(parent: number): number[] {
  const children: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // The command name may hold spaces and parentheses: the ppid follows the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === parent) children.push(Number(entry))
    } catch {
      // the process exited while we looked
    }
  }
  return children.sort((a, b) => a - b)
}
