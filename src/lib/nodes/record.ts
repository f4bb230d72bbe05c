/** Node types follow from the name (s1..s3 core, s4.. storage, c* compute, f* frontend) unless given. */
export const NODE_TYPES = ['core', 'storage', 'compute', 'frontend'] as const
export type NodeType = (typeof NODE_TYPES)[number]

/**
 * The node lifecycle: `registered → provisioning → ready → draining → drained → removed`, plus
 * `failed` with a reason.
 * - `registered`: declared in the spec and stored by `config apply`; nothing done to it yet.
 * - `discovered`: an unknown MAC seen by DHCP, not (yet) in the spec.
 * `config apply` never changes the state of a node that already exists.
 */
export const NODE_STATES = ['registered', 'discovered', 'provisioning', 'ready', 'draining', 'drained', 'removed', 'failed'] as const
export type NodeState = (typeof NODE_STATES)[number]

/** One lifecycle transition, kept on the record (bounded) for `node show`. */
export interface StateChange {
  at: string
  from: NodeState
  to: NodeState
  reason?: string
  by: string
}

export interface NodeRecord {
  name: string
  type: NodeType
  mac: string
  ip?: string
  state: NodeState
  reason?: string
  createdAt: string
  updatedAt: string
  /** Recent state changes, oldest first. */
  history?: StateChange[]
}

/** The `--json` shape of `node list`. */
export interface NodeSummary {
  name: string
  type: NodeType
  mac: string
  ip: string | null
  /** For a node without a fixed IP: the address DHCP leases to its MAC now (bound, unexpired). */
  leasedIp?: string
  state: NodeState
  /** Why the node is failed, draining or drained; absent otherwise. */
  reason?: string
}

export const summarize = (n: NodeRecord): NodeSummary => ({
  name: n.name,
  type: n.type,
  mac: n.mac,
  ip: n.ip ?? null,
  state: n.state,
  ...(n.reason ? {reason: n.reason} : {}),
})

/** The value under `macs/<mac>`: which node owns the MAC (looked up by DHCP to type a node). */
export interface MacBinding {
  node: string
}
