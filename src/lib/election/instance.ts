import {createHash} from 'node:crypto'
import {mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import type {EtcdConnection} from '../etcd/store.js'
import {env, settings} from '../settings.js'

/**
 * What every instance one `serve` starts has in common: the cluster and etcd it leads in, the
 * node it runs as, and where its runtime files live. An instance's id is this prefix plus the
 * service and the fencing token; it is in the environment of every process of the instance
 * (XCLUSTER_INSTANCE) and of its guardian (XCLUSTER_GUARD_INSTANCE), which is how a restarted
 * serve finds what its dead predecessor left running.
 */
export interface InstanceScope {
  prefix: string
  runDir: string
  /** How etcdctl (in the guardian) reaches the same etcd as serve. */
  etcdctlEnv: Record<string, string>
}

export function instanceScope(connection: EtcdConnection, node: string, runDir: string = process.env[env.runDir] ?? settings.election.runDir): InstanceScope {
  // The endpoints tell two clusters of the same name apart (tests run several on one host).
  const etcd = createHash('sha256').update(connection.endpoints.join(',')).digest('hex').slice(0, 8)
  return {
    prefix: `${connection.cluster}@${etcd}:${node}`,
    runDir: join(runDir, node),
    etcdctlEnv: {
      ETCDCTL_API: '3',
      ETCDCTL_ENDPOINTS: connection.endpoints.join(','),
      ...(connection.ca ? {ETCDCTL_CACERT: connection.ca} : {}),
      ...(connection.cert ? {ETCDCTL_CERT: connection.cert} : {}),
      ...(connection.key ? {ETCDCTL_KEY: connection.key} : {}),
    },
  }
}

export const instanceId = (scope: InstanceScope, service: string, token: string): string => `${scope.prefix}:${service}:${token}`

/** Processes on this host that belong to an instance of `service` in this scope, and their guardians. */
export function instanceProcesses(scope: InstanceScope, service: string): {guardians: number[]; instances: number[]} {
  const marker = `${scope.prefix}:${service}:`
  const found = {guardians: [] as number[], instances: [] as number[]}
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid) || pid === process.pid) continue
    let environ: string
    try {
      environ = readFileSync(`/proc/${pid}/environ`, 'latin1')
    } catch {
      continue // gone, or not ours to read
    }
    for (const variable of environ.split('\0')) {
      if (variable.startsWith(`XCLUSTER_GUARD_INSTANCE=${marker}`)) found.guardians.push(pid)
      else if (variable.startsWith(`XCLUSTER_INSTANCE=${marker}`)) found.instances.push(pid)
      else continue
      break
    }
  }
  return found
}

/** What a kill of a dead predecessor's instances left: how many it killed, and any still alive. */
export interface InstancesKilled {
  killed: number
  /** Processes still alive (not yet zombies) when the wait ran out: stuck in the kernel. */
  lingering: number[]
}

/**
 * Kills whatever a previous serve left of `service`'s instances (guardians first, so none acts
 * on what follows, then every marked process and its process group) and returns once they are
 * all dead. SIGKILL is only queued when kill() returns: a process dies when it next runs, which
 * on a busy host (or in a frozen cgroup) may be long after, and until its files are closed it
 * still holds what the service holds (a lock, a port, a mapped image). A process whose exit has
 * begun shows no environment any more, so the wait follows the pids and groups it killed, not
 * the markers. Gives up after `timeoutMs`, naming what is still alive.
 */
export async function killInstances(scope: InstanceScope, service: string, timeoutMs: number = settings.election.instanceKillWaitMs): Promise<InstancesKilled> {
  const killed = new Set<number>()
  const groups = new Set<number>()
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const {guardians, instances} = instanceProcesses(scope, service)
    for (const pid of [...guardians, ...instances]) {
      if (signal(pid, 'SIGKILL')) killed.add(pid)
    }
    // An instance runs in a session of its own: its group holds what forked without the marker.
    for (const pid of instances) {
      const group = processStat(pid)?.pgrp
      if (group !== undefined && group > 1) groups.add(group)
    }
    for (const group of groups) signal(-group, 'SIGKILL')
    const lingering = liveProcesses(killed, groups)
    if (lingering.length === 0 && guardians.length + instances.length === 0) return {killed: killed.size, lingering}
    if (Date.now() >= deadline) return {killed: killed.size, lingering}
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig)
    return true
  } catch {
    return false // already gone
  }
}

/** A process's state letter and process group, from /proc (undefined when it is gone). */
function processStat(pid: number): {state: string; pgrp: number} | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    // The command name (in parentheses) may hold spaces: fields are counted after its end.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return {state: state as string, pgrp: Number(pgrp)}
  } catch {
    return undefined
  }
}

/** Processes not yet dead (zombies count as dead: their files are closed) among `pids` or in `groups`. */
function liveProcesses(pids: Set<number>, groups: Set<number>): number[] {
  const live: number[] = []
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    if (!pids.has(pid) && groups.size === 0) continue
    const stat = processStat(pid)
    if (stat && stat.state !== 'Z' && (pids.has(pid) || groups.has(stat.pgrp))) live.push(pid)
  }
  return live
}

/** This boot's id: a candidate record from an earlier boot cannot name a process of this one. */
export function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    return 'unknown'
  }
}

/** Whether `pid` is a live process (a zombie counts as dead). */
export function processAlive(pid: number): boolean {
  const stat = processStat(pid)
  return stat !== undefined && stat.state !== 'Z'
}

/**
 * Records the lease a campaign holds (hex, as etcdctl takes it) in the run directory, or
 * forgets it: what the serve unit's ExecStopPost (libexec/xcluster-revoke-leases) revokes
 * after a crash.
 */
export function recordLease(scope: InstanceScope, service: string, id: string | undefined): void {
  const file = join(scope.runDir, `${service}.lease`)
  try {
    if (id === undefined) {
      rmSync(file, {force: true})
      return
    }
    mkdirSync(scope.runDir, {recursive: true})
    writeFileSync(file, `${BigInt(id).toString(16)}\n`)
  } catch {
    // Only a faster failover depends on it; the lease still expires on its own.
  }
}
