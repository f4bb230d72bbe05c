import {posix} from 'node:path'

import {usageError} from '../errors.js'
import {settings} from '../settings.js'

/**
 * Where xcluster lives on a node, under an install root (/ on a real node; a directory in tests):
 *
 *   <base>/runtime/node-<version>-<sha12>/bin/node    the Node.js runtime, shared by releases
 *   <base>/releases/<id>/                             a release; its `runtime` links to its runtime
 *   <base>/releases/<id>/.xcluster-release            the release's sha256, written once verified
 *   <base>/current -> releases/<id>                   the release in use, switched atomically
 *   <base>/libexec -> current/libexec                 the guardian and lease revoker the serve unit runs
 *   /usr/local/bin/xcluster                           runs current/bin/run.js with current/runtime/bin/node
 */
export interface InstallLayout {
  root: string
  base: string
  releases: string
  runtimes: string
  current: string
  libexec: string
  wrapper: string
  release(id: string): string
  runtime(dir: string): string
}

export function installLayout(root = '/'): InstallLayout {
  if (!root.startsWith('/') || root.includes('\0') || /[\n\r]/.test(root))
    throw usageError(`Install root ${JSON.stringify(root)} must be an absolute path.`, 'Pass / for a real node, or an absolute directory.')
  const base = posix.join(root, settings.release.baseDir)
  const releases = posix.join(base, 'releases')
  const runtimes = posix.join(base, 'runtime')
  return {
    root,
    base,
    releases,
    runtimes,
    current: posix.join(base, 'current'),
    libexec: posix.join(base, 'libexec'),
    wrapper: posix.join(root, settings.serveUnit.bin),
    release: (id) => posix.join(releases, id),
    runtime: (dir) => posix.join(runtimes, dir),
  }
}

/** Node's architecture names as `uname -m` prints them on Linux. */
export const UNAME_MACHINES: Record<string, string[]> = {
  x64: ['x86_64'],
  arm64: ['aarch64', 'arm64'],
  arm: ['armv7l', 'armv6l', 'armv8l'],
  ia32: ['i686', 'i586', 'i386'],
  ppc64: ['ppc64le'],
  s390x: ['s390x'],
  riscv64: ['riscv64'],
  loong64: ['loongarch64'],
}
