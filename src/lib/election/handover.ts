/** Resign and transfer: requests to the leader's daemon, which stops first and then frees the seat. */
import {performance} from 'node:perf_hooks'

import {ExitStatus, preconditionError, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {settings} from '../settings.js'
import {guardedWrite} from './fence.js'
import type {HandoverRequest} from './records.js'
import {readElection} from './state.js'

export interface HandoverResult {
  service: string
  from: {node: string; token: string}
  to: {node: string; token: string} | null
  /** Milliseconds from the request until the new leader held the seat. */
  ms: number
}

/**
 * Asks the current leader to resign (`to` null) or to hand over to `to`, and waits until a new
 * leader holds the seat. The request is written guarded by the leader's token, so it can only
 * address the leadership that was read.
 */
export async function requestHandover(store: EtcdStore, service: string, to: string | null, timeoutMs: number = settings.election.handoverTimeoutMs): Promise<HandoverResult> {
  const state = await readElection(store, service)
  if (!state.leader || !state.token) {
    throw preconditionError('NO_LEADER', `Service "${service}" has no leader right now.`, 'Check that xcluster serve --elect runs on its nodes: xcluster election list.')
  }
  const from = {node: state.leader, token: state.token}
  if (to !== null) {
    if (to === state.leader) return {service, from, to: from, ms: 0}
    if (!state.candidates.includes(to)) {
      throw preconditionError(
        'NOT_A_CANDIDATE',
        `Node "${to}" is not campaigning for "${service}" (candidates: ${state.candidates.join(', ') || 'none'}).`,
        `Start xcluster serve --elect ${service} on ${to}, or pick one of the candidates.`,
      )
    }
  }
  // Durations on this host's monotonic clock; each daemon counts the request's time on its own.
  const started = performance.now()
  const request: HandoverRequest = {token: state.token, from: state.leader, to, requestedAt: new Date().toISOString(), timeoutMs}
  const written = await guardedWrite(store, service, state.token, [{kind: 'put', key: store.keys.electionHandover(service), value: request}])
  if (!written) {
    throw new XclusterError(`Leadership of "${service}" changed while the request was being made.`, {
      code: 'LEADER_CHANGED',
      exit: ExitStatus.failure,
      suggestion: 'Look at xcluster election list and try again.',
    })
  }
  for (;;) {
    const now = await readElection(store, service)
    if (now.token && now.token !== state.token && (to === null || now.leader === to)) {
      return {service, from, to: {node: now.leader as string, token: now.token}, ms: Math.round(performance.now() - started)}
    }
    if (performance.now() - started > timeoutMs) {
      throw new XclusterError(`No new leader for "${service}" within ${timeoutMs} ms (leader now: ${now.leader ?? 'none'}).`, {
        code: 'HANDOVER_TIMEOUT',
        exit: ExitStatus.failure,
        suggestion: "Check the daemons' logs; the request lapses on its own.",
      })
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}
