import {ExitStatus, XclusterError} from '../errors.js'
import {mib} from '../release/bundle.js'
import type {HostReleaseState, ReleasePhase} from '../release/deployment.js'
import {UNAME_MACHINES} from '../release/layout.js'
import {parseProbe, probeCommand} from '../release/remote.js'
import {settings} from '../settings.js'

/**
 * Reads what each host is and has before anything is uploaded: its architecture (refused when
 * the runtime cannot run on it), free disk space (refused when the install would not fit), and
 * whether the runtime and the release are already there intact (sha256 of the binary; the
 * release's marker, SHA256SUMS and every file against it). Read-only, so it runs in --dry-run.
 */
export const releasePreflightPhase: ReleasePhase = {
  id: 'release-preflight',
  title: 'Check what each host has of xcluster and whether it can run it',
  readOnly: true,
  async run(ctx, host) {
    const {bundle, layout} = ctx.release
    const ssh = await ctx.ssh(host)
    const probe = parseProbe((await ssh.run(probeCommand(layout, bundle), {sudo: true, timeoutMs: settings.release.probeTimeoutMs})).stdout)
    const machines = UNAME_MACHINES[bundle.runtime.arch] ?? []
    if (probe.kernel !== 'Linux' || !machines.includes(probe.machine)) {
      throw new XclusterError(
        `${host.name} is ${probe.kernel} ${probe.machine}; the Node.js runtime xcluster ships (the admin host's ${bundle.runtime.version}) is built for linux ${bundle.runtime.arch}.`,
        {
          code: 'RUNTIME_ARCH_MISMATCH',
          exit: ExitStatus.precondition,
          suggestion: `Provision ${host.name} from an admin host of the same architecture (${probe.machine}), or leave it out of this run.`,
          details: {host: host.name, kernel: probe.kernel, machine: probe.machine, runtimeArch: bundle.runtime.arch},
        },
      )
    }
    if (probe.conflicts.length > 0) {
      const paths = probe.conflicts.map((c) => (c === 'current' ? layout.current : layout.libexec))
      throw new XclusterError(
        `${paths.join(' and ')} on ${host.name} ${paths.length > 1 ? 'are' : 'is'} not a symlink; xcluster keeps ${paths.length > 1 ? 'them as links' : 'it as a link'} to the current release.`,
        {
          code: 'RELEASE_LAYOUT_CONFLICT',
          exit: ExitStatus.precondition,
          suggestion: `Move ${paths.join(' and ')} aside on ${host.name} (an older manual install or a mounted checkout), then run again.`,
          details: {host: host.name, paths},
        },
      )
    }
    const state: HostReleaseState = {
      machine: probe.machine,
      libc: probe.libc,
      freeBytes: probe.freeBytes,
      runtime: probe.runtimeSha === bundle.runtime.sha256 ? 'installed' : probe.runtimeSha === undefined ? 'absent' : 'damaged',
      release: releaseState(probe.release, bundle.sha256, bundle.sumsSha256, `../../runtime/${bundle.runtime.dir}`),
      ...(probe.current ? {current: probe.current.replace(/^releases\//, '').replace(/\/$/, '')} : {}),
      ...(probe.libexec ? {libexec: probe.libexec} : {}),
    }
    const needed = (state.runtime === 'installed' ? 0 : bundle.runtime.bytes) + (state.release === 'installed' ? 0 : bundle.bytes + bundle.archive.bytes)
    if (needed > 0 && probe.freeBytes < needed + settings.release.diskHeadroomBytes) {
      throw new XclusterError(
        `${host.name} has ${mib(probe.freeBytes)} free for ${layout.base}; installing xcluster ${bundle.id} needs ${mib(needed)} plus ${mib(settings.release.diskHeadroomBytes)} to spare.`,
        {
          code: 'RELEASE_DISK_FULL',
          exit: ExitStatus.precondition,
          suggestion: `Free space on the filesystem holding ${layout.base} on ${host.name} (old releases go once a new one is current), then run again.`,
          details: {host: host.name, freeBytes: probe.freeBytes, neededBytes: needed, headroomBytes: settings.release.diskHeadroomBytes},
        },
      )
    }
    ctx.release.setState(host, state)
  },
}

function releaseState(found: ReturnType<typeof parseProbe>['release'], sha256: string, sumsSha256: string, runtimeLink: string): HostReleaseState['release'] {
  if (!found) return 'absent'
  return found.marker === sha256 && found.sums === sumsSha256 && found.link === runtimeLink && found.tree === 'ok' ? 'installed' : 'damaged'
}
