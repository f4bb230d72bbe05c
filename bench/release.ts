/**
 * Getting xcluster onto nodes: the release build (cold, then from the admin host's cache, each in
 * a fresh process) and the install of runtime + release on N hosts at once through a real sshd on
 * loopback (all phases: verification, version checks, switch), then the re-run that finds
 * everything in place. Beside it, the same archives piped by the OpenSSH client into gzip/tar on
 * the same hosts: the bare transfer and unpack, with no checksum, no check that it runs, no switch.
 *
 *   npx tsx bench/release.ts [hosts]
 */
import {execFileSync, spawn} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {installRelease} from '../src/lib/actions/release-install.js'
import {buildRelease, mib} from '../src/lib/release/bundle.js'
import {startSshd} from '../test/helpers/sshd.js'

const hosts = Number(process.argv[2] ?? 3)
const root = join(import.meta.dirname, '..')
const scratch = mkdtempSync(join(tmpdir(), 'xc-bench-release-'))
const cacheDir = join(scratch, 'cache')

/** buildRelease in a new process (nothing memoized), as a run of xcluster would call it. */
function buildInChild(): {ms: number; releaseCached: boolean; runtimeCached: boolean} {
  const code = `const {buildRelease} = await import(${JSON.stringify(join(root, 'src/lib/release/bundle.ts'))}); const b = await buildRelease({cacheDir: ${JSON.stringify(cacheDir)}}); console.log(JSON.stringify(b.build))`
  return JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {cwd: root, encoding: 'utf8'}))
}

const time = async (fn: () => Promise<unknown>): Promise<number> => {
  const t0 = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - t0) / 1e6
}

const run = (cmd: string, args: string[], stdinFile: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `"$0" "$@" < ${JSON.stringify(stdinFile)}`, cmd, ...args], {stdio: ['ignore', 'ignore', 'inherit']})
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))))
  })

const sshd = await startSshd()
try {
  const cold = buildInChild()
  const cached = buildInChild()
  const bundle = await buildRelease({cacheDir})
  const target = {address: '127.0.0.1', port: sshd.port, user: 'root', privateKeyPath: sshd.clientKeyPath, hostKey: {pinned: [sshd.hostFingerprint]}}
  const roots = Array.from({length: hosts}, () => mkdtempSync(join(sshd.dir, 'root-')))
  const installs = () => Promise.all(roots.map((r, i) => installRelease({hosts: [{name: `n${i}`, target: {...target, name: `n${i}`}}], bundle, root: r})))
  let changed = 0
  const first = await time(async () => {
    for (const {summary} of await installs()) if (summary.result !== 'succeeded') throw new Error(JSON.stringify(summary.hosts))
  })
  const again = await time(async () => {
    for (const {summary} of await installs()) changed += summary.changed
  })

  const knownHosts = join(scratch, 'known_hosts')
  writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`)
  const ssh = ['-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-i', sshd.clientKeyPath, '-p', String(sshd.port), 'root@127.0.0.1']
  const peerRoots = Array.from({length: hosts}, () => mkdtempSync(join(sshd.dir, 'peer-')))
  const peer = await time(() =>
    Promise.all(
      peerRoots.map(async (r) => {
        await run('ssh', [...ssh, `mkdir -p ${r}/rt ${r}/rel && gzip -dc > ${r}/rt/node`], bundle.runtime.archive.path)
        await run('ssh', [...ssh, `tar -xzf - -C ${r}/rel`], bundle.archive.path)
      }),
    ),
  )

  console.log(
    `release ${bundle.id}: ${bundle.files} files, ${mib(bundle.bytes)} -> ${mib(bundle.archive.bytes)} gzip; runtime Node.js ${bundle.runtime.version} ${mib(bundle.runtime.bytes)} -> ${mib(bundle.runtime.archive.bytes)} gzip`,
  )
  console.log(`build, cold (fresh process, empty cache)      ${cold.ms.toFixed(0).padStart(6)} ms   cached: runtime ${cold.runtimeCached}, release ${cold.releaseCached}`)
  console.log(`build, cached (fresh process)                 ${cached.ms.toFixed(0).padStart(6)} ms   cached: runtime ${cached.runtimeCached}, release ${cached.releaseCached}`)
  console.log(
    `xcluster install, ${hosts} hosts at once             ${first.toFixed(0).padStart(6)} ms   (${mib(hosts * (bundle.archive.bytes + bundle.runtime.archive.bytes))} sent, verified, checked, switched)`,
  )
  console.log(`xcluster re-run, ${hosts} hosts (no changes: ${changed})      ${again.toFixed(0).padStart(6)} ms   (runtime and release re-verified by sha256)`)
  console.log(`OpenSSH ssh | gzip/tar, ${hosts} hosts at once       ${peer.toFixed(0).padStart(6)} ms   (the same bytes, unverified)`)
  console.log(`ratio xcluster install / OpenSSH pipe: ${(first / peer).toFixed(1)}x`)
} finally {
  await sshd.stop()
  rmSync(scratch, {recursive: true, force: true})
}
