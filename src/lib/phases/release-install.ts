import {createReadStream} from 'node:fs'

import {mib} from '../release/bundle.js'
import type {ReleasePhase} from '../release/deployment.js'
import {installReleaseCommand} from '../release/remote.js'
import {settings} from '../settings.js'
import {uploadError} from './runtime-install.js'

/**
 * Puts the release in releases/<id>/ unless the node has it intact: the gzipped tar is streamed
 * from the admin host's cache, its sha256 checked on the node before it is unpacked, the marker
 * written, and the directory renamed into place. A damaged copy is replaced whole.
 */
export const releaseInstallPhase: ReleasePhase = {
  id: 'release-install',
  title: 'Install the xcluster release',
  async run(ctx, host) {
    const {bundle, layout} = ctx.release
    const state = ctx.release.stateOf(host)
    if (state.release === 'installed') return
    const verb = state.release === 'damaged' ? 'replace the damaged' : 'install'
    await ctx.wet(host, `${verb} xcluster ${bundle.id} in ${layout.release(bundle.id)} (upload ${mib(bundle.archive.bytes)})`, async () => {
      const ssh = await ctx.ssh(host)
      const result = await ssh.exec(installReleaseCommand(layout, bundle), {sudo: true, input: createReadStream(bundle.archive.path), timeoutMs: settings.release.uploadTimeoutMs})
      if (result.code !== 0) throw uploadError(host.name, `xcluster ${bundle.id}`, result)
      state.release = 'installed'
    })
  },
}
