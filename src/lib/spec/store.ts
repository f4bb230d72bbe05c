import {preconditionError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import type {ClusterSpec} from './types.js'

/** The spec stored by the last `config apply`; SPEC_NOT_FOUND (exit 3) when there is none. */
export async function readStoredSpec(store: EtcdStore): Promise<ClusterSpec> {
  const stored = await store.getJson<ClusterSpec>(store.keys.spec())
  if (!stored) {
    throw preconditionError('SPEC_NOT_FOUND', `No cluster spec is stored for cluster "${store.keys.cluster}".`, 'Store one with: xcluster config apply -f xcluster.yaml')
  }
  return stored.value
}
