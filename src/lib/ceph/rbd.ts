import {execFile} from 'node:child_process'

import {env, settings} from '../settings.js'

/** One advisory lock on an RBD image, as `rbd lock ls` prints it. */
export interface RbdLock {
  id: string
  /** The Ceph client that took it, e.g. `client.4157`. */
  locker: string
  address: string
}

/** Who holds a lock taken by an election daemon: the lock id carries the node and its token. */
export interface RbdLockHolder {
  node: string | null
  token: string | null
  lock: RbdLock
}

const LOCK_ID = /^xcluster:([a-z0-9-]+):(\d+)$/

/** The lock id a leader takes: newer tokens may break older ones (see ServiceRunner). */
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
    private readonly timeoutMs: number = settings.ceph.commandTimeoutMs,
  ) {}

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

  private call(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(this.bin, args, {timeout: this.timeoutMs, encoding: 'utf8'}, (err, stdout, stderr) => {
        // The cause keeps the spawn error's code: ENOENT means there is no rbd CLI on this host.
        if (err) reject(new Error(`${this.bin} ${args.join(' ')}: ${(stderr || err.message).trim().split('\n').pop()}`, {cause: err}))
        else resolve(stdout)
      })
    })
  }
}

/**
 * Takes the image's lock for this leadership. A lock of an older leadership is broken: its token
 * proves that leadership ended (it stopped before its lease could expire). A lock of a newer
 * leadership, or one not taken by xcluster, is left alone and the start fails.
 */
export async function takeRbdLock(rbd: RbdCli, image: string, node: string, token: string): Promise<void> {
  const mine = rbdLockId(node, token)
  for (const lock of await rbd.locks(image)) {
    if (lock.id === mine) return
    const holder = rbdLockHolder(lock)
    if (holder.token === null)
      throw new Error(`${image} is locked by ${lock.locker} (${lock.address}) with lock "${lock.id}", which xcluster did not take; remove it with rbd lock rm if that client is gone`)
    if (BigInt(holder.token) > BigInt(token)) throw new Error(`${image} is locked by a newer leadership (${holder.node}, token ${holder.token})`)
    await rbd.remove(image, lock)
  }
  await rbd.add(image, mine)
}

/** Releases this leadership's lock if it still holds it (a newer leader may have broken it). */
export async function releaseRbdLock(rbd: RbdCli, image: string, node: string, token: string): Promise<void> {
  const mine = rbdLockId(node, token)
  for (const lock of await rbd.locks(image)) if (lock.id === mine) await rbd.remove(image, lock)
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
