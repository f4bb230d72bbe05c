import {readFileSync, writeFileSync} from 'node:fs'

import {settings} from '../settings.js'
import {must, run} from './system.js'

/** The packages of `packages` that are not installed (read-only: dpkg's database). */
export async function missingHostPackages(packages: readonly string[] = settings.lab.hostPackages): Promise<string[]> {
  const res = await run('dpkg-query', ['-W', '-f=${Package} ${Status}\\n', ...packages])
  const installed = new Set(
    res.stdout
      .split('\n')
      .filter((l) => l.endsWith(' install ok installed'))
      .map((l) => l.split(' ')[0]),
  )
  return packages.filter((p) => !installed.has(p))
}

/** Host packages the lab needs; installs only the missing ones. Returns what was installed. */
export async function ensureHostPackages(packages: readonly string[] = settings.lab.hostPackages): Promise<string[]> {
  const missing = await missingHostPackages(packages)
  if (missing.length === 0) return []
  await must('apt-get', ['update', '-q'], {code: 'LAB_PACKAGES_FAILED'})
  await must('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], {
    code: 'LAB_PACKAGES_FAILED',
    env: {...process.env, DEBIAN_FRONTEND: 'noninteractive'},
  })
  return missing
}

const INOTIFY_INSTANCES = '/proc/sys/fs/inotify/max_user_instances'

/**
 * Every node's systemd, journald, logind and dbus run as the same root uid, and inotify
 * instances are counted per uid machine-wide: the default 128 starves a lab of ~20 nodes
 * ("Failed to create inotify object", boot stuck in initializing). Raise it, never lower it.
 */
export function ensureHostLimits(nodeCount: number): {inotifyInstances: number} {
  const current = Number(readFileSync(INOTIFY_INSTANCES, 'utf8').trim())
  const wanted = settings.lab.inotifyInstancesBase + settings.lab.inotifyInstancesPerNode * nodeCount
  if (current < wanted) writeFileSync(INOTIFY_INSTANCES, `${wanted}\n`)
  return {inotifyInstances: Math.max(current, wanted)}
}
