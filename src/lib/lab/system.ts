import {execFile, spawn} from 'node:child_process'
import {openSync} from 'node:fs'

import {ExitStatus, XclusterError} from '../errors.js'

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs a program (no shell), collecting its output; never throws on a non-zero exit. */
export function run(cmd: string, args: string[], options: {input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number} = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, {encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: options.env ?? process.env, timeout: options.timeoutMs ?? 0}, (err, stdout, stderr) => {
      const code = err ? (typeof (err as {code?: unknown}).code === 'number' ? (err as {code: number}).code : 1) : 0
      resolve({code, stdout: String(stdout), stderr: String(stderr)})
    })
    if (options.input !== undefined) child.stdin?.end(options.input)
  })
}

/** Like run(), but a non-zero exit becomes an XclusterError naming the command and its stderr. */
export async function must(cmd: string, args: string[], options: {input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; code?: string} = {}): Promise<string> {
  const res = await run(cmd, args, options)
  if (res.code !== 0) {
    throw new XclusterError(`\`${[cmd, ...args].join(' ')}\` failed (exit ${res.code}): ${(res.stderr || res.stdout).trim().slice(-2000)}`, {
      code: options.code ?? 'LAB_COMMAND_FAILED',
      exit: ExitStatus.failure,
    })
  }
  return res.stdout
}

/** Starts a long-running process in its own session, detached from us, output to a log file. */
export function spawnDaemon(cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): number {
  const log = openSync(logFile, 'a')
  const child = spawn(cmd, args, {detached: true, stdio: ['ignore', log, log], env})
  child.unref()
  if (child.pid === undefined) throw new XclusterError(`Could not start ${cmd}.`, {code: 'LAB_SPAWN_FAILED'})
  return child.pid
}

/** The lab changes namespaces, mounts and cgroups: only root may do that. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new XclusterError('The lab needs root: it creates network namespaces, overlay mounts and containers.', {
      code: 'LAB_NEEDS_ROOT',
      exit: ExitStatus.precondition,
      suggestion: 'Run it with sudo, e.g.: sudo xcluster lab up',
    })
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `check` until it returns true or the deadline passes. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return true
    if (Date.now() > deadline) return false
    await sleep(intervalMs)
  }
}
