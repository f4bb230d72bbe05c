import {settings} from '../settings.js'
import {must, run} from './system.js'

/** Host packages the lab needs; installs only the missing ones. Returns what was installed. */
export async function ensureHostPackages(packages: readonly string[] = settings.lab.hostPackages): Promise<string[]> {
  const res = await run('dpkg-query', ['-W', '-f=${Package} ${Status}\\n', ...packages])
  const installed = new Set(
    res.stdout
      .split('\n')
      .filter((l) => l.endsWith(' install ok installed'))
      .map((l) => l.split(' ')[0]),
  )
  const missing = packages.filter((p) => !installed.has(p))
  if (missing.length === 0) return []
  await must('apt-get', ['update', '-q'], {code: 'LAB_PACKAGES_FAILED'})
  await must('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], {
    code: 'LAB_PACKAGES_FAILED',
    env: {...process.env, DEBIAN_FRONTEND: 'noninteractive'},
  })
  return missing
}
