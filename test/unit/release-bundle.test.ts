import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {gunzipSync} from 'node:zlib'

import {XclusterError} from '../../src/lib/errors.js'
import {buildRelease, type ReleaseBuildOptions} from '../../src/lib/release/bundle.js'
import {collectReleaseFiles} from '../../src/lib/release/files.js'
import {TAR_END, tarHeader, tarPadding, type TarEntry} from '../../src/lib/release/tar.js'
import {requireTool} from '../helpers/tools.js'

let scratch: string
before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'xc-release-unit-'))
})
after(() => rmSync(scratch, {recursive: true, force: true}))

const isError = (code: string) => (e: unknown) => e instanceof XclusterError && e.code === code

/** Writes files (path -> content; a leading 'x:' makes it executable). */
function tree(root: string, files: Record<string, string>, order: string[] = Object.keys(files)): string {
  for (const path of order) {
    const full = join(root, path)
    mkdirSync(dirname(full), {recursive: true})
    const content = files[path]
    writeFileSync(full, content.startsWith('x:') ? content.slice(2) : content)
    if (content.startsWith('x:')) chmodSync(full, 0o755)
  }
  return root
}

const LOCK = JSON.stringify({
  name: 'pkg',
  lockfileVersion: 3,
  packages: {
    '': {name: 'pkg', version: '1.2.3'},
    'node_modules/prod': {version: '1.0.0'},
    'node_modules/prod/node_modules/nested': {version: '2.0.0'},
    'node_modules/@scope/scoped': {version: '1.0.0'},
    'node_modules/devonly': {version: '1.0.0', dev: true},
    'node_modules/other-platform': {version: '1.0.0', optional: true},
  },
})

const PACKAGE: Record<string, string> = {
  'package.json': JSON.stringify({name: 'pkg', version: '1.2.3'}),
  'package-lock.json': LOCK,
  'oclif.manifest.json': '{}',
  'bin/run.js': 'x:#!/usr/bin/env node\n',
  'dist/index.js': 'export {}\n',
  'dist/.npmrc': '//registry.npmjs.org/:_authToken=secret\n',
  'libexec/helper': 'x:#!/bin/sh\n',
  'templates/a.conf': 'a = {{a}}\n',
  'src/index.ts': 'export {}\n',
  'test/index.test.ts': '',
  'bench/x.ts': '',
  '.lab/id_ed25519': 'not shipped\n',
  'node_modules/prod/package.json': '{}',
  'node_modules/prod/index.js': 'module.exports = 1\n',
  'node_modules/prod/test/fixture.key': 'a fixture\n',
  'node_modules/prod/.github/workflow.yml': '',
  'node_modules/prod/lib/test/helper.js': "kept: only a package's top-level tests are dropped\n",
  'node_modules/prod/node_modules/nested/index.js': '',
  'node_modules/@scope/scoped/index.js': '',
  'node_modules/devonly/index.js': '',
  'node_modules/.bin/prod': '',
  'node_modules/.cache/x': '',
}

const fakeRuntime: Pick<ReleaseBuildOptions, 'nodeBinary' | 'runtimeIdentity'> = {nodeBinary: '/usr/bin/true', runtimeIdentity: {version: 'v20.0.0', platform: 'linux', arch: 'x64'}}

describe('tar writer', () => {
  it('writes what GNU tar reads back: modes, fixed owner and time, long names and link targets', () => {
    const tar = requireTool('tar', 'tar')
    const long = `${'d'.repeat(90)}/${'e'.repeat(60)}/${'f'.repeat(90)}.js`
    const veryLong = `${'g'.repeat(150)}/${'h'.repeat(120)}`
    const target = `../${'t'.repeat(120)}`
    const entries: [TarEntry, Buffer?][] = [
      [{type: 'dir', path: 'bin', mode: 0o755}],
      [{type: 'file', path: 'bin/run', mode: 0o755, size: 3}, Buffer.from('abc')],
      [{type: 'file', path: long, mode: 0o644, size: 0}, Buffer.alloc(0)],
      [{type: 'file', path: veryLong, mode: 0o644, size: 600}, Buffer.alloc(600, 1)],
      [{type: 'symlink', path: 'link', target}],
    ]
    const archive = Buffer.concat([...entries.flatMap(([e, c]) => [tarHeader(e), ...(c ? [c, tarPadding(c.length)] : [])]), TAR_END])
    const file = join(scratch, 'test.tar')
    writeFileSync(file, archive)
    const listing = execFileSync(tar, ['--numeric-owner', '--full-time', '-tvf', file], {encoding: 'utf8'}).trim().split('\n')
    assert.equal(listing.length, 5)
    assert.match(listing[0], /^drwxr-xr-x 0\/0\s+0 2000-01-01 00:00:00 bin\/$/)
    assert.match(listing[1], /^-rwxr-xr-x 0\/0\s+3 2000-01-01 00:00:00 bin\/run$/)
    assert.ok(listing[2].endsWith(` ${long}`), listing[2])
    assert.ok(listing[3].endsWith(` ${veryLong}`), listing[3])
    assert.ok(listing[4].endsWith(` link -> ${target}`), listing[4])
    const out = mkdtempSync(join(scratch, 'x-'))
    mkdirSync(join(out, 'g'.repeat(150)))
    execFileSync(tar, ['-xf', file, '-C', out])
    assert.equal(readFileSync(join(out, 'bin/run'), 'utf8'), 'abc')
    assert.equal(readFileSync(join(out, veryLong)).length, 600)
  })
})

describe('release contents', () => {
  it("holds the built package and the lockfile's production dependencies, without tests, sources, caches or credentials", () => {
    const root = tree(mkdtempSync(join(scratch, 'pkg-')), PACKAGE)
    const source = collectReleaseFiles(root)
    assert.equal(source.version, '1.2.3')
    assert.deepEqual(
      source.files.map((f) => f.path),
      [
        'bin/run.js',
        'dist/index.js',
        'libexec/helper',
        'node_modules/@scope/scoped/index.js',
        'node_modules/prod/index.js',
        'node_modules/prod/lib/test/helper.js',
        'node_modules/prod/node_modules/nested/index.js',
        'node_modules/prod/package.json',
        'oclif.manifest.json',
        'package-lock.json',
        'package.json',
        'templates/a.conf',
      ],
    )
    const modes = Object.fromEntries(source.files.map((f) => [f.path, f.type === 'file' ? f.mode.toString(8) : 'link']))
    assert.equal(modes['bin/run.js'], '755')
    assert.equal(modes['dist/index.js'], '644')
  })

  it('refuses an unbuilt package, a missing lockfile or dependency, and a symlink out of the release', () => {
    const unbuilt = tree(mkdtempSync(join(scratch, 'pkg-')), {...PACKAGE, 'oclif.manifest.json': ''})
    rmSync(join(unbuilt, 'oclif.manifest.json'))
    assert.throws(
      () => collectReleaseFiles(unbuilt),
      (e) => isError('RELEASE_NOT_BUILT')(e) && /npm run build/.test((e as XclusterError).suggestion!),
    )
    const noLock = tree(mkdtempSync(join(scratch, 'pkg-')), PACKAGE)
    rmSync(join(noLock, 'package-lock.json'))
    assert.throws(() => collectReleaseFiles(noLock), isError('RELEASE_LOCKFILE_MISSING'))
    const missing = tree(mkdtempSync(join(scratch, 'pkg-')), PACKAGE)
    rmSync(join(missing, 'node_modules/prod/node_modules/nested'), {recursive: true})
    assert.throws(
      () => collectReleaseFiles(missing),
      (e) => isError('RELEASE_DEPENDENCY_MISSING')(e) && /node_modules\/prod\/node_modules\/nested/.test((e as Error).message),
    )
    const escaping = tree(mkdtempSync(join(scratch, 'pkg-')), PACKAGE)
    symlinkSync('/etc/passwd', join(escaping, 'dist/passwd'))
    assert.throws(
      () => collectReleaseFiles(escaping),
      (e) => isError('RELEASE_UNSUPPORTED_FILE')(e) && /dist\/passwd/.test((e as Error).message),
    )
  })

  it("takes an installed tree's hidden lockfile (npm install -g) and ships it as package-lock.json", () => {
    const root = tree(mkdtempSync(join(scratch, 'pkg-')), {...PACKAGE, 'node_modules/.package-lock.json': LOCK})
    rmSync(join(root, 'package-lock.json'))
    const source = collectReleaseFiles(root)
    assert.ok(source.lockfile.endsWith('node_modules/.package-lock.json'))
    assert.ok(source.files.some((f) => f.path === 'package-lock.json'))
  })

  it('refuses to ship a private key', async () => {
    const key = execFileSync(requireTool('openssl', 'openssl'), ['genpkey', '-algorithm', 'ed25519'], {encoding: 'utf8'})
    const root = tree(mkdtempSync(join(scratch, 'pkg-')), {...PACKAGE, 'templates/leaked.pem': key})
    await assert.rejects(
      buildRelease({packageRoot: root, cacheDir: join(scratch, 'cache-secret'), ...fakeRuntime}),
      (e) => isError('RELEASE_SECRET_FOUND')(e) && /templates\/leaked\.pem/.test((e as Error).message),
    )
  })

  it('refuses a runtime that is not built for Linux', async () => {
    const root = tree(mkdtempSync(join(scratch, 'pkg-')), PACKAGE)
    await assert.rejects(
      buildRelease({packageRoot: root, cacheDir: join(scratch, 'cache-darwin'), nodeBinary: '/usr/bin/true', runtimeIdentity: {version: 'v20.0.0', platform: 'darwin', arch: 'arm64'}}),
      isError('RUNTIME_UNSUPPORTED_PLATFORM'),
    )
  })
})

describe('release build', () => {
  it('gives the same bytes for the same content, whatever the mtimes and the order files were made in', async () => {
    const paths = Object.keys(PACKAGE)
    const a = tree(mkdtempSync(join(scratch, 'pkg-')), PACKAGE)
    const b = tree(mkdtempSync(join(scratch, 'pkg-')), PACKAGE, [...paths].reverse())
    execFileSync('find', [b, '-exec', 'touch', '-d', '2015-05-05', '{}', '+'])
    const first = await buildRelease({packageRoot: a, cacheDir: join(scratch, 'cache-a'), ...fakeRuntime})
    const second = await buildRelease({packageRoot: b, cacheDir: join(scratch, 'cache-b'), ...fakeRuntime})
    assert.equal(first.build.releaseCached, false)
    assert.equal(second.build.releaseCached, false)
    assert.equal(second.sha256, first.sha256)
    assert.equal(first.id, `1.2.3-${first.sha256.slice(0, 12)}`)
    assert.deepEqual(readFileSync(second.archive.path), readFileSync(first.archive.path))
    // What is inside: SHA256SUMS of every file, the runtime link, nothing else added.
    const tarText = gunzipSync(readFileSync(first.archive.path)).toString('latin1')
    assert.match(tarText, /runtime\0[^]*\.\.\/\.\.\/runtime\/node-v20\.0\.0-[0-9a-f]{12}/)
    // A changed byte or a changed mode is another release.
    writeFileSync(join(b, 'dist/index.js'), 'export {} \n')
    const changed = await buildRelease({packageRoot: b, cacheDir: join(scratch, 'cache-b'), ...fakeRuntime})
    assert.notEqual(changed.sha256, first.sha256)
    writeFileSync(join(b, 'dist/index.js'), 'export {}\n')
    chmodSync(join(b, 'templates/a.conf'), 0o755)
    const modeChanged = await buildRelease({packageRoot: b, cacheDir: join(scratch, 'cache-b'), ...fakeRuntime})
    assert.notEqual(modeChanged.sha256, first.sha256)
  })

  it('reuses a cached build in this process and in the next, and rebuilds a damaged cached archive', async () => {
    const root = tree(mkdtempSync(join(scratch, 'pkg-')), PACKAGE)
    const cacheDir = join(scratch, 'cache-reuse')
    const built = await buildRelease({packageRoot: root, cacheDir, ...fakeRuntime})
    assert.equal(built.build.releaseCached, false)
    assert.equal((await buildRelease({packageRoot: root, cacheDir, ...fakeRuntime})).build.releaseCached, true)
    // A new process finds it on disk; after a byte of the archive flips, it builds it again.
    const options = JSON.stringify({packageRoot: root, cacheDir, ...fakeRuntime})
    const inChild = (): {releaseCached: boolean; sha256: string} =>
      JSON.parse(
        execFileSync(
          process.execPath,
          [
            '--import',
            'tsx',
            '--input-type=module',
            '-e',
            `const {buildRelease} = await import(${JSON.stringify(join(import.meta.dirname, '../../src/lib/release/bundle.ts'))}); const b = await buildRelease(${options}); console.log(JSON.stringify({releaseCached: b.build.releaseCached, sha256: b.sha256}))`,
          ],
          {encoding: 'utf8', cwd: join(import.meta.dirname, '../..')},
        ),
      )
    assert.deepEqual(inChild(), {releaseCached: true, sha256: built.sha256})
    const damaged = readFileSync(built.archive.path)
    damaged[damaged.length - 20] ^= 0xff
    writeFileSync(built.archive.path, damaged)
    assert.deepEqual(inChild(), {releaseCached: false, sha256: built.sha256})
    assert.ok(readdirSync(cacheDir).every((f) => !f.startsWith('.tmp-')))
    // The mtime is not content, but it is an input: touching a file looks again, and finds the same release.
    utimesSync(join(root, 'dist/index.js'), new Date(2001, 1, 1), new Date(2001, 1, 1))
    const touched = await buildRelease({packageRoot: root, cacheDir, ...fakeRuntime})
    assert.equal(touched.build.releaseCached, false)
    assert.equal(touched.sha256, built.sha256)
  })
})
