/** Node types follow from the name (s1..s3 core, s4.. storage, c* compute, f* frontend) unless given. */
export const NODE_TYPES = ['core', 'storage', 'compute', 'frontend'] as const
export type NodeType = (typeof NODE_TYPES)[number]

export const NODE_STATES = ['discovered', 'provisioning', 'ready', 'draining', 'drained', 'removed', 'failed'] as const
export type NodeState = (typeof NODE_STATES)[number]

export interface NodeRecord {
  name: string
  type: NodeType
  mac: string
  ip?: string
  state: NodeState
  reason?: string
  createdAt: string
  updatedAt: string
}

/** The `--json` shape of `node list`. */
export interface NodeSummary {
  name: string
  type: NodeType
  mac: string
  ip: string | null
  state: NodeState
}

export const summarize = (n: NodeRecord): NodeSummary => ({name: n.name, type: n.type, mac: n.mac, ip: n.ip ?? null, state: n.state})
