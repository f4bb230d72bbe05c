import {preconditionError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import type {NodeRecord} from './record.js'

/** Reads node records from etcd. */
export class NodeRegistry {
  constructor(private readonly store: EtcdStore) {}

  async list(): Promise<NodeRecord[]> {
    const rows = await this.store.listJson<NodeRecord>(this.store.keys.nodesPrefix())
    return rows.map((r) => r.value)
  }

  async get(name: string): Promise<NodeRecord | undefined> {
    return (await this.store.getJson<NodeRecord>(this.store.keys.node(name)))?.value
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
