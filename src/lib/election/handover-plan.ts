import {preconditionError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {readElection} from './state.js'

/** What `election resign|transfer --dry-run` reports: the request a real run would make. */
export interface HandoverPlan {
  service: string
  dryRun: true
  from: {node: string; token: string}
  /** The node asked to lead next (transfer), or null (resign: any candidate may win). */
  to: string | null
  /** Candidates that could take over. */
  candidates: string[]
  /** False when the target already leads: a transfer would change nothing. */
  changes: boolean
}

/**
 * Reads the election and checks a resign (`to` null) or transfer as `requestHandover` would,
 * writing nothing: no leader, or a target that does not campaign, are the same refusals.
 */
export async function planHandover(store: EtcdStore, service: string, to: string | null): Promise<HandoverPlan> {
  const state = await readElection(store, service)
  if (!state.leader || !state.token) {
    throw preconditionError('NO_LEADER', `Service "${service}" has no leader right now.`, 'Check that xcluster serve --elect runs on its nodes: xcluster election list')
  }
  const candidates = state.candidates.filter((c) => c !== state.leader)
  if (to !== null && to !== state.leader && !state.candidates.includes(to)) {
    throw preconditionError(
      'NOT_A_CANDIDATE',
      `Node "${to}" is not campaigning for "${service}" (candidates: ${state.candidates.join(', ') || 'none'}).`,
      `Start xcluster serve --elect ${service} on ${to}, or pick one of the candidates.`,
    )
  }
  return {service, dryRun: true, from: {node: state.leader, token: state.token}, to, candidates, changes: to !== state.leader}
}
