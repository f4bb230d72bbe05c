/**
 * Which nodes a command works on, from one comma-separated string (`--nodes`):
 * - `NAME` picks that node;
 * - `type=T` and `state=S` pick every node of that type / in that state. Values given for one
 *   key are alternatives, different keys must all match: `type=core,type=storage,state=ready`
 *   is the ready core and storage nodes.
 * A node is selected when a name picks it or, when any `key=value` is given, it matches them all.
 * Removed nodes are never selected.
 */
import {ExitStatus, XclusterError, usageError} from '../errors.js'
import {NODE_STATES, NODE_TYPES, type NodeRecord, type NodeState, type NodeType} from './record.js'

export interface NodeSelector {
  /** As given, for messages. */
  text: string
  names: string[]
  types: NodeType[]
  states: NodeState[]
}

const NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i

export function parseNodeSelector(text: string): NodeSelector {
  const selector: NodeSelector = {text, names: [], types: [], states: []}
  const terms = text.split(',').map((t) => t.trim())
  const refuse = (why: string) =>
    usageError(`--nodes ${JSON.stringify(text)}: ${why}.`, 'Give node names and type=T / state=S terms, comma-separated, e.g. --nodes s1,s2 or --nodes type=core,state=ready')
  if (terms.some((t) => t === '')) throw refuse('an empty term')
  for (const term of terms) {
    const [key, value, ...rest] = term.split('=')
    if (value === undefined) {
      if (!NAME.test(term)) throw refuse(`"${term}" is not a node name`)
      selector.names.push(term)
    } else if (rest.length > 0 || value === '') {
      throw refuse(`"${term}" is not KEY=VALUE`)
    } else if (key === 'type') {
      if (!(NODE_TYPES as readonly string[]).includes(value)) throw refuse(`unknown type "${value}" (types: ${NODE_TYPES.join(', ')})`)
      selector.types.push(value as NodeType)
    } else if (key === 'state') {
      if (!(NODE_STATES as readonly string[]).includes(value)) throw refuse(`unknown state "${value}" (states: ${NODE_STATES.join(', ')})`)
      selector.states.push(value as NodeState)
    } else {
      throw refuse(`unknown key "${key}" (keys: type, state)`)
    }
  }
  return selector
}

/**
 * The nodes the selector picks, in `nodes`' order. A name that is no node is refused
 * (NODE_NOT_FOUND), as is a selector that picks nothing.
 */
export function selectNodes(selector: NodeSelector, nodes: readonly NodeRecord[]): NodeRecord[] {
  const present = nodes.filter((n) => n.state !== 'removed')
  const unknown = selector.names.filter((name) => !present.some((n) => n.name === name))
  if (unknown.length > 0) {
    throw new XclusterError(`Unknown node${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}.`, {
      code: 'NODE_NOT_FOUND',
      exit: ExitStatus.precondition,
      suggestion: 'List the known nodes with: xcluster node list',
    })
  }
  const filtered = selector.types.length > 0 || selector.states.length > 0
  const matches = (n: NodeRecord) => filtered && (selector.types.length === 0 || selector.types.includes(n.type)) && (selector.states.length === 0 || selector.states.includes(n.state))
  const picked = present.filter((n) => selector.names.includes(n.name) || matches(n))
  if (picked.length === 0) {
    throw new XclusterError(`--nodes ${JSON.stringify(selector.text)} selects no node.`, {
      code: 'NO_NODES_SELECTED',
      exit: ExitStatus.precondition,
      suggestion: 'See the nodes, their types and states with: xcluster node list',
    })
  }
  return picked
}
