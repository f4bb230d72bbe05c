import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {xcluster} from '../helpers/cli.js'
import {startEtcd, type TestEtcd} from '../helpers/etcd.js'

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
    assert.doesNotMatch(r.stderr + r.stdout, /\u001b\[/)
  })

  it('a destructive command without a TTY and without --yes refuses and says to re-run with --yes', async () => {
    const r = await xcluster(['lab', 'down'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /Error \[CONFIRMATION_REQUIRED\]/)
    assert.match(r.stderr, /Re-run with --yes/)
  })
})
