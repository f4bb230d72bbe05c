import {NODE_TYPES, type NodeType} from '../nodes/record.js'
import type {ClusterSpec} from './types.js'

/** How many nodes of each type a spec declares (every type present, zero included). */
export function countByType(spec: ClusterSpec): Record<NodeType, number> {
  const counts = Object.fromEntries(NODE_TYPES.map((t) => [t, 0])) as Record<NodeType, number>
  for (const node of spec.nodes) counts[node.type]++
  return counts
}
