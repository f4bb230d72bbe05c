import {createHash} from 'node:crypto'
import {existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {XclusterError} from '../errors.js'
import {settings} from '../settings.js'
import {labCacheDir} from './paths.js'
import {must, run} from './system.js'

/** The Debian mirror this machine already uses (deb822 sources), so debootstrap needs no new host. */
export function debianMirror(sourcesFile = '/etc/apt/sources.list.d/debian.sources', suite: string = settings.lab.suite): string {
  const text = existsSync(sourcesFile) ? readFileSync(sourcesFile, 'utf8') : ''
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (name: string) => stanza.match(new RegExp(`^${name}:\\s*(.+)$`, 'mi'))?.[1].trim()
    const suites = field('Suites')?.split(/\s+/) ?? []
    const uri = field('URIs')?.split(/\s+/)[0]
    if (uri && suites.includes(suite)) return uri
  }
  return 'http://deb.debian.org/debian'
}

/** The mirror URLs this machine's apt uses (every deb822 http(s) URI, without a trailing slash). */
export function mirrorUrls(sourcesDir = '/etc/apt/sources.list.d'): string[] {
  const urls = new Set<string>()
  for (const f of existsSync(sourcesDir) ? readdirSync(sourcesDir) : []) {
    for (const m of readFileSync(join(sourcesDir, f), 'utf8').matchAll(/^URIs:\s*(.+)$/gim)) {
      for (const uri of m[1].trim().split(/\s+/)) if (/^https?:\/\/[^/\s]+/.test(uri)) urls.add(uri.replace(/\/+$/, ''))
    }
  }
  return [...urls].sort()
}

/** Host names a node may fetch packages from through the proxy (every deb822 URI's host). */
export function mirrorHosts(sourcesDir = '/etc/apt/sources.list.d'): string[] {
  const hosts = new Set<string>()
  for (const f of existsSync(sourcesDir) ? readdirSync(sourcesDir) : []) {
    for (const m of readFileSync(join(sourcesDir, f), 'utf8').matchAll(/^URIs:\s*(.+)$/gim)) {
      for (const uri of m[1].trim().split(/\s+/)) {
        try {
          hosts.add(new URL(uri).hostname)
        } catch {
          // not a URL (e.g. cdrom:), nothing to allow
        }
      }
    }
  }
  if (hosts.size === 0) hosts.add('deb.debian.org')
  return [...hosts].sort()
}

/** The cache key: the suite and the include list decide what the root filesystem holds. */
export function rootfsCachePath(suite: string = settings.lab.suite, include: readonly string[] = settings.lab.rootfsInclude): string {
  const hash = createHash('sha256')
    .update(JSON.stringify({suite, include: [...include].sort()}))
    .digest('hex')
    .slice(0, 12)
  return join(labCacheDir(), `rootfs-${hash}`)
}

/**
 * Returns the shared, read-only lower layer for every node, building it once with debootstrap.
 * It is built in a temp dir and renamed into place, so a crash never leaves a half cache.
 */
export async function ensureRootfs(): Promise<{path: string; built: boolean}> {
  const path = rootfsCachePath()
  if (existsSync(join(path, 'etc', 'os-release'))) return {path, built: false}
  mkdirSync(labCacheDir(), {recursive: true})
  const tmp = `${path}.tmp-${process.pid}`
  rmSync(tmp, {recursive: true, force: true})
  const res = await run('debootstrap', ['--variant=minbase', `--include=${settings.lab.rootfsInclude.join(',')}`, settings.lab.suite, tmp, debianMirror()], {
    timeoutMs: settings.lab.rootfsBuildTimeoutMs,
  })
  if (res.code !== 0) {
    rmSync(tmp, {recursive: true, force: true})
    throw new XclusterError(`debootstrap failed (exit ${res.code}): ${(res.stderr || res.stdout).trim().slice(-1500)}`, {
      code: 'LAB_ROOTFS_FAILED',
      suggestion: `Check that ${debianMirror()} is reachable, then run lab up again.`,
    })
  }
  // Identity is per node: no shared host keys or machine-id; no package caches in the image.
  for (const f of readdirSync(join(tmp, 'etc', 'ssh'))) if (f.startsWith('ssh_host_')) rmSync(join(tmp, 'etc', 'ssh', f))
  writeFileSync(join(tmp, 'etc', 'machine-id'), '')
  await must('bash', ['-c', `rm -rf "${tmp}"/var/cache/apt/archives/*.deb "${tmp}"/var/lib/apt/lists/*`])
  renameSync(tmp, path)
  return {path, built: true}
}

/** Removes every cached root filesystem (lab down --purge). */
export function purgeRootfsCache(): void {
  rmSync(labCacheDir(), {recursive: true, force: true})
}
