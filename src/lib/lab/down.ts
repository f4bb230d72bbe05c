import {existsSync, readdirSync, readFileSync, rmSync, rmdirSync} from 'node:fs'
import {join} from 'node:path'

import {settings} from '../settings.js'
import {deleteNamespace, labNamespaces, namespacePids} from './network.js'
import {labDir, labPaths} from './paths.js'
import {purgeRootfsCache} from './rootfs.js'
import {childPids, livePid} from './state.js'
import {run, sleep, waitFor} from './system.js'

export interface LabDownResult {
  dir: string
  stoppedNodes: string[]
  namespaces: string[]
  purgedCache: boolean
}

const alive = (pid: number) => existsSync(`/proc/${pid}`)
const signal = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

/** A pid from our pid file, only if that process still runs one of our lab commands (no pid reuse accidents). */
function ourPid(pidFile: string, dir: string): number | undefined {
  const pid = livePid(pidFile)
  if (pid === undefined) return undefined
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir) ? pid : undefined
  } catch {
    return undefined
  }
}

/** Every pid in a cgroup subtree. */
function cgroupPids(dir: string): number[] {
  if (!existsSync(dir)) return []
  const pids: number[] = []
  const walk = (d: string) => {
    try {
      pids.push(...readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number))
      for (const e of readdirSync(d, {withFileTypes: true})) if (e.isDirectory()) walk(join(d, e.name))
    } catch {
      // removed while walking
    }
  }
  walk(dir)
  return pids
}

function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return
  for (const e of readdirSync(dir, {withFileTypes: true})) if (e.isDirectory()) removeCgroup(join(dir, e.name))
  try {
    rmdirSync(dir)
  } catch {
    // still populated: reported by the next `lab up`'s cleanup
  }
}

const labCgroups = (): string[] =>
  ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'].flatMap((root) =>
    existsSync(root)
      ? readdirSync(root)
          .filter((n) => n.startsWith('xc-'))
          .map((n) => join(root, n))
      : [],
  )

/** What `lab down --dry-run` reports: what a real `lab down` would stop and remove. */
export interface LabDownPlan {
  dryRun: true
  dir: string
  nodes: string[]
  daemons: number[]
  namespaces: string[]
  cgroups: string[]
  mounts: string[]
  purgesCache: boolean
}

/** `lab down --dry-run`: reads pid files, namespaces, cgroups and mounts; signals and removes nothing. */
export async function planLabDown(options: {dir?: string; purge?: boolean} = {}): Promise<LabDownPlan> {
  const dir = options.dir ?? labDir()
  const runDir = labPaths(dir).run
  const pidFiles = existsSync(runDir) ? readdirSync(runDir) : []
  const nodes = pidFiles.filter((f) => f.startsWith('nspawn-') && livePid(join(runDir, f))).map((f) => f.slice('nspawn-'.length, -'.pid'.length))
  const daemons = pidFiles.filter((f) => !f.startsWith('boot-') && !f.startsWith('nspawn-')).flatMap((f) => ourPid(join(runDir, f), dir) ?? [])
  return {
    dryRun: true,
    dir,
    nodes: nodes.sort(),
    daemons,
    namespaces: await labNamespaces(),
    cgroups: labCgroups(),
    mounts: labMounts(dir),
    purgesCache: Boolean(options.purge),
  }
}

/** Mounts under the state dir (node overlays), deepest first. */
function labMounts(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1]?.replaceAll('\\040', ' '))
    .filter((m): m is string => Boolean(m) && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length)
}

/**
 * Removes everything a lab made, in reverse order of creation, whether it came up fully,
 * crashed half-way or is already gone: containers, daemons, mounts, cgroups, namespaces, files.
 */
export async function labDown(options: {dir?: string; purge?: boolean} = {}): Promise<LabDownResult> {
  const dir = options.dir ?? labDir()
  const paths = labPaths(dir)
  const runDir = paths.run
  const pidFiles = existsSync(runDir) ? readdirSync(runDir) : []

  // 1. Containers: stop the reboot loops first, then ask each nspawn to halt its guest.
  const stoppedNodes: string[] = []
  for (const f of pidFiles.filter((f) => f.startsWith('boot-'))) {
    const pid = ourPid(join(runDir, f), dir)
    if (pid) signal(pid, 'SIGKILL')
  }
  const nspawns = pidFiles
    .filter((f) => f.startsWith('nspawn-'))
    .flatMap((f) => {
      const pid = livePid(join(runDir, f))
      return pid ? [{node: f.slice('nspawn-'.length, -'.pid'.length), pid}] : []
    })
  for (const {node, pid} of nspawns) {
    stoppedNodes.push(node)
    signal(pid, 'SIGTERM')
  }

  // 2. Admin-side daemons, each in its own process group, stopping while the guests halt.
  const daemons = pidFiles
    .filter((f) => !f.startsWith('boot-') && !f.startsWith('nspawn-'))
    .flatMap((f) => {
      const pid = ourPid(join(runDir, f), dir)
      return pid ? [pid] : []
    })
  for (const pid of daemons) signal(-pid, 'SIGTERM')
  await Promise.all([
    waitFor(async () => nspawns.every(({pid}) => !alive(pid)), settings.lab.nodeStopTimeoutMs, 100),
    // Squid takes ~4 s to close its cache cleanly; SIGKILL after that only costs a cache rebuild.
    waitFor(async () => daemons.every((pid) => !alive(pid)), settings.lab.daemonStopTimeoutMs, 100),
  ])

  // 3. Anything left: whatever lives in our cgroups or namespaces gets SIGKILL.
  const namespaces = await labNamespaces()
  for (let round = 0; round < 5; round++) {
    const leftovers = [...daemons.filter(alive), ...labCgroups().flatMap(cgroupPids), ...(await Promise.all(namespaces.map(namespacePids))).flat()]
    const strays = leftovers.flatMap((pid) => [pid, ...childPids(pid)]).filter((pid) => pid !== process.pid)
    if (strays.length === 0) break
    for (const pid of strays) signal(pid, 'SIGKILL')
    await sleep(100)
  }
  for (const cg of labCgroups()) removeCgroup(cg)

  // 4. Mounts under the state dir (node overlays), deepest first.
  for (const m of labMounts(dir)) {
    if ((await run('umount', [m])).code !== 0) await run('umount', ['-l', m])
  }

  // 5. Namespaces, then files.
  for (const ns of namespaces) await deleteNamespace(ns)
  rmSync(dir, {recursive: true, force: true})
  if (options.purge) purgeRootfsCache()
  return {dir, stoppedNodes: stoppedNodes.sort(), namespaces, purgedCache: Boolean(options.purge)}
}

/** Is there anything of a lab on this machine (state dir, namespaces, cgroups)? */
export async function labExists(dir = labDir()): Promise<boolean> {
  return existsSync(dir) || (await labNamespaces()).length > 0 || labCgroups().length > 0
}
