import {preconditionError, usageError, type XclusterError} from '../errors.js'
import {commandLine} from '../output/command-line.js'
import {applyChange, type CephChange} from './change.js'
import type {CephCall, CephCli} from './cli.js'
import {humanSize, parseImageSpec, parsePoolPath, rbdSize, type ImageSpec} from './input.js'
import {listPools} from './pools.js'
import {rbdLockHolder, type RbdLock, type RbdLockHolder} from './rbd.js'

/**
 * The features every image gets: exclusive-lock makes librbd hold a lock for the one client that
 * writes (what the fence of an elected service builds on); object-map and fast-diff need it.
 */
export const IMAGE_FEATURES = ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'] as const

/** One image of `ceph image list`. */
export interface ImageSummary {
  pool: string
  namespace?: string
  name: string
  image: string
  sizeBytes: number
  format: number
  /** `exclusive` or `shared` when a lock is held (rbd ls -l), else absent. */
  lockType?: string
}

/** A client with the image open, from `rbd status`. */
export interface ImageWatcher {
  address: string
  /** `client.4157` */
  client: string
  cookie: string
}

/** The `--json` of `ceph image info`. */
export interface ImageInfo {
  image: string
  id: string
  sizeBytes: number
  objects: number
  objectSizeBytes: number
  format: number
  features: string[]
  createdAt: string | null
  watchers: ImageWatcher[]
  locks: RbdLockHolder[]
}

/** The `--json` of image create, resize and rm. */
export interface ImageChange extends CephChange {
  image: string
  /** Resize: the size before and after (bytes). */
  fromBytes?: number
  toBytes?: number
}

const pathOf = (pool: string, namespace?: string): string => (namespace ? `${pool}/${namespace}` : pool)

/** `rbd ... --format json` about one image, where an absent image is a precise error. */
function imageRead<T>(cli: CephCli, call: CephCall, image: string): Promise<T> {
  return cli.json<T>(call, (output) => (/\(2\) No such file or directory/.test(output) ? imageNotFound(image) : undefined))
}

export function imageNotFound(image: string): XclusterError {
  const pool = image.split('/').slice(0, -1).join('/')
  return preconditionError('CEPH_IMAGE_NOT_FOUND', `No image ${image}; nothing was changed.`, `See the images of the pool: ${commandLine(['ceph', 'image', 'list', pool])}`, {image})
}

async function requirePool(cli: CephCli, spec: {pool: string}, forCreate: boolean): Promise<void> {
  if ((await listPools(cli)).some((p) => p.name === spec.pool)) return
  throw preconditionError(
    'CEPH_POOL_NOT_FOUND',
    `No pool named ${spec.pool}; nothing was changed.`,
    forCreate ? `Create it first: ${commandLine(['ceph', 'pool', 'create', spec.pool, '--application', 'rbd'])}` : `See the pools: ${commandLine(['ceph', 'pool', 'list'])}`,
    {pool: spec.pool},
  )
}

interface LsEntry {
  image: string
  size: number
  format: number
  lock_type?: string
}

/** The images of one pool (POOL or POOL/NAMESPACE), or of every pool tagged rbd when none is given. */
export async function listImages(cli: CephCli, where?: string): Promise<ImageSummary[]> {
  const targets: {pool: string; namespace?: string}[] = []
  if (where === undefined) {
    for (const p of await listPools(cli)) if (p.applications.includes('rbd')) targets.push({pool: p.name})
  } else {
    const path = parsePoolPath(where)
    await requirePool(cli, path, false)
    targets.push(path)
  }
  const images: ImageSummary[] = []
  for (const t of targets) {
    const entries = (await cli.json<LsEntry[] | null>({tool: 'rbd', args: ['ls', '-l', pathOf(t.pool, t.namespace)]})) ?? []
    for (const e of entries) {
      images.push({
        pool: t.pool,
        ...(t.namespace ? {namespace: t.namespace} : {}),
        name: e.image,
        image: `${pathOf(t.pool, t.namespace)}/${e.image}`,
        sizeBytes: e.size,
        format: e.format,
        ...(e.lock_type ? {lockType: e.lock_type} : {}),
      })
    }
  }
  return images
}

interface InfoJson {
  id?: string
  size: number
  objects?: number
  object_size?: number
  format?: number
  features?: string[]
  create_timestamp?: string
}

interface StatusJson {
  watchers?: {address: string; client: number | string; cookie: number | string}[]
}

export const parseWatchers = (raw: StatusJson | null): ImageWatcher[] =>
  (raw?.watchers ?? []).map((w) => ({address: w.address, client: typeof w.client === 'number' ? `client.${w.client}` : String(w.client), cookie: String(w.cookie)}))

/** rbd's lock list: Pacific prints a list, older releases an object keyed by lock id. */
export function parseLocks(raw: RbdLock[] | Record<string, {locker: string; address: string}> | null): RbdLock[] {
  if (!raw) return []
  return Array.isArray(raw) ? raw.map((l) => ({id: l.id, locker: l.locker, address: l.address})) : Object.entries(raw).map(([id, l]) => ({id, locker: l.locker, address: l.address}))
}

export async function imageLocks(cli: CephCli, image: string): Promise<RbdLockHolder[]> {
  const spec = parseImageSpec(image)
  return parseLocks(await imageRead(cli, {tool: 'rbd', args: ['lock', 'ls', spec.spec]}, spec.spec)).map(rbdLockHolder)
}

/** Size, features, who has it open (watchers) and who holds its locks. */
export async function imageInfo(cli: CephCli, image: string): Promise<ImageInfo> {
  const spec = parseImageSpec(image)
  const info = await imageRead<InfoJson>(cli, {tool: 'rbd', args: ['info', spec.spec]}, spec.spec)
  const watchers = parseWatchers(await cli.json<StatusJson>({tool: 'rbd', args: ['status', spec.spec]}))
  const locks = parseLocks(await cli.json<RbdLock[]>({tool: 'rbd', args: ['lock', 'ls', spec.spec]})).map(rbdLockHolder)
  return {
    image: spec.spec,
    id: info.id ?? '',
    sizeBytes: info.size,
    objects: info.objects ?? 0,
    objectSizeBytes: info.object_size ?? 0,
    format: info.format ?? 2,
    features: info.features ?? [],
    createdAt: info.create_timestamp ?? null,
    watchers,
    locks,
  }
}

async function existingNames(cli: CephCli, spec: ImageSpec): Promise<string[]> {
  return (await cli.json<string[] | null>({tool: 'rbd', args: ['ls', pathOf(spec.pool, spec.namespace)]})) ?? []
}

/** Creates an image with IMAGE_FEATURES. Refused, with nothing changed: no such pool, a name taken. */
export async function createImage(cli: CephCli, image: string, sizeBytes: number, dryRun: boolean): Promise<ImageChange> {
  const spec = parseImageSpec(image)
  await requirePool(cli, spec, true)
  if ((await existingNames(cli, spec)).includes(spec.name)) {
    throw preconditionError(
      'CEPH_IMAGE_EXISTS',
      `An image named ${spec.spec} exists already; nothing was changed.`,
      `Pick another name, or see it: ${commandLine(['ceph', 'image', 'info', spec.spec])}`,
      {image: spec.spec},
    )
  }
  const call: CephCall = {tool: 'rbd', args: ['create', '--size', rbdSize(sizeBytes), '--image-feature', IMAGE_FEATURES.join(','), spec.spec]}
  return {image: spec.spec, toBytes: sizeBytes, ...(await applyChange(cli, [call], dryRun))}
}

/** A resize decided: what it runs, and whether it shrinks (destroys what lies beyond the new end). */
export interface ImageResizePlan {
  image: string
  fromBytes: number
  toBytes: number
  shrink: boolean
  calls: CephCall[]
}

export async function planImageResize(cli: CephCli, image: string, sizeBytes: number, allowShrink: boolean): Promise<ImageResizePlan> {
  const spec = parseImageSpec(image)
  const info = await imageRead<InfoJson>(cli, {tool: 'rbd', args: ['info', spec.spec]}, spec.spec)
  const shrink = sizeBytes < info.size
  if (shrink && !allowShrink) {
    throw usageError(
      `${spec.spec} is ${humanSize(info.size)}: ${humanSize(sizeBytes)} would shrink it, which destroys the data beyond the new end; nothing was changed.`,
      `If that is meant (the filesystem on it shrunk first): ${commandLine(['ceph', 'image', 'resize', spec.spec, '--size', rbdSize(sizeBytes), '--allow-shrink'])}`,
      {image: spec.spec, fromBytes: info.size, toBytes: sizeBytes},
    )
  }
  const calls: CephCall[] = sizeBytes === info.size ? [] : [{tool: 'rbd', args: ['resize', '--no-progress', '--size', rbdSize(sizeBytes), ...(shrink ? ['--allow-shrink'] : []), spec.spec]}]
  return {image: spec.spec, fromBytes: info.size, toBytes: sizeBytes, shrink, calls}
}

export async function resizeImage(cli: CephCli, plan: ImageResizePlan, dryRun: boolean): Promise<ImageChange> {
  return {image: plan.image, fromBytes: plan.fromBytes, toBytes: plan.toBytes, ...(await applyChange(cli, plan.calls, dryRun))}
}

/** A removal decided: refused while a client has the image open or holds a lock on it. */
export interface ImageRemovePlan {
  image: string
  sizeBytes: number
  calls: CephCall[]
}

export async function planImageRemove(cli: CephCli, image: string): Promise<ImageRemovePlan> {
  const info = await imageInfo(cli, image)
  if (info.watchers.length > 0 || info.locks.length > 0) {
    const who = [
      ...info.watchers.map((w) => `open by ${w.client} at ${w.address}`),
      ...info.locks.map((l) => `locked by ${l.lock.locker} at ${l.lock.address} (lock "${l.lock.id}"${l.node ? `: ${l.node}, fencing token ${l.token}` : ''})`),
    ]
    throw preconditionError(
      'CEPH_IMAGE_IN_USE',
      `${info.image} is in use: ${who.join('; ')}. Nothing was changed.`,
      `Stop or unmap it where it is used (or remove a stale lock with rbd lock rm), then run this again; see who holds it: ${commandLine(['ceph', 'image', 'info', info.image])}`,
      {image: info.image, watchers: info.watchers, locks: info.locks},
    )
  }
  return {image: info.image, sizeBytes: info.sizeBytes, calls: [{tool: 'rbd', args: ['rm', '--no-progress', info.image]}]}
}

export async function removeImage(cli: CephCli, plan: ImageRemovePlan, dryRun: boolean): Promise<ImageChange> {
  return {image: plan.image, fromBytes: plan.sizeBytes, ...(await applyChange(cli, plan.calls, dryRun))}
}
