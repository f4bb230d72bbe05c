import {preconditionError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {readClusterView} from '../spec/view.js'
import type {NodeRecord} from './record.js'

/**
 * Reads node records as every reader must see them: with the current spec's nodes overlaid while
 * an apply's fold is unfinished (src/lib/spec/view.ts). One read each, however many nodes.
 */
export class NodeRegistry {
  constructor(private readonly store: EtcdStore) {}

  async list(): Promise<NodeRecord[]> {
    return (await readClusterView(this.store, {spec: 'while-folding', nodes: 'all'})).nodes
  }

  async get(name: string): Promise<NodeRecord | undefined> {
    return (await readClusterView(this.store, {spec: 'while-folding', nodes: {name}})).nodes[0]
  }

  /** The node's record; NODE_NOT_FOUND (exit 3) when etcd has none by that name. */
  async require(name: string): Promise<NodeRecord> {
    // A name the key schema cannot hold (e.g. upper case) cannot be a node: not found, not a crash.
    const node = /^[a-z0-9][a-z0-9._-]*$/.test(name) ? await this.get(name) : undefined
    if (!node) {
      throw preconditionError('NODE_NOT_FOUND', `No node named "${name}" in cluster "${this.store.keys.cluster}".`, 'List the known nodes with: xcluster node list')
    }
    return node
  }
}
