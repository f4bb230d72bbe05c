/**
 * A playbook run on one batch: real `ansible-playbook` with xcluster's own inventory (the
 * exported ansible.cfg, the inventory plugin reading etcd, known_hosts of the pinned keys only),
 * `--limit` to the batch, and each host's verdict read from the PLAY RECAP.
 */
import {execFileSync, spawn} from 'node:child_process'
import {mkdirSync, readdirSync} from 'node:fs'
import {join} from 'node:path'

import {ExitStatus, XclusterError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {EXPORT_FILES, planInventoryExport, writeInventoryExport, type InventoryAccess} from '../inventory/index.js'
import {TEMPLATES_DIR} from '../render/template.js'
import {settings} from '../settings.js'

/** The playbook `xcluster update` runs when none is given. */
export const DEFAULT_UPDATE_PLAYBOOK = join(TEMPLATES_DIR, 'ansible', 'update.yml')

/** One host's line of the PLAY RECAP. */
export interface RecapLine {
  ok: number
  changed: number
  unreachable: number
  failed: number
}

/** Every host's PLAY RECAP line. */
export function parseRecap(output: string): Map<string, RecapLine> {
  const recap = new Map<string, RecapLine>()
  const line = /^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm
  for (const m of output.matchAll(line)) recap.set(m[1]!, {ok: Number(m[2]), changed: Number(m[3]), unreachable: Number(m[4]), failed: Number(m[5])})
  return recap
}

/** Ansible's last word on a host that failed: the `msg` of its last `fatal:` line, else the line. */
export function failureOf(output: string, host: string): string | undefined {
  const fatal = [...output.matchAll(/^fatal: \[([^\]]+)\]: (FAILED!|UNREACHABLE!) => (.*)$/gm)].filter((m) => m[1] === host).at(-1)
  if (!fatal) return undefined
  let detail = fatal[3]!
  try {
    const parsed = JSON.parse(detail) as {msg?: unknown}
    if (typeof parsed.msg === 'string') detail = parsed.msg
  } catch {
    // Not JSON (a multi-line result): the line as printed.
  }
  return `${fatal[2] === 'UNREACHABLE!' ? 'unreachable' : 'failed'}: ${detail.slice(0, 300)}`
}

/** What one run gave each host: undefined when it succeeded, else why not. */
export interface PlaybookOutcome {
  code: number
  failures: Map<string, string>
  /** The last lines Ansible printed (for a run that failed as a whole). */
  tail: string
}

/** Reads a run's output into per-host outcomes; a host missing from the recap failed too. */
export function playbookOutcome(code: number, output: string, hosts: readonly string[]): PlaybookOutcome {
  const recap = parseRecap(output)
  const tail = output.trim().split('\n').slice(-15).join('\n')
  const failures = new Map<string, string>()
  for (const host of hosts) {
    const line = recap.get(host)
    if (!line) failures.set(host, `not in the PLAY RECAP (exit ${code}): ${tail.split('\n').at(-1) ?? ''}`)
    else if (line.failed > 0 || line.unreachable > 0) failures.set(host, failureOf(output, host) ?? `${line.failed} task(s) failed, unreachable ${line.unreachable}`)
  }
  // A run that failed before any host (a syntax error) fails every host of the batch.
  if (code !== 0 && failures.size === 0) for (const host of hosts) failures.set(host, `ansible-playbook exited ${code}: ${tail.split('\n').at(-1) ?? ''}`)
  return {code, failures, tail}
}

/** Where Ansible works: the exported inventory and config, and its own temporary and control directories. */
export interface AnsibleWorkspace {
  dir: string
  /** Nodes whose pinned keys are not in known_hosts (Ansible refuses them), with why. */
  refused: Map<string, string>
}

/**
 * Exports xcluster's inventory into `dir` (as `xcluster inventory export` does), again while a
 * node of `batch` has no key in known_hosts because it did not answer the scan (a busy sshd drops
 * connections): a node presenting a key that is not pinned is refused at once, never retried.
 */
export async function prepareAnsible(store: EtcdStore, dir: string, executable: string, access: InventoryAccess, batch: readonly string[]): Promise<AnsibleWorkspace> {
  for (let attempt = 1; ; attempt++) {
    const plan = await planInventoryExport(store, {dir, connection: store.connection, executable, access})
    writeInventoryExport(plan)
    const refused = new Map(plan.hosts.filter((h) => h.status !== 'written').map((h) => [h.node, h.status]))
    const unanswered = batch.some((n) => refused.get(n) === 'unreachable')
    if (!unanswered || attempt >= settings.update.keyscanAttempts) return {dir: plan.dir, refused}
    await new Promise((r) => setTimeout(r, settings.update.pollMs))
  }
}

/**
 * `ansible-playbook PLAYBOOK --limit HOSTS` in the workspace, each run with its own SSH control
 * directory whose masters are closed after (a master left from before a reboot would be stale).
 * `onLine` sees each line of output as it comes (progress).
 */
export async function runPlaybook(workspace: AnsibleWorkspace, playbook: string, hosts: readonly string[], run: string, onLine: (line: string) => void = () => {}): Promise<PlaybookOutcome> {
  const control = join(workspace.dir, `cp-${run}`)
  mkdirSync(control, {recursive: true, mode: 0o700})
  mkdirSync(join(workspace.dir, 'tmp'), {recursive: true, mode: 0o700})
  const env = {
    ...process.env,
    ANSIBLE_CONFIG: join(workspace.dir, EXPORT_FILES.config),
    ANSIBLE_SSH_CONTROL_PATH_DIR: control,
    ANSIBLE_LOCAL_TEMP: join(workspace.dir, 'tmp'),
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
    ANSIBLE_RETRY_FILES_ENABLED: 'False',
  }
  try {
    return await new Promise<PlaybookOutcome>((resolve, reject) => {
      const child = spawn(settings.update.ansiblePlaybook, [playbook, '--limit', hosts.join(',')], {cwd: workspace.dir, env, stdio: ['ignore', 'pipe', 'pipe']})
      let output = ''
      let partial = ''
      const take = (chunk: Buffer) => {
        output += chunk.toString()
        const lines = (partial + chunk.toString()).split('\n')
        partial = lines.pop() ?? ''
        for (const l of lines) if (l.trim()) onLine(l)
      }
      child.stdout.on('data', take)
      child.stderr.on('data', take)
      const timer = setTimeout(() => child.kill('SIGTERM'), settings.update.playbookTimeoutMs)
      child.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        reject(
          err.code === 'ENOENT'
            ? new XclusterError(`${settings.update.ansiblePlaybook} is not installed on this host.`, {
                code: 'ANSIBLE_MISSING',
                exit: ExitStatus.precondition,
                suggestion: 'Install it: apt-get install ansible-core',
              })
            : err,
        )
      })
      child.on('close', (code, signal) => {
        clearTimeout(timer)
        resolve(playbookOutcome(code ?? (signal ? 128 : 1), output, hosts))
      })
    })
  } finally {
    for (const socket of readdirSync(control)) {
      try {
        execFileSync('ssh', ['-O', 'exit', '-S', join(control, socket), 'unused'], {stdio: 'ignore', timeout: 5000})
      } catch {
        // already gone
      }
    }
  }
}
