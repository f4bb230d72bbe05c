import {NODE_TYPES, type NodeType} from '../nodes/record.js'

/** How many core nodes etcd's quorum accepts: an odd number, small enough for fast consensus. */
export const CORE_COUNTS = [3, 5] as const

/** The naming convention, written for operators (used in error messages and the example spec). */
export const TYPE_FROM_NAME_RULES = 's1..s3 are core, s4 and up are storage, c* is compute, f* is frontend'

/**
 * The type a node gets from its name when the spec gives none: `s1`..`s3` core, `s<n>` with
 * n >= 4 storage, `c*` compute, `f*` frontend. Undefined when the name follows no rule.
 */
export function typeFromName(name: string): NodeType | undefined {
  const storage = /^s([1-9][0-9]*)$/.exec(name)
  if (storage) return Number(storage[1]) <= 3 ? 'core' : 'storage'
  if (name.startsWith('c')) return 'compute'
  if (name.startsWith('f')) return 'frontend'
  return undefined
}

export const isNodeType = (value: unknown): value is NodeType => NODE_TYPES.includes(value as NodeType)
