import {usageError} from '../errors.js'
import {RBD_IMAGE} from './rbd.js'

/**
 * Operator input for the ceph commands, checked before anything is sent to a node: a bad value is
 * a usage error (exit 2) naming what would be accepted.
 */

/** A pool name: what RBD_IMAGE accepts for one part, not starting with a dot (Ceph's own pools, e.g. .mgr). */
export const POOL_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/

export function parsePoolName(value: string): string {
  if (!POOL_NAME.test(value)) {
    throw usageError(`Invalid pool name ${JSON.stringify(value)}.`, 'Use 1 to 128 letters, digits, "_", "-" and "." (not first), e.g. rbd or vm-disks.')
  }
  return value
}

/** Where images live: `POOL` or `POOL/NAMESPACE`. */
export function parsePoolPath(value: string): {pool: string; namespace?: string} {
  const [pool, namespace, ...rest] = value.split('/')
  if (rest.length > 0 || !POOL_NAME.test(pool!) || (namespace !== undefined && !/^[A-Za-z0-9_.-]+$/.test(namespace))) {
    throw usageError(`Invalid pool ${JSON.stringify(value)}: expected POOL or POOL/NAMESPACE.`, 'Name a pool with letters, digits, "_", "-" and ".", e.g. rbd.')
  }
  return namespace === undefined ? {pool: pool!} : {pool: pool!, namespace}
}

/** An image as `POOL/NAME` or `POOL/NAMESPACE/NAME` (RBD_IMAGE, what the spec's rbdImage takes). */
export interface ImageSpec {
  pool: string
  namespace?: string
  name: string
  /** As the rbd CLI takes it: `pool/name` or `pool/namespace/name`. */
  spec: string
}

export function parseImageSpec(value: string): ImageSpec {
  const parts = value.split('/')
  if (!RBD_IMAGE.test(value) || !POOL_NAME.test(parts[0]!)) {
    throw usageError(`Invalid image ${JSON.stringify(value)}: expected POOL/NAME (or POOL/NAMESPACE/NAME).`, 'Name the pool and the image with letters, digits, "_", "-" and ".", e.g. rbd/postgres.')
  }
  const [pool, ...rest] = parts as [string, ...string[]]
  return rest.length === 2 ? {pool, namespace: rest[0], name: rest[1]!, spec: value} : {pool, name: rest[0]!, spec: value}
}

const UNITS: Record<string, number> = {'': 0, B: 0, K: 1, M: 2, G: 3, T: 4, P: 5}
const SIZE = /^(\d+)\s*(?:([KMGTP])(?:i?B)?|(B))?$/i

/**
 * A size in bytes from `10G`, `512M`, `10GiB`, `1T` (binary units, as rbd reads them) or a plain
 * number of bytes. Zero, fractions and sizes beyond 2^53 are refused.
 */
export function parseSize(value: string, flag = '--size'): number {
  const m = SIZE.exec(value.trim())
  const power = m ? UNITS[(m[2] ?? m[3] ?? '').toUpperCase()]! : 0
  const bytes = m ? Number(m[1]) * 1024 ** power : Number.NaN
  if (!m || !Number.isSafeInteger(bytes) || bytes <= 0) {
    throw usageError(`${JSON.stringify(value)} is not a size.`, `Give a whole number of bytes or of K, M, G, T (binary units), e.g. ${flag} 10G or ${flag} 512M.`)
  }
  return bytes
}

/** Bytes as rbd's --size takes them: the largest exact binary unit (10G, 512M), else bytes (1000B). */
export function rbdSize(bytes: number): string {
  for (const [unit, power] of [
    ['T', 4],
    ['G', 3],
    ['M', 2],
    ['K', 1],
  ] as const) {
    if (bytes % 1024 ** power === 0) return `${bytes / 1024 ** power}${unit}`
  }
  return `${bytes}B`
}

/** Bytes for people: 10 GiB, 1.5 MiB. */
export function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let value = bytes
  let i = 0
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024
    i++
  }
  return `${i === 0 ? value : Number(value.toFixed(1))} ${units[i]}`
}

export const PG_AUTOSCALE_MODES = ['on', 'off', 'warn'] as const
export type PgAutoscaleMode = (typeof PG_AUTOSCALE_MODES)[number]

/** An application tag of a pool (rbd, cephfs, rgw, or one of the operator's). */
export const POOL_APPLICATION = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/

export function parseApplication(value: string): string {
  if (!POOL_APPLICATION.test(value)) throw usageError(`Invalid pool application ${JSON.stringify(value)}.`, 'Use rbd, cephfs, rgw, or a name of letters, digits, "_", "-" and ".".')
  return value
}

/** Pool replica counts Ceph accepts (1 needs mon_allow_pool_size_one, which Ceph itself checks). */
export function checkReplicas(value: number, flag: string): number {
  if (!Number.isInteger(value) || value < 1 || value > 10) throw usageError(`${flag} ${value} is not a replica count.`, `Give a whole number from 1 to 10, e.g. ${flag} 3.`)
  return value
}
