import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {EtcdStore} from '../../src/lib/etcd/store.js'
import {BIN, xcluster} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {requireTool} from '../helpers/tools.js'

describe('the CLI shell: help, --json, errors and exit codes', () => {
  let etcd: TestEtcd

  before(async () => {
    etcd = await startEtcd()
  })
  after(async () => {
    await etcd.stop()
  })

  it('--help lists the topics', async () => {
    const r = await xcluster(['--help'])
    assert.equal(r.code, 0)
    for (const topic of ['config', 'node', 'lab']) assert.match(r.stdout, new RegExp(`^  ${topic} `, 'm'))
  })

  it('every command has a summary and examples in its help', async () => {
    const r = await xcluster(['node', 'list', '--help'])
    assert.equal(r.code, 0)
    assert.match(r.stdout, /EXAMPLES/)
    assert.match(r.stdout, /--etcd=<value>/)
    assert.match(r.stdout, /--json/)
  })

  it('--json prints only the typed result on stdout', async () => {
    const r = await xcluster(['node', 'list', '--json', '--etcd', etcd.endpoint])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.json(), [])
  })

  it('reads the endpoints from XCLUSTER_ETCD', async () => {
    const r = await xcluster(['node', 'list', '--json'], {env: {XCLUSTER_ETCD: etcd.endpoint}})
    assert.equal(r.code, 0, r.stderr)
  })

  it('an unreachable etcd is a clear error naming the endpoint, exit 3, no stack trace', async () => {
    const r = await xcluster(['node', 'list', '--etcd', 'http://127.0.0.1:9'])
    assert.equal(r.code, 3)
    assert.match(r.stderr, /Error \[ETCD_UNREACHABLE\]: etcd is unreachable at http:\/\/127\.0\.0\.1:9/)
    assert.match(r.stderr, /Try this: .*--etcd/)
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
    assert.equal(r.stdout, '')
  })

  it('under --json an error is a JSON object on stdout with the same exit status', async () => {
    const r = await xcluster(['node', 'list', '--json', '--etcd', 'http://127.0.0.1:9'])
    assert.equal(r.code, 3)
    const body = r.json<{error: {code: string; exit: number; suggestion: string}}>()
    assert.equal(body.error.code, 'ETCD_UNREACHABLE')
    assert.equal(body.error.exit, 3)
    assert.ok(body.error.suggestion)
  })

  it('a bad flag is a usage error, exit 2', async () => {
    const r = await xcluster(['node', 'list', '--bogus'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /Error \[USAGE\]: Nonexistent flag: --bogus/)
  })

  it('NO_COLOR and --no-color leave no escape codes', async () => {
    const r = await xcluster(['node', 'list', '--no-color', '--etcd', 'http://127.0.0.1:9'])
    assert.ok(!(r.stderr + r.stdout).includes('\u001b['), 'an escape code was printed')
  })

  it('a destructive command without a TTY and without --yes refuses and says to re-run with --yes', async () => {
    const r = await xcluster(['lab', 'down'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /Error \[CONFIRMATION_REQUIRED\]/)
    assert.match(r.stderr, /Re-run with --yes/)
  })

  it('a missing --etcd-ca file, a bad --cluster, an empty --etcd: usage errors (exit 2) with a code and a next step', async () => {
    const cases: [string[], RegExp][] = [
      [['--etcd-ca', '/nonexistent/ca.pem'], /Error \[FLAG_INVALID\]: --etcd-ca: No file found at \/nonexistent\/ca\.pem[\s\S]*Try this: .*xcluster node list --help/],
      [['--cluster', 'Bad_Name'], /Error \[NAME_INVALID\]: Invalid cluster name: "Bad_Name"[\s\S]*Try this: A cluster name is lower-case/],
      [['--etcd', ''], /Error \[ETCD_ENDPOINT_INVALID\]: --etcd "": no endpoint given[\s\S]*Try this: .*--etcd http:\/\/127\.0\.0\.1:2379/],
      [['--etcd', 'ftp://x:1'], /Error \[ETCD_ENDPOINT_INVALID\]/],
      [['--concurrency', 'lots'], /Error \[USAGE\]: Nonexistent flag: --concurrency/],
    ]
    for (const [flags, message] of cases) {
      const r = await xcluster(['node', 'list', ...flags])
      assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message)
      assert.doesNotMatch(r.stderr, /INTERNAL|\n\s+at /)
    }
    const badInt = await xcluster(['node', 'drain', 's1', '--concurrency', 'lots'])
    assert.equal(badInt.code, 2, badInt.stderr)
    assert.match(badInt.stderr, /Error \[FLAG_INVALID\]: --concurrency: Expected an integer/)
  })

  it('an unknown command: a code, the closest commands and a next step, exit 2', async () => {
    const r = await xcluster(['nod', 'lst'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /Error \[UNKNOWN_COMMAND\]: Unknown command "nod lst"\. Closest: node list, /)
    assert.match(r.stderr, /Try this: See what node list does: xcluster node list --help/)
    const json = await xcluster(['nodes', 'list', '--json'])
    assert.equal(json.code, 2)
    assert.equal(json.json<{error: {code: string; details: {closest: string[]}}}>().error.details.closest[0], 'node list')
  })

  it('help, version and autocomplete (bash and zsh) work', async () => {
    const help = await xcluster(['help', 'node', 'list'])
    assert.equal(help.code, 0, help.stderr)
    assert.match(help.stdout, /List the cluster's nodes/)
    const version = await xcluster(['version'])
    assert.equal(version.code, 0, version.stderr)
    assert.match(version.stdout, /^xcluster\/\d+\.\d+\.\d+ /)
    const cache = mkdtempSync(join(tmpdir(), 'xct-autocomplete-'))
    try {
      for (const shell of ['bash', 'zsh']) {
        const setup = await xcluster(['autocomplete', shell], {env: {XCLUSTER_CACHE_DIR: cache}})
        assert.equal(setup.code, 0, setup.stderr)
        const script = await xcluster(['autocomplete', 'script', shell], {env: {XCLUSTER_CACHE_DIR: cache}})
        assert.equal(script.code, 0, script.stderr)
        assert.match(script.stdout, /XCLUSTER_AC_/)
      }
    } finally {
      rmSync(cache, {recursive: true, force: true})
    }
  })

  it('Ctrl-C at a confirmation prompt (a real terminal) exits 130 and changes nothing', async () => {
    const script = requireTool('script', 'bsdutils')
    const store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    const lease = {ip: '10.0.0.201', mac: '02:00:00:00:00:01', type: 'discovered', state: 'bound', expiresAt: new Date(Date.now() + 3_600_000).toISOString(), grantedBy: '10.0.0.2'}
    await store.put(store.keys.lease(lease.ip), lease)
    const before = await store.snapshot()
    // script(1) gives the CLI a pseudo-terminal; what we write to its stdin is typed there.
    const child = spawn(script, ['-qfec', `${process.execPath} ${BIN} dhcp release ${lease.ip} --etcd ${etcd.endpoint}`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {...process.env, NO_COLOR: '1'},
    })
    let out = ''
    let typed = false
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d) => {
        out += d
        if (!typed && /Release 10\.0\.0\.201, leased to 02:00:00:00:00:01\?/.test(out)) {
          typed = true
          child.stdin.write('\x03')
        }
      })
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      child.on('exit', (c) => {
        clearTimeout(timer)
        resolve(c)
      })
    })
    assert.ok(typed, `no prompt seen: ${JSON.stringify(out)}`)
    assert.equal(code, 130, out)
    assert.match(out, /Error \[INTERRUPTED\]: Interrupted at the prompt; nothing was changed\./)
    assert.match(out, /Try this: Run it again when ready: xcluster dhcp release 10\.0\.0\.201 --etcd /)
    assert.deepEqual(await store.snapshot(), before)
    await store.close()
  })
})
