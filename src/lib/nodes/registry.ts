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
}
