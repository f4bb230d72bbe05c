/**
 * The playbooks xcluster ships (templates/ansible/*.yml holding plays; cluster.xcluster.yml is a
 * template of an inventory source, checked in test/unit/inventory.test.ts) pass Debian's
 * ansible-lint with the production profile and `ansible-playbook --syntax-check`. A missing tool
 * fails the test: it is in test/packages.ts.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {cpSync, mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {parse} from 'yaml'

import {TEMPLATES_DIR} from '../../src/lib/render/template.js'
import {requireTool} from '../helpers/tools.js'

const DIR = join(TEMPLATES_DIR, 'ansible')
/** A playbook is a YAML list of plays (each names its hosts); other .yml files there are not. */
const PLAYBOOKS = readdirSync(DIR)
  .filter((f) => f.endsWith('.yml'))
  .filter((f) => {
    try {
      const doc = parse(readFileSync(join(DIR, f), 'utf8')) as unknown
      return Array.isArray(doc) && doc.every((play) => typeof play === 'object' && play !== null && 'hosts' in play)
    } catch {
      return false
    }
  })
  .sort()

let work: string

describe('the shipped playbooks', () => {
  before(() => {
    // A copy outside the repository: ansible-lint looks for a project (and its config) around the files.
    work = mkdtempSync(join(tmpdir(), 'xct-ansible-lint-'))
    for (const f of PLAYBOOKS) cpSync(join(DIR, f), join(work, f))
  })
  after(() => rmSync(work, {recursive: true, force: true}))

  it('include update.yml', () => {
    assert.ok(PLAYBOOKS.includes('update.yml'), PLAYBOOKS.join(', '))
  })

  it('pass ansible-lint (production profile)', () => {
    const lint = requireTool('ansible-lint', 'ansible-lint')
    const r = spawnSync(lint, ['--offline', '--nocolor', '-p', '--profile', 'production', ...PLAYBOOKS], {cwd: work, encoding: 'utf8', timeout: 300_000, env: {...process.env, HOME: work}})
    assert.equal(r.status, 0, `ansible-lint:\n${r.stdout}${r.stderr}`)
    assert.match(`${r.stdout}${r.stderr}`, /Passed with production profile/)
  })

  it('pass ansible-playbook --syntax-check', () => {
    const playbook = requireTool('ansible-playbook', 'ansible')
    for (const f of PLAYBOOKS) {
      const r = spawnSync(playbook, ['--syntax-check', '-i', 'localhost,', f], {
        cwd: work,
        encoding: 'utf8',
        timeout: 120_000,
        env: {...process.env, HOME: work, ANSIBLE_LOCAL_TEMP: join(work, 'tmp')},
      })
      assert.equal(r.status, 0, `${f}:\n${r.stdout}${r.stderr}`)
    }
  })
})
