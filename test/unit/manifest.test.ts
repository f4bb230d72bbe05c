/**
 * The oclif manifest is built on one machine and read on every other: help must not show the
 * build machine's host name, user, paths or environment as a default, and every command shows
 * examples.
 */
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {homedir, hostname, tmpdir, userInfo} from 'node:os'
import {describe, it} from 'node:test'

import {ROOT} from '../helpers/cli.js'

interface ManifestCommand {
  examples?: unknown[]
  flags: Record<string, {default?: unknown}>
}

const manifest = JSON.parse(readFileSync(`${ROOT}/oclif.manifest.json`, 'utf8')) as {commands: Record<string, ManifestCommand>}

/** What only the machine that ran `npm run build` has. */
const buildMachine = [hostname(), hostname().split('.')[0], userInfo().username, homedir(), tmpdir(), ROOT, process.cwd()].filter((value) => value && value !== '/' && value !== 'root')

describe('oclif manifest', () => {
  it('has every command', () => {
    assert.ok(Object.keys(manifest.commands).length >= 20, Object.keys(manifest.commands).join(' '))
  })

  it("bakes none of the build machine's values into a flag default", () => {
    const baked: string[] = []
    for (const [id, command] of Object.entries(manifest.commands)) {
      for (const [flag, spec] of Object.entries(command.flags)) {
        if (typeof spec.default !== 'string') continue
        const value = spec.default
        if (buildMachine.some((own) => value === own || (own.startsWith('/') && value.startsWith(own)))) baked.push(`${id} --${flag} = ${value}`)
      }
    }
    assert.deepEqual(baked, [], 'defaults computed at run time belong in the flag description')
  })

  it('shows examples for every command', () => {
    const without = Object.entries(manifest.commands)
      .filter(([, command]) => !command.examples?.length)
      .map(([id]) => id)
    assert.deepEqual(without, [])
  })
})
