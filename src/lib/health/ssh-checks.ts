/**
 * The checks that need the nodes themselves (`health --ssh`): each node reachable over SSH with
 * its pinned host key (never a new key accepted), and its clock against this host's and chrony's
 * own verdict.
 */
import {XclusterError} from '../errors.js'
import {commandLine} from '../output/command-line.js'
import {settings} from '../settings.js'
import {SshHost, type SshTarget} from '../ssh/index.js'
import type {CheckStatus, HealthCheck} from './types.js'

/** One reading of a node's clock: its time, and when we asked and heard back, on our clock (ms). */
export interface ClockSample {
  remoteMs: number
  sentMs: number
  receivedMs: number
  /** `chronyc -c tracking` output, or why there is none. */
  chrony: {synchronised: boolean; offsetMs: number; source: string} | {unavailable: string}
}

/** Remote time, then chrony's tracking as CSV: one round trip. */
export const CLOCK_COMMAND = 'date +%s%N; chronyc -n -c tracking 2>&1 || true'

/** Reads CLOCK_COMMAND's output; undefined when the first line is not a time. */
export function parseClockOutput(stdout: string): Pick<ClockSample, 'remoteMs' | 'chrony'> | undefined {
  const [first = '', ...rest] = stdout.trim().split('\n')
  if (!/^\d{10,}$/.test(first.trim())) return undefined
  const remoteMs = Number(BigInt(first.trim()) / 1_000_000n)
  const csv = rest.map((l) => l.trim().split(',')).find((f) => f.length >= 14)
  if (!csv) return {remoteMs, chrony: {unavailable: rest.join(' ').trim() || 'no output'}}
  // chronyc -c tracking: ref id, ref name, stratum, ref time, system time offset (s), ..., leap status (14th).
  return {remoteMs, chrony: {synchronised: csv[13] !== 'Not synchronised', offsetMs: Number(csv[4]) * 1000, source: csv[1] as string}}
}

const round = (ms: number): number => Math.round(ms * 10) / 10

/**
 * The clock verdict: the node's time against the midpoint of our request, less the round trip's
 * uncertainty (a skew smaller than the measuring error is no skew), and chrony's own view.
 */
export function clockCheck(node: string, sample: ClockSample, thresholds = {warn: settings.health.clockSkewWarnMs, fail: settings.health.clockSkewFailMs}): HealthCheck {
  const uncertainty = (sample.receivedMs - sample.sentMs) / 2
  const skew = sample.remoteMs - (sample.sentMs + uncertainty)
  const beyond = Math.max(0, Math.abs(skew) - uncertainty)
  let status: CheckStatus = beyond >= thresholds.fail ? 'fail' : beyond >= thresholds.warn ? 'warn' : 'ok'
  const parts = [`clock ${skew >= 0 ? '+' : ''}${round(skew)} ms vs this host (±${round(uncertainty)} ms)`]
  if ('unavailable' in sample.chrony) {
    parts.push(`chrony not answering (${sample.chrony.unavailable.slice(0, 80)})`)
    if (status === 'ok') status = 'warn'
  } else if (sample.chrony.synchronised) {
    parts.push(`chrony synchronised to ${sample.chrony.source}, offset ${round(sample.chrony.offsetMs)} ms`)
  } else {
    parts.push('chrony not synchronised')
    if (status === 'ok') status = 'warn'
  }
  const observed = parts.join('; ')
  if (status === 'ok') return {name: `time:${node}`, status, observed}
  return {name: `time:${node}`, status, observed, next: `On ${node}: chronyc sources -v (time sync from the core nodes is set up by ${commandLine(['node', 'add', node])})`}
}

async function checkNode(target: SshTarget): Promise<HealthCheck[]> {
  let ssh: SshHost
  try {
    ssh = await SshHost.connect(target, {timeoutMs: settings.health.sshTimeoutMs, retries: 0})
  } catch (err) {
    const e = err instanceof XclusterError ? err : undefined
    return [
      {
        name: `ssh:${target.name}`,
        status: 'fail',
        observed: `${target.address}${target.port ? `:${target.port}` : ''}: ${e?.message ?? String((err as Error)?.message ?? err)}`,
        next: e?.suggestion ?? `Check that ${target.name} is up and its sshd listens: ${commandLine(['node', 'show', target.name])}`,
      },
    ]
  }
  try {
    const checks: HealthCheck[] = [{name: `ssh:${target.name}`, status: 'ok', observed: `reachable at ${target.address}, host key matches its pin`}]
    const sentMs = Date.now()
    const res = await ssh.exec(CLOCK_COMMAND, {timeoutMs: settings.health.sshCommandTimeoutMs})
    const receivedMs = Date.now()
    const parsed = parseClockOutput(res.stdout)
    checks.push(
      parsed
        ? clockCheck(target.name, {...parsed, sentMs, receivedMs})
        : {
            name: `time:${target.name}`,
            status: 'warn',
            observed: `could not read the clock: ${(res.stdout + res.stderr).trim().slice(0, 120) || `exit ${res.code}`}`,
            next: `On ${target.name}: date; chronyc tracking`,
          },
    )
    return checks
  } catch (err) {
    return [{name: `time:${target.name}`, status: 'warn', observed: `could not read the clock: ${String((err as Error)?.message ?? err)}`, next: `On ${target.name}: date; chronyc tracking`}]
  } finally {
    await ssh.close()
  }
}

/** SSH and clock checks of every target, `settings.health.sshConcurrency` at a time. */
export async function sshChecks(targets: readonly SshTarget[]): Promise<HealthCheck[]> {
  const out: HealthCheck[][] = []
  let next = 0
  const worker = async () => {
    while (next < targets.length) {
      const i = next++
      out[i] = await checkNode(targets[i] as SshTarget)
    }
  }
  await Promise.all(Array.from({length: Math.min(settings.health.sshConcurrency, targets.length)}, worker))
  return out.flat()
}
