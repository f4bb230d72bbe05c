/** Values stored under `election/<service>/` (see KeySchema). */

/** The leader key's value; the key's create revision is the fencing token. */
export interface LeaderRecord {
  node: string
  /** When this leadership began (ISO time). */
  since: string
  ttl: number
}

export interface CandidateRecord {
  node: string
  pid: number
  since: string
}

/** One daemon's published belief, compared against etcd by `election check`. */
export interface ViewRecord {
  node: string
  /** True while this daemon holds leadership (its service is running or about to). */
  believesLeader: boolean
  /** Whether its service is running now. */
  active: boolean
  /** Who it believes leads, and with which token (null when it knows of no leader). */
  leader: string | null
  token: string | null
  since: string | null
  updatedAt: string
}

export type HistoryEvent = 'elected' | 'resigned' | 'demoted' | 'start-failed'

export interface HistoryEntry {
  service: string
  event: HistoryEvent
  node: string
  token: string
  at: string
  reason: string
}

/**
 * A request to the leader holding `token`: resign (to: null) or hand over to `to`. Others hold
 * back until `until` (epoch ms) so the target can win; the winner deletes the request.
 */
export interface HandoverRequest {
  token: string
  from: string
  to: string | null
  requestedAt: string
  until: number
}
