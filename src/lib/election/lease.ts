import {settings} from '../settings.js'

/**
 * How long before its lease could expire a leader must already have stopped its service: the
 * time a stop may take. The lease itself is kept by src/lib/etcd/lease-keeper.ts.
 */
export function safetyMarginMs(ttlSeconds: number): number {
  const e = settings.election
  return Math.min(e.safetyMarginMaxMs, Math.max(e.safetyMarginMinMs, ttlSeconds * 1000 * e.safetyMarginFraction))
}
