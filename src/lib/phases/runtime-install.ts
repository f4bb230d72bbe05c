import {createReadStream} from 'node:fs'

import {ExitStatus, XclusterError} from '../errors.js'
import {mib} from '../release/bundle.js'
import type {ReleasePhase} from '../release/deployment.js'
import {installRuntimeCommand, RemoteExit} from '../release/remote.js'
import {settings} from '../settings.js'
import type {ExecResult} from '../ssh/index.js'

/**
 * Puts the Node.js runtime in its versioned directory, unless the node has it intact: the
 * gzipped binary is streamed from the admin host's cache, its sha256 checked, and the binary
 * run (`node --version`) before it is renamed into place. A host whose libc cannot run it is
 * refused with nothing left behind.
 */
export const runtimeInstallPhase: ReleasePhase = {
  id: 'runtime-install',
  title: 'Install the Node.js runtime',
  async run(ctx, host) {
    const {bundle, layout} = ctx.release
    const state = ctx.release.stateOf(host)
    if (state.runtime === 'installed') return
    const rt = bundle.runtime
    const verb = state.runtime === 'damaged' ? 'replace the damaged' : 'install'
    await ctx.wet(host, `${verb} Node.js ${rt.version} in ${layout.runtime(rt.dir)} (upload ${mib(rt.archive.bytes)})`, async () => {
      const ssh = await ctx.ssh(host)
      const result = await ssh.exec(installRuntimeCommand(layout, bundle), {sudo: true, input: createReadStream(rt.archive.path), timeoutMs: settings.release.uploadTimeoutMs})
      if (result.code !== 0) throw uploadError(host.name, 'the Node.js runtime', result, state.libc, rt.version, rt.arch)
      state.runtime = 'installed'
    })
  },
}

/** The operator-facing error for a failed runtime or release upload, by the script's exit code. */
export function uploadError(host: string, what: string, result: ExecResult, libc?: string, version?: string, arch?: string): XclusterError {
  const reason = result.stderr.trim().split('\n').slice(-5).join('\n') || `exit ${result.code ?? result.signal}`
  const details = {host, code: result.code, stderr: reason}
  if (result.code === RemoteExit.checksum) {
    return new XclusterError(`The upload of ${what} to ${host} arrived damaged and was refused (${reason}); nothing was installed.`, {
      code: 'RELEASE_CHECKSUM_MISMATCH',
      suggestion: "Run again (the admin host re-checks its cached archive); if it recurs, check the host's disk and memory.",
      details,
    })
  }
  if (result.code === RemoteExit.runtimeUnusable) {
    return new XclusterError(`The Node.js ${version} runtime (linux ${arch}) does not run on ${host} (libc: ${libc}): ${reason}. Nothing was installed.`, {
      code: 'RUNTIME_UNUSABLE',
      exit: ExitStatus.precondition,
      suggestion: `Provision ${host} from an admin host whose Node.js binary it can run: the same architecture and a glibc no newer than the host's (Debian 12 or later).`,
      details,
    })
  }
  return new XclusterError(`Could not install ${what} on ${host}: ${reason}. Nothing was installed.`, {
    code: 'RELEASE_INSTALL_FAILED',
    suggestion: `Check the filesystem holding the install on ${host} (space, permissions, read-only mounts), then run again.`,
    details,
  })
}
