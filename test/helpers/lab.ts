/**
 * The lab as the lab tests use it: the admin host's environment (as `lab exec admin` sets it up),
 * commands inside a node's container, and the bootstrapped cluster's etcd as the operator sees it.
 */
import assert from 'node:assert/strict'
import {execFile, execFileSync} from 'node:child_process'
import {existsSync, readFileSync, readlinkSync} from 'node:fs'
import {join} from 'node:path'

import {adminEnvironment} from '../../src/lib/lab/exec.js'
import {labPaths} from '../../src/lib/lab/paths.js'
import {containerInitPid, readLabState, type LabState} from '../../src/lib/lab/state.js'
import {contextConnection, readOperatorContext} from '../../src/lib/etcd/operator-context.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {env} from '../../src/lib/settings.js'
import {xcluster, type CliResult} from './cli.js'

export const lab = (): LabState => readLabState()

/** The environment `lab exec admin` gives a command: the lab's etcd until bootstrap, the PKI dir, the SSH key. */
export function adminEnv(state: LabState = lab()): Record<string, string> {
  const e = adminEnvironment(state)
  return Object.fromEntries(Object.entries(e).filter(([k]) => k.startsWith('XCLUSTER_'))) as Record<string, string>
}

/** The CLI as the operator runs it on the lab's admin host (the tests already run in its namespace). */
export const admin = (args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> => xcluster(args, {env: {...adminEnv(), ...extraEnv}})

export const ok = (r: CliResult, what: string): CliResult => {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}${r.stdout}`)
  return r
}

/**
 * A process of this test's ancestry that lives outside the xc-admin namespaces the tests run in
 * (the shell that ran `ip netns exec`), to enter the root mount and network namespaces through
 * it: PID 1 may not be ours to enter, and `ip netns exec` gave this process a /sys of its own,
 * without the cgroup hierarchies systemd-nspawn needs.
 */
export function rootNamespaceAncestor(): number {
  const ownNet = readlinkSync('/proc/self/ns/net')
  for (let pid = process.ppid; pid > 1;) {
    if (readlinkSync(`/proc/${pid}/ns/net`) !== ownNet) return pid
    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after its ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  }
  throw new Error('no ancestor of this test runs outside its network namespace: run the lab tests through `ip netns exec xc-admin` (test/run.sh does)')
}

/** A command inside a node's container as root, without SSH (to break SSH on purpose, or read what is there). */
export function inNode(name: string, script: string, state: LabState = lab()): string {
  const pid = containerInitPid(state.dir, name)
  assert.ok(pid, `no running container for ${name}`)
  return execFileSync('nsenter', ['-t', String(pid), '-a', 'sh', '-c', script], {encoding: 'utf8', env: {PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'}})
}

/** The same, never throwing: exit code and output. */
export function onNode(name: string, script: string, timeoutMs = 60_000, state: LabState = lab()): Promise<{code: number; stdout: string; stderr: string}> {
  const pid = containerInitPid(state.dir, name)
  if (pid === undefined) return Promise.resolve({code: -1, stdout: '', stderr: `${name} is not running`})
  return new Promise((resolve) =>
    execFile('nsenter', ['-t', String(pid), '-a', 'sh', '-c', script], {timeout: timeoutMs, env: {PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'}}, (err, stdout, stderr) =>
      resolve({code: err ? ((err as {code?: number}).code ?? 1) : 0, stdout, stderr}),
    ),
  )
}

/** Whether the lab's cluster has been bootstrapped from its admin host (the operator's context exists). */
export function bootstrapped(state: LabState = lab()): boolean {
  return existsSync(join(labPaths(state.dir).adminPki, state.cluster, 'context.json'))
}

/** The cluster's etcd as the operator (TLS, the operator's certificate), after bootstrap. */
export function clusterStore(state: LabState = lab()): EtcdStore {
  const previous = process.env[env.pkiDir]
  process.env[env.pkiDir] = labPaths(state.dir).adminPki
  try {
    const context = readOperatorContext(state.cluster)
    assert.ok(context, "the lab's cluster is not bootstrapped (no operator context): test/lab/bootstrap.test.ts runs first")
    return new EtcdStore(contextConnection(context))
  } finally {
    if (previous === undefined) delete process.env[env.pkiDir]
    else process.env[env.pkiDir] = previous
  }
}

/** Polls until `check` holds, failing with `why()` after `timeoutMs`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, why: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    assert.ok(Date.now() < deadline, why())
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** Nodes without a fixed address ask for a lease again now (systemd-networkd backs off while nobody answered). */
export function renewDhcp(nodes: string[]): void {
  for (const n of nodes) inNode(n, 'systemctl restart systemd-networkd 2>/dev/null; true')
}
