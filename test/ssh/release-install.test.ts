import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {gunzipSync, gzipSync} from 'node:zlib'

import {installRelease, ReleaseInstallContext, type ReleaseTarget} from '../../src/lib/actions/release-install.js'
import {XclusterError} from '../../src/lib/errors.js'
import {releasePreflightPhase} from '../../src/lib/phases/release-preflight.js'
import {buildRelease, PACKAGE_ROOT, type ReleaseBundle} from '../../src/lib/release/bundle.js'
import {ReleaseDeployment} from '../../src/lib/release/deployment.js'
import {settings} from '../../src/lib/settings.js'
import {HostPool, SshHost} from '../../src/lib/ssh/index.js'
import {ByteRelay} from '../helpers/byte-relay.js'
import {startSshd, type TestSshd} from '../helpers/sshd.js'
import {requireTool} from '../helpers/tools.js'

// The release phases against a real sshd, installing into a fresh directory per test (the
// install root; / on a real node). Bytes are counted on the wire by a relay in front of sshd.
let sshd: TestSshd
let relay: ByteRelay
let checker: SshHost
let scratch: string
let cacheDir: string
let bundle: ReleaseBundle
let adminVersion: string

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'xc-release-test-'))
  cacheDir = join(scratch, 'cache')
  bundle = await buildRelease({cacheDir})
  sshd = await startSshd()
  relay = await new ByteRelay({host: '127.0.0.1', port: sshd.port}).start()
  checker = await SshHost.connect({name: 'checker', address: '127.0.0.1', port: sshd.port, user: 'root', privateKeyPath: sshd.clientKeyPath, hostKey: {pinned: [sshd.hostFingerprint]}})
  adminVersion = execFileSync(process.execPath, [join(PACKAGE_ROOT, 'bin', 'run.js'), '--version'], {encoding: 'utf8'}).trim()
})
after(async () => {
  await checker?.close()
  await relay?.close()
  await sshd?.stop()
  rmSync(scratch, {recursive: true, force: true})
})

const host = (name = 'node1'): ReleaseTarget => ({
  name,
  target: {name, address: '127.0.0.1', port: relay.port, user: 'root', privateKeyPath: sshd.clientKeyPath, hostKey: {pinned: [sshd.hostFingerprint]}},
})
const freshRoot = (): string => mkdtempSync(join(sshd.dir, 'root-'))
const base = (root: string): string => join(root, settings.release.baseDir)
/** The root the first test installed the real bundle into. */
let seed: string | undefined
const sh = async (command: string): Promise<string> => (await checker.run(command)).stdout.trim()

/** Installs `b` into `root` and returns the run's summary and the bytes it sent to the host. */
async function install(b: ReleaseBundle, root: string, options: {dryRun?: boolean; keep?: number} = {}) {
  const before = relay.sent
  const {summary} = await installRelease({hosts: [host()], bundle: b, root, ...options})
  return {summary, sent: relay.sent - before}
}

/** A stand-in runtime this host cannot use: a copy of `true`, patched to need a glibc that does not exist yet. */
function binaryNeedingNewerGlibc(): string {
  const content = readFileSync('/usr/bin/true')
  const at = content.indexOf(Buffer.from('GLIBC_2.'))
  assert.ok(at > 0, '/usr/bin/true names its glibc versions')
  content.write('GLIBC_9.', at, 'latin1')
  const path = join(scratch, 'needs-glibc-9')
  writeFileSync(path, content, {mode: 0o755})
  return path
}

/** A copy of this package with another version (node_modules shared through a symlink). */
function packageCopy(version: string): string {
  const dir = mkdtempSync(join(scratch, 'pkg-'))
  for (const entry of ['bin', 'dist', 'libexec', 'templates', 'oclif.manifest.json', 'package-lock.json']) cpSync(join(PACKAGE_ROOT, entry), join(dir, entry), {recursive: true})
  cpSync(join(PACKAGE_ROOT, 'package.json'), join(dir, 'package.json'))
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8'))
  if (version !== pkg.version) {
    writeFileSync(join(dir, 'package.json'), JSON.stringify({...pkg, version}, null, 2))
    const manifest = JSON.parse(readFileSync(join(dir, 'oclif.manifest.json'), 'utf8'))
    writeFileSync(join(dir, 'oclif.manifest.json'), JSON.stringify({...manifest, version}))
  }
  symlinkSync(join(PACKAGE_ROOT, 'node_modules'), join(dir, 'node_modules'))
  return dir
}

/**
 * A stand-in runtime: a script that runs this host's Node.js. Tests of the release's own handling
 * (switching, retention, damage) ship it instead of the 99 MB binary and upload kilobytes for it;
 * the real binary is what the first test, the concurrent and the sudo installs ship.
 */
function shimRuntime(tag: string): string {
  const path = join(scratch, `node-shim-${tag}`)
  writeFileSync(path, `#!/bin/sh\n# a stand-in Node.js runtime (${tag}) for tests\nexec ${process.execPath} "$@"\n`, {mode: 0o755})
  return path
}

const light = new Map<string, Promise<ReleaseBundle>>()
/** A release of this package as `version`, on the stand-in runtime `tag`. */
function lightBundle(version: string, tag = 'a'): Promise<ReleaseBundle> {
  const key = `${version}/${tag}`
  if (!light.has(key)) light.set(key, buildRelease({cacheDir, packageRoot: packageCopy(version), nodeBinary: shimRuntime(tag)}))
  return light.get(key)!
}

describe('release install over SSH', () => {
  it("installs the runtime, the release, current, libexec and the wrapper; the installed xcluster is the admin's version", async () => {
    const root = freshRoot()
    const {summary, sent} = await install(bundle, root)
    assert.equal(summary.result, 'succeeded', JSON.stringify(summary.hosts))
    seed = root
    assert.ok(summary.changed >= 5, `changes: ${JSON.stringify(summary.plan)}`)
    // The installed wrapper, run over SSH, is the same xcluster as the admin's.
    assert.equal(await sh(`${root}/usr/local/bin/xcluster --version`), adminVersion)
    assert.match(await sh(`${root}/usr/local/bin/xcluster --help`), /VERSION\n\s+xcluster\/0\.1\.0/)
    const b = base(root)
    assert.equal(await sh(`readlink ${b}/current`), `releases/${bundle.id}`)
    assert.equal(await sh(`readlink ${b}/releases/${bundle.id}/runtime`), `../../runtime/${bundle.runtime.dir}`)
    assert.equal(await sh(`sha256sum < ${b}/runtime/${bundle.runtime.dir}/bin/node | cut -c1-64`), bundle.runtime.sha256)
    assert.equal(await sh(`cat ${b}/releases/${bundle.id}/${settings.release.markerFile}`), bundle.sha256)
    assert.equal(await sh(`cd ${b}/releases/${bundle.id} && sha256sum --quiet --strict -c SHA256SUMS && echo intact`), 'intact')
    assert.equal(await sh(`readlink ${b}/libexec && test -x ${b}/libexec/xcluster-guardian && echo ok`), 'current/libexec\nok')
    assert.equal(await sh(`stat -c '%a %U' ${root}/usr/local/bin/xcluster`), '755 root')
    // What the wrapper runs: the pinned runtime, never the host's own node.
    assert.match(readFileSync(join(root, 'usr/local/bin/xcluster'), 'utf8'), new RegExp(`exec "${b}/current/runtime/bin/node" "${b}/current/bin/run.js" "\\$@"`))
    // Both archives crossed the wire once, compressed; no staging left behind.
    assert.ok(sent > bundle.runtime.archive.bytes + bundle.archive.bytes, `sent ${sent}`)
    assert.ok(sent < 1.1 * (bundle.runtime.archive.bytes + bundle.archive.bytes) + 1_000_000, `sent ${sent}`)
    assert.equal(await sh(`find ${b} -name '.incoming-*' | wc -l`), '0')

    // A re-run changes nothing and sends no archive: a few KB of commands.
    const again = await install(bundle, root)
    assert.equal(again.summary.result, 'succeeded')
    assert.equal(again.summary.changed, 0, JSON.stringify(again.summary.plan))
    assert.deepEqual(again.summary.plan, {})
    assert.ok(again.sent < 100_000, `a re-run sent ${again.sent} bytes`)
    // And so does a dry run of it.
    const planned = await install(bundle, root, {dryRun: true})
    assert.equal(planned.summary.result, 'planned')
    assert.deepEqual(planned.summary.plan, {})
  })

  it('--dry-run plans every step on a fresh host and changes nothing there', async () => {
    const root = freshRoot()
    const {summary, sent} = await install(bundle, root, {dryRun: true})
    assert.equal(summary.result, 'planned')
    const plan = summary.plan.node1
    assert.deepEqual(
      plan.map((p) => p.replace(/ \(upload .*\)$/, '').replaceAll(root, '')),
      [
        `install Node.js ${bundle.runtime.version} in /opt/xcluster/runtime/${bundle.runtime.dir}`,
        `install xcluster ${bundle.id} in /opt/xcluster/releases/${bundle.id}`,
        `link /opt/xcluster/current -> releases/${bundle.id}`,
        'link /opt/xcluster/libexec -> current/libexec',
        'create /usr/local/bin/xcluster',
      ],
    )
    assert.equal(summary.changed, 0)
    assert.deepEqual(readdirSync(root), [])
    assert.ok(sent < 100_000, `a dry run sent ${sent} bytes`)
  })

  it('builds the same bytes from the same inputs: other mtimes, another directory, and the release installed on a node', async () => {
    const copy = packageCopy(bundle.packageVersion)
    execFileSync('find', [copy, '-exec', 'touch', '-d', '2011-11-11', '{}', '+'])
    const rebuilt = await buildRelease({cacheDir, packageRoot: copy})
    assert.equal(rebuilt.build.releaseCached, false)
    assert.equal(rebuilt.sha256, bundle.sha256)
    assert.equal(rebuilt.id, bundle.id)
    // A provisioned node builds the identical release for the next one (s1 provisions s2 and s3).
    const b = base(seed!)
    const fromNode = await buildRelease({cacheDir: join(scratch, 'cache-node'), packageRoot: `${b}/current`, nodeBinary: `${b}/current/runtime/bin/node`})
    assert.equal(fromNode.id, bundle.id)
    assert.equal(fromNode.runtime.sha256, bundle.runtime.sha256)
    // The same call again in this process, and in a new one, comes from the cache.
    assert.equal((await buildRelease({cacheDir})).build.releaseCached, true)
  })

  it('refuses a host whose architecture the runtime is not built for, before uploading anything', async () => {
    const arm64 = await buildRelease({cacheDir, nodeBinary: '/usr/bin/true', runtimeIdentity: {version: 'v20.20.2', platform: 'linux', arch: 'arm64'}})
    const root = freshRoot()
    const {summary, sent} = await install(arm64, root)
    assert.equal(summary.result, 'failed')
    assert.equal(summary.hosts[0].failure?.phase, 'release-preflight')
    assert.match(
      summary.hosts[0].failure!.message,
      /^node1 is Linux x86_64; the Node\.js runtime xcluster ships \(the admin host's v20\.20\.2\) is built for linux arm64\. Try this: Provision node1 from an admin host of the same architecture \(x86_64\)/,
    )
    assert.deepEqual(readdirSync(root), [])
    assert.ok(sent < 100_000, `sent ${sent}`)
    // The error itself: a precondition (exit 3) with its code.
    const pool = new HostPool()
    try {
      const ctx = new ReleaseInstallContext([host()], false, pool, new ReleaseDeployment(arm64, {root}))
      await assert.rejects(releasePreflightPhase.run(ctx, host()), (e) => e instanceof XclusterError && e.code === 'RUNTIME_ARCH_MISMATCH' && e.exit === 3)
    } finally {
      await pool.closeAll()
    }
  })

  it('refuses a host whose libc cannot run the uploaded runtime, and leaves nothing behind', async () => {
    const binary = binaryNeedingNewerGlibc()
    const unusable = await buildRelease({cacheDir, nodeBinary: binary, runtimeIdentity: {version: 'v20.20.2', platform: 'linux', arch: process.arch}})
    const root = freshRoot()
    const {summary} = await install(unusable, root)
    assert.equal(summary.result, 'failed')
    assert.equal(summary.hosts[0].failure?.phase, 'runtime-install')
    assert.match(
      summary.hosts[0].failure!.message,
      /^The Node\.js v20\.20\.2 runtime \(linux x64\) does not run on node1 \(libc: glibc 2\.\d+\): .*version `GLIBC_9\.\d+' not found.*Nothing was installed\. Try this: /s,
    )
    assert.deepEqual(readdirSync(root), [], 'the directories made for the upload are gone too')
  })

  it('refuses a host without the disk space for the install, before uploading anything', async () => {
    const mount = requireTool('mount', 'mount')
    const root = freshRoot()
    execFileSync(mount, ['-t', 'tmpfs', '-o', 'size=64m', 'xc-release-test', root])
    try {
      const {summary, sent} = await install(bundle, root)
      assert.equal(summary.result, 'failed')
      assert.equal(summary.hosts[0].failure?.phase, 'release-preflight')
      assert.match(summary.hosts[0].failure!.message, /^node1 has 64\.0 MiB free for .*\/opt\/xcluster; installing xcluster \S+ needs \d+\.\d MiB plus 32\.0 MiB to spare\. Try this: Free space/)
      assert.deepEqual(readdirSync(root), [])
      assert.ok(sent < 100_000, `sent ${sent}`)
    } finally {
      execFileSync('umount', [root])
    }
  })

  it('installs on several hosts at once without holding the archives in memory', async () => {
    const roots = [freshRoot(), freshRoot(), freshRoot()]
    const rss: number[] = []
    const sampler = setInterval(() => rss.push(process.memoryUsage().rss), 20)
    const start = Date.now()
    const before = process.memoryUsage().rss
    const results = await Promise.all(roots.map((root) => install(bundle, root)))
    clearInterval(sampler)
    const ms = Date.now() - start
    for (const {summary} of results) assert.equal(summary.result, 'succeeded')
    for (const root of roots) assert.equal(await sh(`${root}/usr/local/bin/xcluster --version`), adminVersion)
    const growth = Math.max(...rss) - before
    const archives = bundle.runtime.archive.bytes + bundle.archive.bytes
    console.log(`# 3 hosts at once: ${ms} ms, ${(3 * archives) / 1e6} MB sent, peak RSS growth ${(growth / 1e6).toFixed(1)} MB`)
    // Three uploads that each held their archives would grow by 3 x 46 MB; streamed, it stays
    // within garbage-collector noise (0-20 MB measured). Fewer than two copies, whatever the GC does.
    assert.ok(growth < 2 * archives, `RSS grew ${growth} bytes for 3 uploads of ${archives} bytes each`)
  })
})

describe("one host through a release's life (each step starts where the last one left it)", () => {
  let root: string
  let first: ReleaseBundle
  let next: ReleaseBundle

  it('a new release installs beside the old one, switches current, and reuses the runtime already there', async () => {
    root = freshRoot()
    first = await lightBundle('0.1.0')
    next = await lightBundle('0.1.1-next')
    assert.notEqual(next.id, first.id)
    assert.equal(next.runtime.sha256, first.runtime.sha256)
    await install(first, root)
    const {summary, sent} = await install(next, root)
    assert.equal(summary.result, 'succeeded')
    assert.deepEqual(summary.plan.node1, [
      `install xcluster ${next.id} in ${base(root)}/releases/${next.id} (upload ${(next.archive.bytes / 1024 / 1024).toFixed(1)} MiB)`,
      `switch ${base(root)}/current from releases/${first.id} to releases/${next.id}`,
    ])
    // Only the release crossed the wire.
    assert.ok(sent > next.archive.bytes && sent < next.archive.bytes + 1_000_000, `sent ${sent}`)
    assert.equal(await sh(`ls ${base(root)}/releases`), [first.id, next.id].sort().join('\n'))
    assert.equal(await sh(`readlink ${base(root)}/current`), `releases/${next.id}`)
    assert.match(await sh(`${root}/usr/local/bin/xcluster --version`), /^xcluster\/0\.1\.1-next linux-x64 node-v/)
    // Back to the first: it is still there, so nothing is uploaded, only current moves.
    const back = await install(first, root)
    assert.deepEqual(back.summary.plan.node1, [`switch ${base(root)}/current from releases/${next.id} to releases/${first.id}`])
    assert.ok(back.sent < 100_000)
    assert.equal(await sh(`${root}/usr/local/bin/xcluster --version`), adminVersion)
  })

  it('refuses an upload damaged on the way (the tar changed under a valid gzip, or cut short), changing nothing', async () => {
    const damaged = await lightBundle('0.1.2-damaged')
    const tar = gunzipSync(readFileSync(damaged.archive.path))
    const offset = tar.indexOf(Buffer.from('"version": "0.1.2-damaged"'))
    assert.ok(offset > 0)
    tar.write('"version": "0.1.2-DAMAGED"', offset)
    const tampered = join(scratch, 'tampered.tar.gz')
    writeFileSync(tampered, gzipSync(tar))
    const truncated = join(scratch, 'truncated.tar.gz')
    writeFileSync(truncated, readFileSync(damaged.archive.path).subarray(0, 100_000))
    const listing = await sh(`find ${base(root)} | sort`)
    for (const path of [tampered, truncated]) {
      const {summary} = await install({...damaged, archive: {...damaged.archive, path}}, root)
      assert.equal(summary.result, 'failed')
      assert.equal(summary.hosts[0].failure?.phase, 'release-install')
      assert.match(summary.hosts[0].failure!.message, new RegExp(`The upload of xcluster ${damaged.id} to node1 arrived damaged and was refused \\(.*sha256 mismatch: expected ${damaged.sha256}`, 's'))
      assert.equal(await sh(`find ${base(root)} | sort`), listing, 'nothing added, nothing left behind')
      assert.equal(await sh(`${root}/usr/local/bin/xcluster --version`), adminVersion)
    }
  })

  it('replaces a release whose marker or files were changed, and a damaged runtime, found by their checksums', async () => {
    const rel = `${base(root)}/releases/${first.id}`
    const node = `${base(root)}/runtime/${first.runtime.dir}/bin/node`
    const cases = [
      {tamper: `echo 0000 > ${rel}/${settings.release.markerFile}`, what: 'xcluster', bytes: first.archive.bytes},
      {tamper: `echo '// changed' >> ${rel}/dist/base-command.js`, what: 'xcluster', bytes: first.archive.bytes},
      {tamper: `printf x >> ${node}`, what: 'Node.js', bytes: first.runtime.archive.bytes},
    ]
    for (const c of cases) {
      await sh(c.tamper)
      const {summary, sent} = await install(first, root)
      assert.equal(summary.result, 'succeeded')
      assert.equal(summary.plan.node1.length, 1, JSON.stringify(summary.plan))
      assert.match(summary.plan.node1[0], new RegExp(`^replace the damaged ${c.what} `), c.tamper)
      assert.ok(sent > c.bytes, `${c.tamper}: sent ${sent}`)
      assert.equal(await sh(`cat ${rel}/${settings.release.markerFile}`), first.sha256)
      assert.equal(await sh(`cd ${rel} && sha256sum --quiet --strict -c SHA256SUMS && sha256sum < ${node} | cut -c1-64`), first.runtime.sha256)
    }
    assert.equal((await install(first, root)).summary.changed, 0)
  })

  it('keeps `keep` releases, current among them, and the runtimes they use; removes stale staging directories', async () => {
    const b = base(root)
    // Releases on another runtime. `first` was installed last (its repair), `next` before it.
    const [third, fourth] = await Promise.all([lightBundle('0.2.3', 'b'), lightBundle('0.2.4', 'b')])
    assert.notEqual(third.runtime.dir, first.runtime.dir)
    assert.equal((await install(third, root, {keep: 2})).summary.result, 'succeeded')
    assert.equal(await sh(`ls ${b}/releases`), [first.id, third.id].sort().join('\n'))
    assert.equal(await sh(`ls ${b}/runtime`), [first.runtime.dir, third.runtime.dir].sort().join('\n'), 'the kept first release still uses its runtime')
    await sh(`mkdir ${b}/releases/.incoming-old ${b}/releases/.incoming-new && touch -d '2 hours ago' ${b}/releases/.incoming-old`)
    const {summary} = await install(fourth, root, {keep: 2})
    assert.deepEqual(
      summary.plan.node1.filter((p) => p.startsWith('remove')),
      [`remove release ${first.id}`, `remove runtime ${first.runtime.dir}`, 'remove 1 staging directory of interrupted uploads'],
    )
    assert.equal(await sh(`ls ${b}/releases`), [third.id, fourth.id].sort().join('\n'))
    assert.equal(await sh(`ls -a ${b}/releases | grep incoming`), '.incoming-new', 'a recent one may be a run in progress')
    assert.equal(await sh(`ls ${b}/runtime`), third.runtime.dir)
    assert.match(await sh(`${root}/usr/local/bin/xcluster --version`), /^xcluster\/0\.2\.4 /)
    // keep 1: only current is left.
    assert.equal((await install(fourth, root, {keep: 1})).summary.result, 'succeeded')
    assert.equal(await sh(`ls ${b}/releases`), fourth.id)
  })
})

describe('release install as a non-root login user with sudo', () => {
  const USER = 'xc-release-test'
  const SUDOERS = `/etc/sudoers.d/${USER}`
  let userSshd: TestSshd
  before(async () => {
    requireTool('sudo', 'sudo')
    requireTool('useradd', 'passwd')
    try {
      execFileSync('id', [USER], {stdio: 'ignore'})
    } catch {
      // '*' (not '!'): with UsePAM no, sshd refuses a locked account even for key logins.
      execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', '--password', '*', USER])
    }
    writeFileSync(SUDOERS, `${USER} ALL=(ALL) NOPASSWD: ALL\n`, {mode: 0o440})
    userSshd = await startSshd({user: USER})
  })
  after(async () => {
    await userSshd?.stop()
    rmSync(SUDOERS, {force: true})
    execFileSync('userdel', ['--remove', USER], {stdio: 'ignore'})
  })

  it('streams the archives through sudo and installs root-owned files the user can run', async () => {
    const root = mkdtempSync(join(userSshd.dir, 'root-'))
    execFileSync('chmod', ['755', root])
    const target: ReleaseTarget = {
      name: 'node2',
      target: {name: 'node2', address: '127.0.0.1', port: userSshd.port, user: USER, privateKeyPath: userSshd.clientKeyPath, hostKey: {pinned: [userSshd.hostFingerprint]}},
    }
    const {summary} = await installRelease({hosts: [target], bundle, root})
    assert.equal(summary.result, 'succeeded', JSON.stringify(summary.hosts))
    const ssh = await SshHost.connect(target.target)
    try {
      assert.equal((await ssh.run(`${root}/usr/local/bin/xcluster --version`)).stdout.trim(), adminVersion)
      assert.equal((await ssh.run('id -un')).stdout.trim(), USER)
      const owners = (await ssh.run(`find ${base(root)} ${root}/usr/local/bin/xcluster -printf '%u\\n' | sort -u`)).stdout.trim()
      assert.equal(owners, 'root')
      assert.equal((await installRelease({hosts: [target], bundle, root})).summary.changed, 0)
    } finally {
      await ssh.close()
    }
  })
})
