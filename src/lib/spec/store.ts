import {preconditionError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import type {ClusterSpec} from './types.js'
import {readClusterView} from './view.js'

/** The spec stored by the last `config apply`; SPEC_NOT_FOUND (exit 3) when there is none. */
export async function readStoredSpec(store: EtcdStore): Promise<ClusterSpec> {
  const spec = await readStoredSpecIfAny(store)
  if (!spec) {
    throw preconditionError('SPEC_NOT_FOUND', `No cluster spec is stored for cluster "${store.keys.cluster}".`, 'Store one with: xcluster config apply -f xcluster.yaml')
  }
  return spec
}

/** The current spec (its pointer and parts, read at one revision), or undefined before the first apply. */
export async function readStoredSpecIfAny(store: EtcdStore): Promise<ClusterSpec | undefined> {
  return (await readClusterView(store, {spec: 'always', nodes: 'none'})).spec
}
