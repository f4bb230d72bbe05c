/**
 * Every command an error suggests runs as printed. The common refusals are provoked for real
 * (a failed run to resume, a changed host key to re-pin, no spec, no lab, a refused drain or
 * removal, an unknown command...); each `xcluster ...` in their "Try this:" lines is parsed with
 * oclif against the real command definitions (no usage error), and the ones that are safe to run
 * here are run as printed (they may fail for a reason of their own, but never as a usage error).
 */
import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {Config, Flags, Parser} from '@oclif/core'

import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {ROOT, xcluster, type CliResult} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {startSandboxHost, type SandboxHost} from '../helpers/sandbox-host.js'

/** The `xcluster ...` commands in an output's "Try this:" lines, as argument lists. */
export function suggestedCommands(output: string): string[][] {
  const commands: string[][] = []
  // Next steps follow "Try this:", at the start of a line or inside a failed host's line.
  for (const line of output.split('\n').flatMap((l) => l.split('Try this:').slice(1))) {
    // A command ends at a comma, semicolon, parenthesis, backtick, or a full stop before a space or the end.
    for (const m of line.matchAll(/(?:sudo )?xcluster((?: (?:'[^']*'|(?:[^\s,;()`'.]|\.(?!\s|$))+))*?)(?=\s*[,;()`]|\.(?:\s|$)|\s*$)/g)) {
      commands.push(shellWords(m[1].trim()))
    }
  }
  return commands
}

function shellWords(text: string): string[] {
  return [...text.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2])
}

let config: Config

/** Parses a suggested command with oclif against the real command's flags and args. */
async function parses(words: string[]): Promise<string> {
  if (words.length === 1 && ['--help', '--version'].includes(words[0])) return words[0]
  let n = words.length
  while (n > 0 && !config.findCommand(words.slice(0, n).join(':'))) n--
  assert.ok(n > 0, `no command in "xcluster ${words.join(' ')}"`)
  const id = words.slice(0, n).join(':')
  const argv = words.slice(n)
  if (argv.includes('--help')) return id
  const command = await config.findCommand(id)!.load()
  await Parser.parse(argv, {
    flags: {...command.baseFlags, ...command.flags, ...(command.enableJsonFlag ? {json: Flags.boolean()} : {})},
    args: command.args ?? {},
    strict: command.strict ?? true,
  })
  return id
}

/** Safe to run as printed against this test's etcd: they read, or refuse before writing. */
const RUN_AS_PRINTED = new Set(['runs:list', 'runs:show', 'node:list', 'node:show', 'node:drain', 'node:undrain', 'config:show', 'config:validate', 'election:list', 'dhcp:leases', 'node:add'])

let etcd: TestEtcd
let store: EtcdStore
let host: SandboxHost
let dir: string
const seen: {from: string; words: string[]}[] = []

async function provoke(what: string, args: string[], options: {wrap?: string[]; env?: Record<string, string>} = {}): Promise<CliResult> {
  const started = Date.now()
  const r = await xcluster(args, {env: {XCLUSTER_ETCD: etcd.unixEndpoint!, ...options.env}, cwd: dir, wrap: options.wrap})
  if (process.env.XCT_SHOW) console.log(`${what}: ${Date.now() - started} ms`)
  assert.notEqual(r.code, 0, `${what} should fail: ${r.stdout}`)
  const found = suggestedCommands(r.stderr)
  assert.ok(found.length > 0, `${what}: no suggested command in:\n${r.stderr}`)
  for (const words of found) seen.push({from: what, words})
  return r
}

describe('every suggested command runs as printed', () => {
  before(async () => {
    config = await Config.load(ROOT)
    etcd = await startEtcd({unixSocket: true, dir: mkdtempSync(join('/dev/shm', 'xct-suggest-etcd-'))})
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    host = await startSandboxHost({tag: 'suggest', addresses: ['10.0.0.2']})
    dir = mkdtempSync(join('/dev/shm', 'xct-suggest-'))
    writeFileSync(join(dir, 'cluster.yaml'), readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8').replace('key: ~/.ssh/id_ed25519', `key: ${host.clientKeyPath}`))
    writeFileSync(join(dir, 'broken.yaml'), 'cluster: Not_A_Label\n')
  })

  after(async () => {
    await store?.close()
    await host?.stop()
    await etcd?.stop()
    rmSync(dir, {recursive: true, force: true})
  })

  it('provokes the common refusals, each with a suggested command', async () => {
    await provoke('no spec yet', ['config', 'show'])
    await provoke('an invalid spec', ['config', 'apply', '-f', 'broken.yaml'])
    assert.equal((await xcluster(['config', 'apply', '-f', 'cluster.yaml'], {env: {XCLUSTER_ETCD: etcd.unixEndpoint!}, cwd: dir})).code, 0)
    // s1's pinned key is not the one its sshd presents: the run fails with a re-pin suggestion,
    // and the failed run with its resume command.
    await store.put(store.keys.hostKey('s1'), {fingerprints: ['SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'], pinnedAt: new Date().toISOString(), source: 'registration'})
    const failed = await provoke('a changed host key', ['node', 'add', 's1'], {wrap: ['ip', 'netns', 'exec', host.ns]})
    assert.match(failed.stderr, /Try this: Fix the cause, then continue with: xcluster node add s1 --resume \d{8}-\d{6}-[0-9a-f]{6}/)
    assert.match(failed.stderr, new RegExp(`xcluster node repin s1 --fingerprint ${host.hostFingerprint.replace(/[+/]/g, '\\$&')}`))
    await provoke('an unknown node', ['node', 'add', 'c9'])
    await provoke('an unknown run', ['node', 'add', 's1', '--resume', '20260101-000000-abcdef'])
    await provoke('an undrained node', ['node', 'remove', 's4'])
    await provoke('no --yes without a terminal', ['node', 'remove', 's4', '--force'])
    for (const n of ['s1', 's2', 's3']) {
      const record = (await store.getJson<NodeRecord>(store.keys.node(n)))!.value
      await store.put(store.keys.node(n), {...record, state: n === 's2' ? 'drained' : 'ready'})
    }
    await provoke('a drain that breaks quorum', ['node', 'drain', 's1'])
    await provoke('a node in the wrong state', ['node', 'undrain', 's1'])
    await provoke('no lab', ['lab', 'status'], {env: {XCLUSTER_LAB_DIR: join(dir, 'no-lab')}})
    await provoke('an unknown command', ['nod', 'lst'])
    await provoke('a bad flag value', ['node', 'list', '--etcd-ca', '/nonexistent'])
    const ids = new Set(seen.map((s) => s.words.slice(0, 2).join(' ')))
    for (const expected of ['node add', 'node repin', 'config apply', 'lab up', 'node drain', 'node undrain', 'runs list', 'node list'])
      assert.ok(ids.has(expected), `no ${expected} suggestion among ${[...ids].join(', ')}`)
  })

  it('each parses against the real command definitions, and the safe ones run as printed', async () => {
    assert.ok(seen.length >= 11, `only ${seen.length} suggestions`)
    const lines = new Set<string>()
    for (const {from, words} of seen) {
      const line = `xcluster ${words.join(' ')}`
      if (lines.has(line)) continue
      lines.add(line)
      const id = await parses(words).catch((error: Error) => assert.fail(`${from}: "${line}" does not parse: ${error.message}`))
      if (!RUN_AS_PRINTED.has(id)) continue
      const r = await xcluster(words, {env: {XCLUSTER_ETCD: etcd.unixEndpoint!}, cwd: dir, wrap: ['ip', 'netns', 'exec', host.ns]})
      assert.doesNotMatch(r.stderr, /Error \[(USAGE|FLAG_INVALID|UNKNOWN_COMMAND|ETCD_ENDPOINT_INVALID)\]/, `${from}: "${line}" is a usage error:\n${r.stderr}`)
    }
  })
})
