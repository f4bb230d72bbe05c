import {execFile, type ExecFileException} from 'node:child_process'

import {env, settings} from '../settings.js'
import {mapArgs, type MapDeviceType, parseMappings, type RbdMapping, unmapArgs, udevRunning} from './rbd-map.js'

/** One advisory lock on an RBD image, as `rbd lock ls` prints it. */
export interface RbdLock {
  id: string
  /** The Ceph client that took it, e.g. `client.4157`. */
  locker: string
  address: string
}

/** A client that has the image open, as `rbd status` prints it (a mapping, a librbd process). */
export interface RbdWatcher {
  address: string
}

/** Who holds a lock taken by an election daemon: the lock id carries the node and its token. */
export interface RbdLockHolder {
  node: string | null
  token: string | null
  lock: RbdLock
}

const LOCK_ID = /^xcluster:([a-z0-9-]+):(\d+)$/

/** librbd's own exclusive lock (a mapping's, a librbd writer's): its id is `auto <handle>`. */
export const isManagedLock = (lock: RbdLock): boolean => lock.id.startsWith('auto ')

/** The advisory lock id older releases took as leader: still read, so such a lock is fenced like any. */
export const rbdLockId = (node: string, token: string): string => `xcluster:${node}:${token}`

export function rbdLockHolder(lock: RbdLock): RbdLockHolder {
  const m = LOCK_ID.exec(lock.id)
  return {node: m?.[1] ?? null, token: m?.[2] ?? null, lock}
}

/** `pool/image` (the pool may carry a namespace: `pool/ns/image`). */
export const RBD_IMAGE = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+){1,2}$/

/**
 * The `rbd` CLI of this host (MicroCeph's or Debian's), with the cluster from its usual config
 * (CEPH_CONF or /etc/ceph/ceph.conf). Every call is bounded, so a Ceph that does not answer
 * fails a start or a check instead of hanging it.
 */
export class RbdCli {
  constructor(
    private readonly bin: string = process.env[env.rbd] || settings.ceph.rbd,
    private readonly timeoutMs: number = cephCommandTimeoutMs(),
    private readonly cephBin: string = process.env[env.ceph] || settings.ceph.ceph,
  ) {}

  /** The clients that have the image open (each one's watch on the image header). */
  async watchers(image: string): Promise<RbdWatcher[]> {
    const out = await this.call(['status', image, '--format', 'json'])
    const parsed = JSON.parse(out || '{}') as {watchers?: {address: string}[]}
    return (parsed.watchers ?? []).map((w) => ({address: w.address}))
  }

  /**
   * Blocklists a client (Pacific's `ceph osd blocklist add`): the OSDs refuse its every operation
   * from then on, so a client that is paused, not dead, cannot write once it wakes.
   */
  async blocklist(address: string, seconds: number): Promise<void> {
    await this.call(['osd', 'blocklist', 'add', address, String(seconds)], this.cephBin)
  }

  async locks(image: string): Promise<RbdLock[]> {
    const out = await this.call(['lock', 'ls', image, '--format', 'json'])
    const parsed = JSON.parse(out || '[]') as RbdLock[] | Record<string, {locker: string; address: string}>
    // Pacific prints a list; older releases printed an object keyed by lock id.
    return Array.isArray(parsed) ? parsed : Object.entries(parsed).map(([id, l]) => ({id, locker: l.locker, address: l.address}))
  }

  async add(image: string, id: string): Promise<void> {
    await this.call(['lock', 'add', image, id])
  }

  async remove(image: string, lock: RbdLock): Promise<void> {
    await this.call(['lock', 'rm', image, lock.id, lock.locker])
  }

  /** Maps the image with its exclusive lock held by the mapping (see mapArgs); the device's path. */
  async map(image: string, type: MapDeviceType): Promise<string> {
    return (await this.call(mapArgs(image, type, udevRunning()))).trim()
  }

  async unmap(mapping: RbdMapping, force = false): Promise<void> {
    await this.call(unmapArgs(mapping.device, mapping.type, udevRunning(), force))
  }

  /** The images this host has mapped with the given driver. */
  async mappings(type: MapDeviceType): Promise<RbdMapping[]> {
    return parseMappings(await this.call(['device', 'list', '--device-type', type, '--format', 'json']), type)
  }

  /**
   * The bound is kept by its own timer, not by the call's exit: a call stuck in the kernel (an
   * unmap waiting on I/O a blocklisted client can never finish) does not die of its SIGKILL, and
   * waiting for its exit would hang the start or check that made it.
   */
  private call(args: string[], bin: string = this.bin): Promise<string> {
    const what = `${bin} ${args.join(' ')}`
    return new Promise((resolve, reject) => {
      const child = execFile(bin, args, {encoding: 'utf8'}, (err, stdout, stderr) => {
        clearTimeout(bound)
        // The cause keeps the spawn error's code: ENOENT means there is no rbd CLI on this host.
        if (err) reject(new Error(`${what}: ${callFailure(err, stderr)}`, {cause: err}))
        else resolve(stdout)
      })
      const bound = setTimeout(() => {
        child.kill('SIGKILL')
        // Let go of it: its pipes, and its exit, no longer hold this process.
        for (const stream of [child.stdin, child.stdout, child.stderr]) stream?.destroy()
        child.unref()
        reject(new CephCallTimeout(`${what}: no answer within ${this.timeoutMs} ms (killed; raise ${env.cephTimeoutMs} on a slow cluster)`))
      }, this.timeoutMs)
    })
  }
}

/** A Ceph CLI call that got no answer within its bound (and may live on, stuck in the kernel). */
export class CephCallTimeout extends Error {}

/** Why a Ceph CLI call failed: its last line of stderr, or the error itself. */
function callFailure(err: ExecFileException, stderr: string): string {
  return (stderr || err.message).trim().split('\n').pop() ?? ''
}

/** The bound on each rbd/ceph call: settings.ceph.commandTimeoutMs, or env XCLUSTER_CEPH_TIMEOUT_MS. */
export function cephCommandTimeoutMs(value: string | undefined = process.env[env.cephTimeoutMs]): number {
  if (value === undefined || value === '') return settings.ceph.commandTimeoutMs
  const ms = Number(value)
  if (!Number.isInteger(ms) || ms <= 0)
    throw new Error(`${env.cephTimeoutMs}=${value} is not a whole number of milliseconds above 0: set it like ${env.cephTimeoutMs}=30000, or unset it for ${settings.ceph.commandTimeoutMs}`)
  return ms
}

/** What a new leader did to take an image over: recorded in etcd under its token (RbdFenceRecord). */
export interface RbdFence {
  image: string
  node: string
  token: string
  /** Client addresses blocklisted: every other lock owner and watcher of the image. */
  blocklisted: string[]
  /** Locks broken after their owners were blocklisted. */
  brokenLocks: RbdLock[]
  at: string
}

/**
 * Fences an image before a new leadership starts its service on it. Breaking a lock alone stops
 * nobody: its owner (a paused leader's mapping) keeps writing when it wakes. So every client that
 * holds or has the image open is blocklisted first (the OSDs then refuse its writes), and only
 * then are the locks broken, so the service's own client can take the exclusive lock.
 * Clients of this very leadership (its own advisory lock) are left alone; a lock of a newer
 * leadership means this one is stale: nothing is touched and the start fails.
 * `stillLeads` is asked again before each blocklist: a leadership paused after its claim may
 * wake up replaced, with its list holding its successor's client.
 */
export async function fenceRbdImage(
  rbd: RbdCli,
  image: string,
  node: string,
  token: string,
  stillLeads: () => Promise<boolean> = async () => true,
  blocklistSeconds: number = settings.ceph.blocklistSeconds,
): Promise<RbdFence> {
  const locks = await rbd.locks(image)
  const own = new Set<string>()
  const others: RbdLock[] = []
  for (const lock of locks) {
    const holder = rbdLockHolder(lock)
    if (holder.token !== null && BigInt(holder.token) > BigInt(token)) throw new Error(`${image} is locked by a newer leadership (${holder.node}, token ${holder.token})`)
    if (holder.token === token && holder.node === node) own.add(lock.address)
    else others.push(lock)
  }
  const addresses = [...new Set([...others.map((l) => l.address), ...(await rbd.watchers(image)).map((w) => w.address)])].filter((a) => !own.has(a))
  for (const address of addresses) {
    if (!(await stillLeads())) throw new Error(`token ${token} no longer leads: ${image} was not fenced (${address} left alone)`)
    await rbd.blocklist(address, blocklistSeconds)
  }
  for (const lock of others) await rbd.remove(image, lock)
  return {image, node, token, blocklisted: addresses, brokenLocks: others, at: new Date().toISOString()}
}

/** The client holding the image's exclusive lock now (the service's own, once it started), if any. */
export async function managedLockHolder(rbd: RbdCli, image: string): Promise<RbdLock | undefined> {
  return (await rbd.locks(image)).find(isManagedLock)
}

/**
 * Reads lock holders with this host's rbd CLI. Null (not checked) where there is no rbd CLI: the
 * check then says so instead of reporting a missing lock.
 */
export function localRbdHolders(rbd: RbdCli = new RbdCli()): (image: string) => Promise<RbdLockHolder[] | null> {
  return async (image) => {
    try {
      return (await rbd.locks(image)).map(rbdLockHolder)
    } catch (err) {
      if (((err as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return null
      throw err
    }
  }
}
