import {existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, realpathSync, type Stats} from 'node:fs'
import {join, posix} from 'node:path'

import {ExitStatus, XclusterError} from '../errors.js'
import {settings} from '../settings.js'

/** One file or symlink of a release, at its path inside the release directory. */
export type ReleaseFile = {type: 'file'; path: string; source: string; mode: number; size: number; mtimeMs: number; ino: number} | {type: 'symlink'; path: string; target: string}

export interface ReleaseSource {
  /** The package root, symlinks resolved. */
  root: string
  name: string
  version: string
  /** Sorted by path. */
  files: ReleaseFile[]
  /** The lockfile the production dependencies were taken from. */
  lockfile: string
}

interface LockEntry {
  dev?: boolean
  optional?: boolean
  devOptional?: boolean
  peer?: boolean
  link?: boolean
  extraneous?: boolean
}

/**
 * What a release of the package at `packageRoot` holds: the built package (settings.release.include)
 * and exactly the production dependencies its lockfile names (v2/v3 `packages`: entries marked
 * `dev` are left out), each without its own tests. Reads file metadata only, no contents.
 */
export function collectReleaseFiles(packageRoot: string): ReleaseSource {
  const root = realpathSync(packageRoot)
  const manifest = readPackageJson(root)
  for (const required of settings.release.required) {
    if (!existsSync(join(root, required))) {
      throw new XclusterError(`The xcluster package at ${root} is not built: ${required} is missing.`, {
        code: 'RELEASE_NOT_BUILT',
        exit: ExitStatus.precondition,
        suggestion: `Build it first: cd ${root} && npm run build`,
        details: {root, missing: required},
      })
    }
  }
  const files: ReleaseFile[] = []
  const walker = new Walker(files)
  for (const entry of settings.release.include) {
    const abs = join(root, entry)
    if (existsSync(abs)) walker.add(abs, entry)
  }
  const lockfile = findLockfile(root)
  // An installed tree's hidden lockfile goes in as package-lock.json: a node can build the same release again.
  if (!existsSync(join(root, 'package-lock.json'))) walker.add(lockfile, 'package-lock.json')
  const modules = join(root, 'node_modules')
  // A node_modules that is a symlink (a worktree sharing another's) is read where it points.
  const modulesRoot = existsSync(modules) ? realpathSync(modules) : modules
  for (const [key, entry] of Object.entries(readLockPackages(lockfile))) {
    if (!key.startsWith('node_modules/') || entry.dev || entry.extraneous) continue
    const dir = join(modulesRoot, key.slice('node_modules/'.length))
    if (entry.link) {
      throw new XclusterError(`The dependency ${key} is a link (a workspace or file: dependency), which a release cannot carry.`, {
        code: 'RELEASE_UNSUPPORTED_FILE',
        exit: ExitStatus.precondition,
        suggestion: 'Install xcluster from its package (npm ci, or npm install -g xcluster) so every dependency is a real directory.',
        details: {dependency: key},
      })
    }
    if (!existsSync(dir)) {
      // Optional dependencies for other platforms are never installed; a missing required one is a broken tree.
      if (entry.optional || entry.devOptional) continue
      throw new XclusterError(`The production dependency ${key} named in ${lockfile} is not installed.`, {
        code: 'RELEASE_DEPENDENCY_MISSING',
        exit: ExitStatus.precondition,
        suggestion: `Reinstall the dependencies: cd ${root} && npm ci`,
        details: {dependency: key, lockfile},
      })
    }
    walker.add(dir, key, {package: true})
  }
  files.sort((a, b) => compare(a.path, b.path))
  return {root, name: manifest.name, version: manifest.version, files, lockfile}
}

/** Byte order of the paths (ASCII in practice), the same on every machine. */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

class Walker {
  private readonly exclude = new Set<string>(settings.release.excludeNames)
  private readonly packageExclude = new Set<string>(settings.release.excludePackageDirs)

  constructor(private readonly files: ReleaseFile[]) {}

  /** Adds `abs` at release path `rel`; a package directory leaves out its nested node_modules (listed on their own) and its tests. */
  add(abs: string, rel: string, options: {package?: boolean} = {}): void {
    const stat = lstatSync(abs)
    if (stat.isDirectory()) {
      for (const entry of readdirSync(abs)) {
        if (this.exclude.has(entry) || entry.startsWith('.env')) continue
        if (options.package && (entry === 'node_modules' || this.packageExclude.has(entry))) continue
        this.add(join(abs, entry), `${rel}/${entry}`)
      }
      return
    }
    assertPlainName(rel)
    if (stat.isSymbolicLink()) return this.addSymlink(abs, rel)
    if (!stat.isFile()) throw unsupported(rel, 'is neither a file, a directory nor a symlink')
    this.files.push({type: 'file', path: rel, source: abs, mode: fileMode(stat), size: stat.size, mtimeMs: stat.mtimeMs, ino: stat.ino})
  }

  private addSymlink(abs: string, rel: string): void {
    const target = readlinkSync(abs)
    const resolved = posix.normalize(posix.join(posix.dirname(rel), target))
    if (target.startsWith('/') || resolved.startsWith('../') || resolved === '..') throw unsupported(rel, `is a symlink to ${target}, outside the release`)
    this.files.push({type: 'symlink', path: rel, target})
  }
}

/** Modes are normalized: executable or not, never group/other-writable, never setuid. */
function fileMode(stat: Stats): number {
  return stat.mode & 0o111 ? 0o755 : 0o644
}

/** sha256sum escapes names with a backslash or newline; a release has none. */
function assertPlainName(rel: string): void {
  if (/[\\\n\r\0]/.test(rel)) throw unsupported(rel, 'has a backslash or a line break in its name')
}

function unsupported(rel: string, why: string): XclusterError {
  return new XclusterError(`Cannot put ${rel} into a release: it ${why}.`, {
    code: 'RELEASE_UNSUPPORTED_FILE',
    exit: ExitStatus.precondition,
    suggestion: 'Reinstall the package (npm ci) so its tree holds only plain files, directories and symlinks within it.',
    details: {path: rel},
  })
}

function readPackageJson(root: string): {name: string; version: string} {
  const path = join(root, 'package.json')
  let parsed: {name?: unknown; version?: unknown}
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    throw new XclusterError(`Cannot read ${path}: ${(error as Error).message}.`, {
      code: 'RELEASE_NOT_BUILT',
      exit: ExitStatus.precondition,
      suggestion: 'Build a release from an installed or checked-out xcluster package (its root holds package.json).',
      details: {path},
    })
  }
  if (typeof parsed.name !== 'string' || typeof parsed.version !== 'string' || !/^[0-9A-Za-z.+-]+$/.test(parsed.version)) {
    throw new XclusterError(`${path} has no usable name and version.`, {code: 'RELEASE_NOT_BUILT', exit: ExitStatus.precondition, details: {path}})
  }
  return {name: parsed.name, version: parsed.version}
}

/** package-lock.json, else npm-shrinkwrap.json, else npm's hidden lockfile of an installed tree. */
function findLockfile(root: string): string {
  for (const candidate of ['package-lock.json', 'npm-shrinkwrap.json', join('node_modules', '.package-lock.json')]) {
    const path = join(root, candidate)
    if (existsSync(path)) return path
  }
  throw new XclusterError(`No lockfile in ${root}: a release takes its production dependencies from package-lock.json.`, {
    code: 'RELEASE_LOCKFILE_MISSING',
    exit: ExitStatus.precondition,
    suggestion: `Install the dependencies with npm 7 or later (it writes the lockfile): cd ${root} && npm install`,
    details: {root},
  })
}

function readLockPackages(path: string): Record<string, LockEntry> {
  let lock: {lockfileVersion?: number; packages?: Record<string, LockEntry>}
  try {
    lock = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    throw new XclusterError(`Cannot read the lockfile ${path}: ${(error as Error).message}.`, {code: 'RELEASE_LOCKFILE_MISSING', exit: ExitStatus.precondition, details: {path}})
  }
  if (!lock.packages || (lock.lockfileVersion ?? 1) < 2) {
    throw new XclusterError(`The lockfile ${path} (version ${lock.lockfileVersion ?? 1}) has no "packages" section.`, {
      code: 'RELEASE_LOCKFILE_MISSING',
      exit: ExitStatus.precondition,
      suggestion: 'Regenerate it with npm 7 or later: npm install --package-lock-only',
      details: {path},
    })
  }
  return lock.packages
}
