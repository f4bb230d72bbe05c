import {closeSync, openSync, readSync} from 'node:fs'
import {performance} from 'node:perf_hooks'

/**
 * The clock leases are counted on. Two requirements pull against each other:
 *  - wall-clock jumps (NTP, an operator's `date -s`) must not extend a lease: use a monotonic clock;
 *  - the monotonic clock (CLOCK_MONOTONIC) stops while a host is suspended or a VM is frozen, so a
 *    leader resumed after a suspend would believe no time passed. CLOCK_BOOTTIME keeps counting.
 * Node exposes only the first; /proc/uptime is CLOCK_BOOTTIME with 10 ms resolution. So this
 * clock is monotonic time plus every suspend seen so far: on each reading it compares how far
 * boot time moved with how far monotonic time moved, and adds any excess. It errs late (never
 * early): a reading is at most one /proc/uptime tick (10 ms) ahead of the true boot time, which
 * only makes a lease look shorter.
 */
export class LeaseClock {
  /** Boot time minus monotonic time, in ms (grows by each suspend): the running maximum seen. */
  private offsetMs = -Infinity

  constructor(
    private readonly monotonic: () => number = () => performance.now(),
    /** Boot time in ms, or undefined where /proc/uptime cannot be read (then: monotonic only). */
    private readonly bootTime: () => number | undefined = readUptimeMs,
    /** Resolution of `bootTime`: added so truncation never makes the clock read early. */
    private readonly resolutionMs = 10,
  ) {}

  /** Milliseconds on the lease clock (only differences are meaningful, within one process). */
  now(): number {
    const mono = this.monotonic()
    const boot = this.bootTime()
    if (boot !== undefined) this.offsetMs = Math.max(this.offsetMs, boot + this.resolutionMs - mono)
    return mono + (Number.isFinite(this.offsetMs) ? this.offsetMs : 0)
  }
}

let uptimeFd: number | undefined
const uptimeBuffer = Buffer.alloc(64)

/** CLOCK_BOOTTIME in ms from /proc/uptime (truncated to its 10 ms ticks). */
export function readUptimeMs(): number | undefined {
  try {
    uptimeFd ??= openSync('/proc/uptime', 'r')
    const n = readSync(uptimeFd, uptimeBuffer, 0, uptimeBuffer.length, 0)
    const seconds = Number.parseFloat(uptimeBuffer.toString('latin1', 0, n))
    return Number.isFinite(seconds) ? seconds * 1000 : undefined
  } catch {
    if (uptimeFd !== undefined) closeSync(uptimeFd)
    uptimeFd = undefined
    return undefined
  }
}

/** Boot time in whole centiseconds as /proc/uptime counts them: the unit the service guardian compares. */
export function uptimeCentiseconds(): number | undefined {
  const ms = readUptimeMs()
  return ms === undefined ? undefined : Math.floor(ms / 10)
}

/** The process-wide lease clock. */
export const leaseClock = new LeaseClock()
export const leaseNowMs = (): number => leaseClock.now()

/** Resolves true when `work` settles within `ms`, false otherwise (the work is left to finish). */
export async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      timeout,
    ])
  } finally {
    clearTimeout(timer)
  }
}
