import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, it} from 'node:test'

import {XclusterError} from '../../src/lib/errors.js'
import {assertFingerprint, fingerprintOfPublicKey, isFingerprint} from '../../src/lib/ssh/fingerprint.js'
import {parseKeyValueLines, remoteCommand, shellQuote} from '../../src/lib/ssh/shell.js'
import {requireTool} from '../helpers/tools.js'

const keygen = requireTool('ssh-keygen', 'openssh-client')
const dir = mkdtempSync(join(tmpdir(), 'xc-fp-'))
after(() => rmSync(dir, {recursive: true, force: true}))

describe('fingerprintOfPublicKey', () => {
  for (const [type, bits] of [
    ['ed25519', []],
    ['ecdsa', ['-b', '256']],
    ['rsa', ['-b', '2048']],
  ] as const) {
    it(`equals ssh-keygen -lf for a ${type} key`, () => {
      const file = join(dir, `key_${type}`)
      execFileSync(keygen, ['-q', '-t', type, ...bits, '-N', '', '-C', 'a comment with spaces', '-f', file])
      const expected = execFileSync(keygen, ['-lf', `${file}.pub`], {encoding: 'utf8'}).split(' ')[1]
      const line = readFileSync(`${file}.pub`, 'utf8')
      assert.match(expected, /^SHA256:/)
      assert.equal(fingerprintOfPublicKey(line), expected)
      assert.equal(isFingerprint(expected), true)
      // Cut short (a paste that lost its end) is refused, not fingerprinted.
      const [keyType, base64] = line.split(' ') as [string, string]
      for (const keep of [24, 40, base64.length - 8]) assert.throws(() => fingerprintOfPublicKey(`${keyType} ${base64.slice(0, keep)}`), XclusterError, `kept ${keep}`)
    })
  }

  it('refuses something that is not a public key line', () => {
    for (const bad of ['', 'ssh-ed25519', 'ssh-ed25519 !!!', 'ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA==', '-----BEGIN OPENSSH PRIVATE KEY-----']) {
      assert.throws(
        () => fingerprintOfPublicKey(bad),
        (e: unknown) => e instanceof XclusterError && e.code === 'USAGE',
        bad,
      )
    }
  })

  it('validates fingerprints', () => {
    assert.throws(() => assertFingerprint('MD5:aa:bb'), /Invalid host key fingerprint/)
    assert.throws(() => assertFingerprint('SHA256:short'), /Invalid host key fingerprint/)
  })
})

describe('remote command wrapping', () => {
  it('quotes words so the shell sees them literally', () => {
    assert.equal(shellQuote('plain/path-1.conf'), 'plain/path-1.conf')
    assert.equal(shellQuote("it's $HOME"), `'it'\\''s $HOME'`)
    const out = execFileSync('sh', ['-c', `printf %s ${shellQuote("a 'b' $c `d` \\e")}`], {encoding: 'utf8'})
    assert.equal(out, "a 'b' $c `d` \\e")
  })

  it('wraps in sudo -n only for a non-root user who asks for it', () => {
    assert.equal(remoteCommand('id -u', 'root', {sudo: true}), 'id -u')
    assert.equal(remoteCommand('id -u', 'deploy', {sudo: false}), 'id -u')
    assert.equal(remoteCommand('id -u', 'deploy', {sudo: true}), `sudo -n -- sh -c 'id -u'`)
    assert.equal(remoteCommand('echo "$A"', 'deploy', {sudo: true, env: {A: "x'y"}}), `sudo -n -- sh -c 'export A='\\''x'\\''\\'\\'''\\''y'\\''; echo "$A"'`)
  })

  it('puts the remote deadline inside sudo so it can kill root processes', () => {
    assert.equal(remoteCommand('sleep 9', 'root', {killAfterMs: 1500}), `timeout -s KILL 1.5 sh -c 'sleep 9'`)
    assert.equal(remoteCommand('sleep 9', 'deploy', {sudo: true, killAfterMs: 2000}), `sudo -n -- timeout -s KILL 2 sh -c 'sleep 9'`)
    const started = Date.now()
    execFileSync('sh', ['-c', `${remoteCommand('sleep 5; echo late', 'root', {killAfterMs: 200})} || true`], {stdio: 'ignore'})
    assert.ok(Date.now() - started < 2000)
  })

  it('runs the wrapped command with its environment through a real shell', () => {
    const wire = remoteCommand('printf "%s|%s" "$A" "$B"', 'root', {env: {A: "it's", B: 'two words $x'}})
    assert.equal(execFileSync('sh', ['-c', wire], {encoding: 'utf8'}), "it's|two words $x")
  })

  it('refuses an invalid environment variable name', () => {
    assert.throws(() => remoteCommand('true', 'root', {env: {'A;rm -rf /': 'x'}}), /Invalid environment variable name/)
  })
})

describe('KEY=VALUE output', () => {
  it('reads each line as a key and the rest after the first = as its value', () => {
    assert.deepEqual(parseKeyValueLines('ActiveState=inactive\nConditionTimestamp=\nos=debian 12\nExecStart=a=b\n'), {
      ActiveState: 'inactive',
      ConditionTimestamp: '',
      os: 'debian 12',
      ExecStart: 'a=b',
    })
  })
})
