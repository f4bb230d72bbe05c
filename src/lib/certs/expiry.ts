/**
 * When a certificate is due: the fixed thresholds (renew under 30 days, health warns under 30 and
 * fails under 7) are made for year-long certificates; a short-lived one (hours, days) would be
 * due, and failing, from birth. So each threshold is capped at a share of the certificate's own
 * lifetime (cert-manager renews at 2/3 of it): renewal and the warning at its last third, the
 * failure at its last tenth.
 */
import {settings} from '../settings.js'

export const DAY_MS = 86_400_000

export interface Validity {
  notBefore: string
  notAfter: string
}

const lifetimeMs = (v: Validity): number => Date.parse(v.notAfter) - Date.parse(v.notBefore)

export const msLeft = (v: Pick<Validity, 'notAfter'>, now: number): number => Date.parse(v.notAfter) - now

/** When renewal falls due: `beforeMs` before the end (default: renewBeforeDays, capped at the last third of its lifetime). */
export function renewalAt(v: Validity, beforeMs?: number): number {
  return Date.parse(v.notAfter) - (beforeMs ?? Math.min(settings.certs.renewBeforeDays * DAY_MS, lifetimeMs(v) / 3))
}

export function renewalDue(v: Validity, now: number, beforeMs?: number): boolean {
  return now > renewalAt(v, beforeMs)
}

/** `health`'s verdict on a certificate's time left. */
export function expiryStatus(v: Validity, now: number): 'ok' | 'warn' | 'fail' {
  const left = msLeft(v, now)
  const life = lifetimeMs(v)
  if (left < Math.min(settings.certs.expiryFailDays * DAY_MS, life / 10)) return 'fail'
  if (left < Math.min(settings.certs.expiryWarnDays * DAY_MS, life / 3)) return 'warn'
  return 'ok'
}
