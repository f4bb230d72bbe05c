import {posix} from 'node:path'

import {XclusterError} from '../errors.js'
import type {ReleasePhase} from '../release/deployment.js'
import {releaseVersionCommand, switchLinkCommand} from '../release/remote.js'
import {renderTemplate} from '../render/template.js'
import {ensureFile} from './ensure-file.js'

/**
 * Makes the installed release the one that runs: checks that it starts (its own `--version`,
 * with its runtime), then points `current` at it with one rename, links `libexec` (the serve
 * unit's guardian and lease revoker) through `current`, and writes the `xcluster` wrapper on PATH.
 */
export const releaseActivatePhase: ReleasePhase = {
  id: 'release-activate',
  title: 'Switch to the release',
  async run(ctx, host) {
    const {bundle, layout} = ctx.release
    const state = ctx.release.stateOf(host)
    const ssh = await ctx.ssh(host)
    const target = `releases/${bundle.id}`
    if (state.current !== bundle.id) {
      const what = state.current ? `switch ${layout.current} from releases/${state.current} to ${target}` : `link ${layout.current} -> ${target}`
      await ctx.wet(host, what, async () => {
        const check = await ssh.exec(releaseVersionCommand(layout, bundle), {sudo: true})
        const expected = `${bundle.name}/${bundle.packageVersion} `
        if (check.code !== 0 || !check.stdout.startsWith(expected) || !check.stdout.includes(`node-${bundle.runtime.version}`)) {
          const said = (check.stdout + check.stderr).trim().split('\n').slice(-5).join('\n')
          throw new XclusterError(`xcluster ${bundle.id} does not start on ${host.name} (\`xcluster --version\` said: ${said || `exit ${check.code}`}); ${layout.current} was left as it was.`, {
            code: 'RELEASE_UNUSABLE',
            suggestion: `Look at ${layout.release(bundle.id)} on ${host.name}; running again re-verifies it and replaces a damaged copy.`,
            details: {host: host.name, release: bundle.id, code: check.code, output: said},
          })
        }
        await ssh.run(switchLinkCommand(layout.current, target), {sudo: true})
        state.current = bundle.id
      })
    }
    const libexecTarget = posix.join(posix.basename(layout.current), 'libexec')
    if (state.libexec !== libexecTarget) {
      await ctx.wet(host, `link ${layout.libexec} -> ${libexecTarget}`, async () => {
        await ssh.run(switchLinkCommand(layout.libexec, libexecTarget), {sudo: true})
        state.libexec = libexecTarget
      })
    }
    await ensureFile(ctx, host, ssh, {path: layout.wrapper, content: renderTemplate('node/xcluster.sh', {current: layout.current}), mode: 0o755})
  },
}
