import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {checkSpecText} from '../../src/lib/spec/parse.js'
import {ROOT} from '../helpers/cli.js'

const EXAMPLE = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8')
const withPxe = (section: string): string => `${EXAMPLE}pxe:\n${section}`

describe('spec: the optional pxe: section', () => {
  it('is optional: the example has none and stays valid', () => {
    const r = checkSpecText(EXAMPLE, 'x.yaml')
    assert.ok(r.ok)
    assert.equal(r.ok && r.spec.pxe, undefined)
  })

  it('accepts every key', () => {
    const r = checkSpecText(withPxe('  tftpServer: 10.0.0.9\n  httpBootUrl: http://10.0.0.9/boot.ipxe\n  biosBootFile: bios/undionly.kpxe\n  uefiBootFile: efi/ipxe.efi\n'), 'x.yaml')
    assert.ok(r.ok, JSON.stringify(r.problems))
    assert.deepEqual(r.ok && r.spec.pxe, {tftpServer: '10.0.0.9', httpBootUrl: 'http://10.0.0.9/boot.ipxe', biosBootFile: 'bios/undionly.kpxe', uefiBootFile: 'efi/ipxe.efi'})
  })

  const bad: [string, string, RegExp][] = [
    ['  tftpServer: 192.168.1.1\n', 'pxe.tftpServer', /outside the subnet/],
    ['  tftpServer: nope\n', 'pxe.tftpServer', /not an IPv4 address/],
    ['  httpBootUrl: ftp://10.0.0.1/x\n', 'pxe.httpBootUrl', /not an http/],
    ['  biosBootFile: "has space.kpxe"\n', 'pxe.biosBootFile', /not a usable boot file name/],
    ['  nextServer: 10.0.0.1\n', 'pxe.nextServer', /unknown key "nextServer"/],
  ]
  for (const [section, path, problem] of bad) {
    it(`refuses ${section.trim()} at ${path}`, () => {
      const r = checkSpecText(withPxe(section), 'x.yaml')
      assert.equal(r.ok, false)
      const p = r.problems.find((x) => x.path === path)
      assert.ok(p, JSON.stringify(r.problems))
      assert.match(p.problem, problem)
      assert.ok(p.fix)
    })
  }
})
