import {createHash, randomBytes} from 'node:crypto'
import {execFileSync} from 'node:child_process'
import {createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, utimesSync, writeFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {dirname, isAbsolute, join} from 'node:path'
import {Readable, Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {fileURLToPath} from 'node:url'
import {createGzip} from 'node:zlib'

import {ExitStatus, usageError, XclusterError} from '../errors.js'
import {env, settings} from '../settings.js'
import {collectReleaseFiles, compare, type ReleaseFile, type ReleaseSource} from './files.js'
import {TAR_END, tarHeader, tarPadding, type TarEntry} from './tar.js'

/** The package root this code runs from (dist/lib/release or src/lib/release -> ../../..). */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

/** Bumped when the archive layout changes, so cached builds of the old layout are not reused. */
const FORMAT = 1

/** A compressed archive on the admin host, as uploaded. */
export interface ReleaseArchive {
  path: string
  bytes: number
  /** sha256 of the compressed bytes: checks a cached archive before it is used again. */
  sha256: string
  compression: 'gzip'
}

/** The Node.js runtime a release runs on: the admin host's own binary. */
export interface RuntimeBundle {
  /** As `node --version` prints it, e.g. v20.20.2. */
  version: string
  platform: string
  /** Node's name for it (x64, arm64, ...). */
  arch: string
  /** sha256 of the binary. */
  sha256: string
  bytes: number
  /** Its directory on a node: node-<version>-<first 12 hex of sha256>. */
  dir: string
  archive: ReleaseArchive
}

/**
 * One release of xcluster, ready to upload: the package with its production dependencies as a
 * deterministic tar (same inputs, same bytes), and the runtime it runs on.
 */
export interface ReleaseBundle {
  /** `<package version>-<first 12 hex of sha256>`: the release's directory on a node. */
  id: string
  name: string
  packageVersion: string
  /** sha256 of the uncompressed tar, verified on the node before anything is unpacked. */
  sha256: string
  /** Uncompressed bytes and the number of files and symlinks. */
  bytes: number
  files: number
  /** sha256 of the release's SHA256SUMS (its per-file checksums), so a node's copy can be trusted. */
  sumsSha256: string
  archive: ReleaseArchive
  runtime: RuntimeBundle
  /** How this call got it: from the admin host's cache or built now, and how long it took. */
  build: {runtimeCached: boolean; releaseCached: boolean; ms: number}
}

export interface ReleaseBuildOptions {
  /** The installed (or checked-out and built) package; default: the one running. */
  packageRoot?: string
  /** The Node.js binary to ship; default: the one running (process.execPath). */
  nodeBinary?: string
  /**
   * What `nodeBinary` is, when it cannot be asked (it does not run here: tests of a host that
   * cannot run it). Otherwise it is asked (`node -p`), or read from this process for its own binary.
   */
  runtimeIdentity?: {version: string; platform: string; arch: string}
  /** Where built archives are cached; default $XCLUSTER_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache, + xcluster/releases. */
  cacheDir?: string
  compressionLevel?: number
}

type CachedRuntime = Omit<RuntimeBundle, 'archive'> & {archive: Omit<ReleaseArchive, 'path'> & {file: string}}
type CachedRelease = Omit<ReleaseBundle, 'archive' | 'runtime' | 'build'> & {archive: Omit<ReleaseArchive, 'path'> & {file: string}}

const building = new Map<string, Promise<{value: unknown; cached: boolean}>>()

/**
 * The release of the installed package and the admin's Node.js, built once: a build whose inputs
 * (paths, sizes, modes, mtimes, the binary) match a cached one reuses its archives, and calls made
 * while a build runs share it. Content and checksum do not depend on mtimes or directory order.
 */
export async function buildRelease(options: ReleaseBuildOptions = {}): Promise<ReleaseBundle> {
  const started = Date.now()
  const cacheDir = options.cacheDir ?? defaultCacheDir()
  const level = options.compressionLevel ?? settings.release.compressionLevel
  if (!Number.isInteger(level) || level < 1 || level > 9) throw usageError(`Invalid gzip level ${level}.`, 'Use a level from 1 to 9.')
  mkdirSync(cacheDir, {recursive: true, mode: 0o700})
  const runtime = await cachedBuild(runtimeKey(options, level), cacheDir, 'runtime', () => buildRuntime(options, cacheDir, level))
  const source = collectReleaseFiles(options.packageRoot ?? PACKAGE_ROOT)
  const release = await cachedBuild(releaseKey(source, runtime.value, level), cacheDir, 'release', () => buildReleaseArchive(source, runtime.value, cacheDir, level))
  pruneCache(cacheDir)
  const {archive, ...rest} = release.value
  return {
    ...rest,
    archive: {...withoutFile(archive), path: join(cacheDir, archive.file)},
    runtime: {...runtime.value, archive: {...withoutFile(runtime.value.archive), path: join(cacheDir, runtime.value.archive.file)}},
    build: {runtimeCached: runtime.cached, releaseCached: release.cached, ms: Date.now() - started},
  }
}

/** Bytes as operators read them in plans and errors. */
export function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`
}

export function defaultCacheDir(): string {
  const own = process.env[env.cacheDir]
  if (own) return own
  const xdg = process.env.XDG_CACHE_HOME
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), settings.release.cacheSubdir)
}

/** Looks the key up in this process, then in the cache directory (checking the archive), else builds and records it. */
async function cachedBuild<T extends {archive: {file: string; bytes: number; sha256: string}}>(
  key: string,
  cacheDir: string,
  kind: string,
  build: () => Promise<T>,
): Promise<{value: T; cached: boolean}> {
  const memoKey = `${cacheDir}\0${key}`
  const shared = building.get(memoKey) as Promise<{value: T; cached: boolean}> | undefined
  // Built (or being built) earlier in this process: the same archives, nothing built again.
  if (shared) return {value: (await shared).value, cached: true}
  const pending = (async () => {
    const meta = join(cacheDir, `${kind}-${key.slice(0, 32)}.json`)
    const hit = await readCached<T>(meta, cacheDir)
    if (hit) return {value: hit, cached: true}
    const value = await build()
    writeAtomically(meta, `${JSON.stringify({format: FORMAT, ...value}, null, 2)}\n`)
    return {value, cached: false}
  })()
  building.set(memoKey, pending)
  pending.catch(() => building.delete(memoKey))
  return pending
}

async function readCached<T extends {archive: {file: string; bytes: number; sha256: string}}>(meta: string, cacheDir: string): Promise<T | undefined> {
  let value: T & {format?: number}
  try {
    value = JSON.parse(readFileSync(meta, 'utf8'))
  } catch {
    return undefined
  }
  const archive = join(cacheDir, value.archive?.file ?? '')
  if (value.format !== FORMAT || !existsSync(archive) || statSync(archive).size !== value.archive.bytes) return undefined
  // A damaged cached archive would fail on every node: check it here and build it again instead.
  if ((await sha256OfFile(archive)) !== value.archive.sha256) return undefined
  const now = new Date()
  utimesSync(meta, now, now)
  delete value.format
  return value
}

function runtimeKey(options: ReleaseBuildOptions, level: number): string {
  const binary = realpathSync(options.nodeBinary ?? process.execPath)
  const stat = statSync(binary)
  return sha256Json({format: FORMAT, level, binary, size: stat.size, mtimeMs: stat.mtimeMs, ino: stat.ino, identity: options.runtimeIdentity ?? null})
}

function releaseKey(source: ReleaseSource, runtime: CachedRuntime, level: number): string {
  const files = source.files.map((f) => (f.type === 'file' ? [f.path, f.mode, f.size, f.mtimeMs, f.ino] : [f.path, f.target]))
  return sha256Json({format: FORMAT, level, root: source.root, runtime: runtime.dir, files})
}

async function buildRuntime(options: ReleaseBuildOptions, cacheDir: string, level: number): Promise<CachedRuntime> {
  const binary = realpathSync(options.nodeBinary ?? process.execPath)
  const identity = options.runtimeIdentity ?? runtimeIdentity(binary)
  if (identity.platform !== 'linux') {
    throw new XclusterError(`The Node.js runtime ${binary} is built for ${identity.platform}; nodes run Linux.`, {
      code: 'RUNTIME_UNSUPPORTED_PLATFORM',
      exit: ExitStatus.precondition,
      suggestion: 'Run xcluster from a Linux admin host, whose own Node.js binary the nodes can run.',
      details: {binary, platform: identity.platform},
    })
  }
  const size = statSync(binary).size
  const raw = new HashTap()
  const compressed = new HashTap()
  const temp = join(cacheDir, `.tmp-${randomBytes(6).toString('hex')}`)
  try {
    await pipeline(createReadStream(binary), raw, createGzip({level}), compressed, createWriteStream(temp, {mode: 0o600}))
  } catch (error) {
    rmSync(temp, {force: true})
    throw error
  }
  if (raw.bytes !== size) {
    rmSync(temp, {force: true})
    throw changedError(binary)
  }
  const sha256 = raw.digest()
  const dir = `node-${identity.version}-${sha256.slice(0, 12)}`
  const gzSha = compressed.digest()
  const file = `${dir}.${gzSha.slice(0, 12)}.gz`
  renameSync(temp, join(cacheDir, file))
  return {...identity, sha256, bytes: size, dir, archive: {file, bytes: compressed.bytes, sha256: gzSha, compression: 'gzip'}}
}

function runtimeIdentity(binary: string): {version: string; platform: string; arch: string} {
  if (binary === realpathSync(process.execPath)) return {version: process.version, platform: process.platform, arch: process.arch}
  try {
    const out = execFileSync(binary, ['-p', 'JSON.stringify([process.version, process.platform, process.arch])'], {encoding: 'utf8', timeout: 10_000})
    const [version, platform, arch] = JSON.parse(out) as string[]
    return {version, platform, arch}
  } catch (error) {
    throw new XclusterError(`The Node.js binary ${binary} does not run here: ${(error as Error).message}.`, {
      code: 'RUNTIME_UNUSABLE',
      exit: ExitStatus.precondition,
      suggestion: 'Point at a Node.js 20 binary for Linux that runs on this host.',
      details: {binary},
    })
  }
}

/**
 * The release tar: every file and symlink of the source, the directories above them, SHA256SUMS
 * (each file's sha256) and `runtime`, a symlink to the runtime's directory. Entries sorted by
 * path, owner 0:0, one mtime, modes 0755/0644: the bytes follow from the content alone.
 */
async function buildReleaseArchive(source: ReleaseSource, runtime: CachedRuntime, cacheDir: string, level: number): Promise<CachedRelease> {
  for (const reserved of [settings.release.sumsFile, 'runtime', settings.release.markerFile]) {
    if (source.files.some((f) => f.path === reserved || f.path.startsWith(`${reserved}/`))) {
      throw new XclusterError(`The package at ${source.root} has its own ${reserved}, a name a release uses.`, {
        code: 'RELEASE_UNSUPPORTED_FILE',
        exit: ExitStatus.precondition,
        details: {path: reserved},
      })
    }
  }
  // Pass 1: each file's checksum (and the guard against shipping a private key).
  const sums = new Map<string, string>()
  for (const file of source.files) {
    if (file.type !== 'file') continue
    const content = readSourceFile(file)
    assertNoPrivateKey(file.path, content)
    sums.set(file.path, sha256(content))
  }
  const sumsContent = Buffer.from([...sums].map(([path, sum]) => `${sum}  ${path}\n`).join(''), 'utf8')
  const entries: (ReleaseFile | {type: 'sums'; path: string})[] = [
    ...source.files,
    {type: 'sums', path: settings.release.sumsFile},
    {type: 'symlink', path: 'runtime', target: `../../runtime/${runtime.dir}`},
  ]
  const dirs = new Set<string>()
  for (const e of entries) for (let d = dirname(e.path); d !== '.'; d = dirname(d)) dirs.add(d)
  const ordered: ((typeof entries)[number] | {type: 'dir'; path: string})[] = [...entries, ...[...dirs].map((path) => ({type: 'dir' as const, path}))]
  ordered.sort((a, b) => compare(a.path, b.path))

  // Pass 2: the tar, streamed through the checksum and gzip into the cache.
  async function* tar(): AsyncGenerator<Buffer> {
    for (const e of ordered) {
      if (e.type === 'dir') {
        yield tarHeader({type: 'dir', path: e.path, mode: 0o755})
      } else if (e.type === 'symlink') {
        yield tarHeader({type: 'symlink', path: e.path, target: e.target})
      } else {
        const content = e.type === 'sums' ? sumsContent : readSourceFile(e)
        if (e.type === 'file' && sha256(content) !== sums.get(e.path)) throw changedError(e.source)
        const header: TarEntry = {type: 'file', path: e.path, mode: e.type === 'file' ? e.mode : 0o644, size: content.length}
        yield Buffer.concat([tarHeader(header), content, tarPadding(content.length)])
      }
    }
    yield TAR_END
  }
  const raw = new HashTap()
  const compressed = new HashTap()
  const temp = join(cacheDir, `.tmp-${randomBytes(6).toString('hex')}`)
  try {
    await pipeline(Readable.from(tar()), raw, createGzip({level}), compressed, createWriteStream(temp, {mode: 0o600}))
  } catch (error) {
    rmSync(temp, {force: true})
    throw error
  }
  const tarSha = raw.digest()
  const id = `${source.version}-${tarSha.slice(0, 12)}`
  const gzSha = compressed.digest()
  const file = `xcluster-${id}.${gzSha.slice(0, 12)}.tar.gz`
  renameSync(temp, join(cacheDir, file))
  return {
    id,
    name: source.name,
    packageVersion: source.version,
    sha256: tarSha,
    bytes: raw.bytes,
    files: entries.length,
    sumsSha256: sha256(sumsContent),
    archive: {file, bytes: compressed.bytes, sha256: gzSha, compression: 'gzip'},
  }
}

function readSourceFile(file: Extract<ReleaseFile, {type: 'file'}>): Buffer {
  const content = readFileSync(file.source)
  if (content.length !== file.size) throw changedError(file.source)
  return content
}

const PEM_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n(?:[A-Za-z-]+: .*\r?\n)*\r?\n?[A-Za-z0-9+/=]{40}/

/** A release is copied to every node: a private key (a test fixture, an operator's key) must never be in one. */
function assertNoPrivateKey(path: string, content: Buffer): void {
  if (!content.includes('PRIVATE KEY-----')) return
  if (!PEM_KEY.test(content.toString('latin1'))) return
  throw new XclusterError(`${path} holds a private key; a release is copied to every node and must not carry one.`, {
    code: 'RELEASE_SECRET_FOUND',
    exit: ExitStatus.precondition,
    suggestion: `Remove the key from the package (or, for a dependency's fixture, reinstall it with npm ci), then build again.`,
    details: {path},
  })
}

/** Keeps the most recently used builds of each kind and the archives they name; removes the rest. */
function pruneCache(cacheDir: string): void {
  const entries = readdirSync(cacheDir)
  const used = new Set<string>()
  for (const kind of ['runtime', 'release']) {
    const metas = entries
      .filter((e) => e.startsWith(`${kind}-`) && e.endsWith('.json'))
      .map((e) => ({e, mtime: statSync(join(cacheDir, e)).mtimeMs}))
      .sort((a, b) => b.mtime - a.mtime)
    for (const [i, {e}] of metas.entries()) {
      if (i >= settings.release.cacheKeep) {
        rmSync(join(cacheDir, e), {force: true})
        continue
      }
      try {
        used.add((JSON.parse(readFileSync(join(cacheDir, e), 'utf8')) as {archive: {file: string}}).archive.file)
      } catch {
        rmSync(join(cacheDir, e), {force: true})
      }
    }
  }
  // Archives no build names any more; fresh ones may belong to a concurrent build not yet recorded.
  const cutoff = Date.now() - 10 * 60_000
  for (const e of entries) {
    if (!(e.endsWith('.gz') || e.startsWith('.tmp-')) || used.has(e)) continue
    const path = join(cacheDir, e)
    if (existsSync(path) && statSync(path).mtimeMs < cutoff) rmSync(path, {force: true})
  }
}

function writeAtomically(path: string, content: string): void {
  const temp = `${path}.tmp-${randomBytes(6).toString('hex')}`
  writeFileSync(temp, content, {mode: 0o600})
  renameSync(temp, path)
}

function withoutFile<T extends {file: string}>(archive: T): Omit<T, 'file'> {
  const {file: _file, ...rest} = archive
  return rest
}

function changedError(path: string): XclusterError {
  return new XclusterError(`${path} changed while the release was being built.`, {
    code: 'RELEASE_SOURCE_CHANGED',
    suggestion: 'Wait for the build or install that is changing the package to finish, then try again.',
    details: {path},
  })
}

/** Passes bytes through while counting and hashing them. */
class HashTap extends Transform {
  bytes = 0
  private readonly hash = createHash('sha256')

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.bytes += chunk.length
    this.hash.update(chunk)
    this.push(chunk)
    done()
  }

  digest(): string {
    return this.hash.digest('hex')
  }
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

function sha256(content: Buffer | string): string {
  return createHash('sha256').update(content).digest('hex')
}

function sha256Json(value: unknown): string {
  return sha256(JSON.stringify(value))
}
