import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'

import {settings} from '../settings.js'
import type {RbdMapMode} from '../spec/types.js'

/** The block device drivers `rbd device map` can map an image with. */
export type MapDeviceType = 'krbd' | 'nbd'

/** An image mapped on this host, as `rbd device list --format json` prints it. */
export interface RbdMapping {
  /** `pool/image` or `pool/namespace/image`, as the spec's rbdImage names it. */
  image: string
  device: string
  type: MapDeviceType
}

interface ListedMapping {
  pool: string
  namespace?: string
  /** krbd lists the image as `name`, rbd-nbd as `image`. */
  name?: string
  image?: string
  device: string
}

export function parseMappings(json: string, type: MapDeviceType): RbdMapping[] {
  const listed = JSON.parse(json || '[]') as ListedMapping[]
  return listed.map((m) => ({image: [m.pool, m.namespace || undefined, m.name ?? m.image].filter(Boolean).join('/'), device: m.device, type}))
}

/**
 * The `rbd` arguments that map an image for a leader. `--exclusive` makes the mapping take
 * librbd's exclusive lock at once and never hand it over on request: only a blocklist takes the
 * image from it. krbd's `noshare` gives the mapping a Ceph client of its own, so blocklisting a
 * stale mapping on this host never cuts off the new one; `noudev` where no udevd runs (a
 * container), which `rbd` would otherwise wait for.
 */
export function mapArgs(image: string, type: MapDeviceType, udev: boolean): string[] {
  return ['device', 'map', '--device-type', type, '--exclusive', ...krbdOptions(type, udev, ['noshare']), image]
}

/** `force` unmaps a device still open (a stale mapping whose client was blocklisted). */
export function unmapArgs(device: string, type: MapDeviceType, udev: boolean, force = false): string[] {
  return ['device', 'unmap', '--device-type', type, ...krbdOptions(type, udev, force ? ['force'] : []), device]
}

/** krbd's `--options`: the ones asked for, and `noudev` where no udevd runs. rbd-nbd takes none. */
function krbdOptions(type: MapDeviceType, udev: boolean, wanted: string[]): string[] {
  const options = type === 'krbd' ? [...wanted, ...(udev ? [] : ['noudev'])] : []
  return options.length > 0 ? ['--options', options.join(',')] : []
}

/** Whether a udevd runs here (the one that makes /dev/rbd/POOL/IMAGE). */
export const udevRunning = (): boolean => existsSync(settings.ceph.udevControl)

/**
 * Which driver maps the image, or null when serve leaves the image to the service (`none`).
 * `auto` takes krbd where the kernel has its rbd driver (loaded, built in, or loadable), and
 * rbd-nbd where it has not, as `rbd device map` documents for kernels without it.
 */
export async function mapDeviceType(mode: RbdMapMode = 'auto', kernelHasRbd: () => Promise<boolean> = loadKrbd): Promise<MapDeviceType | null> {
  if (mode === 'none') return null
  if (mode !== 'auto') return mode
  return (await kernelHasRbd()) ? 'krbd' : 'nbd'
}

/** True when the rbd driver is there, after asking modprobe to load it if it was not. */
async function loadKrbd(): Promise<boolean> {
  if (existsSync(settings.ceph.krbdSysfs)) return true
  await new Promise((resolve) => execFile('modprobe', ['rbd'], {timeout: settings.ceph.commandTimeoutMs}, resolve))
  return existsSync(settings.ceph.krbdSysfs)
}
