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
  /** The serve process and the boot it runs in: a restarted serve recognises its dead predecessor by them. */
  pid: number
  bootId: string
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
 * back for `timeoutMs` so the target can win; the winner deletes the request. The time is a
 * duration each daemon counts from when it first saw the request, on its own clock: hosts'
 * wall clocks are never compared.
 */
export interface HandoverRequest {
  token: string
  from: string
  to: string | null
  requestedAt: string
  timeoutMs: number
}

/**
 * What a leader did to fence its service's RBD image before starting it (RbdFence), written under
 * its token in a transaction compared against its leader key: a deposed leader records nothing.
 * `holder` is the service's own client once it took the image's exclusive lock (null until then):
 * how `election check` tells the leader's lock from anyone else's.
 */
export interface RbdFenceRecord {
  image: string
  node: string
  token: string
  blocklisted: string[]
  brokenLocks: {id: string; locker: string; address: string}[]
  at: string
  holder: {locker: string; address: string} | null
}
