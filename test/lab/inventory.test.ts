/**
 * Ansible on the lab's bootstrapped cluster (test/lab/bootstrap.test.ts runs first), run on the
 * admin host as an operator would: `xcluster inventory export` writes the config, the plugin and
 * a known_hosts of the pinned keys; `ansible all -m ping` then reaches every node with host keys
 * checked against those pins only; and when a node's pin in etcd is replaced by another key,
 * the next export leaves it out and Ansible refuses that node (host key verification failed)
 * while it still reaches the others.
 *
 * The file is named after the command, not after Ansible: node's test runner runs files in path
 * order, and a lab test must sort after bootstrap.test.ts.
 */
import assert from 'node:assert/strict'
import {execFile, execFileSync} from 'node:child_process'
import {mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {InventoryExport} from '../../src/lib/inventory/index.js'
import {HostKeyStore} from '../../src/lib/ssh/host-key-store.js'
import {fingerprintOfPublicKey} from '../../src/lib/ssh/fingerprint.js'
import {requireTool} from '../helpers/tools.js'
import {admin, adminEnv, bootstrapped, clusterStore, lab, ok} from '../helpers/lab.js'

const NODES = ['c1', 'f1', 's1', 's2', 's3', 's4']
const VICTIM = 's2'
const WRONG = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
const state = lab()
const ansible = requireTool('ansible', 'ansible')
let dir: string
let out: string

/** One host's line of `ansible -o`: `s1 | SUCCESS => {...}`, `s2 | UNREACHABLE!: Failed to connect ...`. */
interface PingResult {
  status: string
  text: string
}

/** `xcluster inventory export` into `out`, as the operator on the admin host. */
async function exportInventory(): Promise<InventoryExport> {
  return ok(await admin(['inventory', 'export', out, '--json']), 'inventory export').json<InventoryExport>()
}

/** Fingerprints of the keys known_hosts holds for each node. */
function knownFingerprints(): Record<string, string[]> {
  const byNode: Record<string, string[]> = {}
  for (const line of readFileSync(join(out, 'known_hosts'), 'utf8').split('\n')) {
    if (!line || line.startsWith('#')) continue
    const [hosts, type, key] = line.split(' ')
    const node = hosts!.split(',')[0]!
    ;(byNode[node] ??= []).push(fingerprintOfPublicKey(`${type} ${key}`))
  }
  return byNode
}

/**
 * `ansible all -m ping -o -vvv` with the exported config, each run with its own ControlPersist
 * directory (a master connection left from an earlier run would skip the key check), its masters
 * closed after. Returns each host's one-line result, the exit status and the whole log (-vvv
 * shows every ssh command Ansible ran).
 */
function ping(run: string): Promise<{code: number; hosts: Record<string, PingResult>; log: string}> {
  const control = join(dir, `cp-${run}`)
  return new Promise((resolve) =>
    execFile(
      ansible,
      ['all', '-m', 'ping', '-o', '-vvv'],
      {
        cwd: out,
        timeout: 180_000,
        maxBuffer: 64 * 1024 * 1024,
        env: {
          ...process.env,
          ...adminEnv(state),
          ANSIBLE_CONFIG: join(out, 'ansible.cfg'),
          ANSIBLE_SSH_CONTROL_PATH_DIR: control,
          ANSIBLE_NOCOLOR: '1',
          ANSIBLE_TIMEOUT: '15',
          ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-tmp'),
        },
      },
      (err, stdout, stderr) => {
        for (const socket of safeList(control)) {
          try {
            execFileSync('ssh', ['-O', 'exit', '-S', join(control, socket), 'unused'], {stdio: 'ignore'})
          } catch {
            // already gone
          }
        }
        const log = `${stdout}${stderr}`
        const hosts: Record<string, PingResult> = {}
        // A result runs to the next result or -vvv line (`<ADDRESS> ...`): ssh's message spans lines.
        const result = /^(\S+) \| (SUCCESS|CHANGED|FAILED!|UNREACHABLE!)(?: =>|:) ([\s\S]*?)(?=^\S+ \| (?:SUCCESS|CHANGED|FAILED!|UNREACHABLE!)|^<|(?![\s\S]))/gm
        for (const m of log.matchAll(result)) hosts[m[1]!] = {status: m[2]!, text: m[3]!}
        resolve({code: err ? Number((err as {code?: number}).code ?? 1) : 0, hosts, log})
      },
    ),
  )
}

const safeList = (path: string): string[] => {
  try {
    return readdirSync(path)
  } catch {
    return []
  }
}

before(() => {
  assert.ok(bootstrapped(state), "the lab's cluster is not bootstrapped: test/lab/bootstrap.test.ts runs first")
  dir = mkdtempSync(join(tmpdir(), 'xct-ansible-'))
  out = join(dir, 'ansible')
})
after(() => rmSync(dir, {recursive: true, force: true}))

describe('Ansible with the inventory from etcd, on the lab cluster', {concurrency: false}, () => {
  it("inventory export: every node's pinned keys, and only those, in known_hosts", async () => {
    const result = await exportInventory()
    assert.deepEqual(Object.fromEntries(result.hosts.map((h) => [h.node, h.status])), Object.fromEntries(NODES.map((n) => [n, 'written'])))
    const store = clusterStore(state)
    try {
      const pins = new HostKeyStore(store)
      const known = knownFingerprints()
      for (const n of NODES) assert.deepEqual([...(known[n] ?? [])].sort(), [...((await pins.get(n))?.fingerprints ?? [])].sort(), `${n}: known_hosts is not its pins`)
    } finally {
      await store.close()
    }
  })

  it('ansible all -m ping reaches every node, checking host keys against the exported pins only', async () => {
    const r = await ping('all')
    assert.equal(r.code, 0, r.log.slice(-4000))
    assert.deepEqual(Object.fromEntries(Object.entries(r.hosts).map(([h, res]) => [h, res.status])), Object.fromEntries(NODES.map((n) => [n, 'SUCCESS'])))
    for (const n of NODES) assert.match(r.hosts[n]!.text, /"ping": "pong"/)
    // Every ssh Ansible ran carried the checking options of the exported ansible.cfg.
    const sshRuns = r.log.split('\n').filter((l) => l.includes('SSH: EXEC ssh '))
    assert.ok(sshRuns.length >= NODES.length, r.log.slice(-4000))
    for (const line of sshRuns) {
      for (const option of [`UserKnownHostsFile=${out}/known_hosts`, 'GlobalKnownHostsFile=/dev/null', 'StrictHostKeyChecking=yes']) assert.ok(line.includes(option), `${option} missing: ${line}`)
      assert.doesNotMatch(line, /StrictHostKeyChecking=no/)
    }
  })

  it(`a pin replaced in etcd: the next export leaves ${VICTIM} out and Ansible refuses it (host key verification failed); the others still answer`, async () => {
    const store = clusterStore(state)
    const original = (await new HostKeyStore(store).get(VICTIM))?.fingerprints ?? []
    await store.close()
    assert.equal(original.length, 1, `${VICTIM} (a core node) is pinned with the one key bootstrap accepted: ${original.join(', ')}`)
    ok(await admin(['node', 'repin', VICTIM, '--fingerprint', WRONG, '--yes']), 'repin to another key')
    try {
      const result = await exportInventory()
      const victim = result.hosts.find((h) => h.node === VICTIM)!
      assert.equal(victim.status, 'mismatch')
      assert.ok(victim.refused.includes(original[0]!), `${VICTIM} presents its own key: ${victim.refused.join(', ')}`)
      assert.equal(knownFingerprints()[VICTIM], undefined)
      const r = await ping('repinned')
      assert.equal(r.code, 4, `ansible exits 4 when a host is unreachable\n${r.log.slice(-4000)}`)
      assert.equal(r.hosts[VICTIM]?.status, 'UNREACHABLE!', JSON.stringify(r.hosts[VICTIM]))
      assert.match(r.hosts[VICTIM]?.text ?? '', /Host key verification failed/)
      for (const n of NODES.filter((x) => x !== VICTIM)) assert.equal(r.hosts[n]?.status, 'SUCCESS', `${n}: ${JSON.stringify(r.hosts[n])}`)
    } finally {
      ok(await admin(['node', 'repin', VICTIM, '--fingerprint', original[0]!, '--yes']), 'repin back')
    }
    // Pinned again: the next export writes its key and Ansible reaches it.
    assert.equal((await exportInventory()).hosts.find((h) => h.node === VICTIM)?.status, 'written')
    const again = await ping('restored')
    assert.equal(again.code, 0, again.log.slice(-4000))
    assert.equal(again.hosts[VICTIM]?.status, 'SUCCESS', JSON.stringify(again.hosts[VICTIM]))
  })
})
