import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {renderString} from '../../src/lib/render/template.js'

describe('renderString', () => {
  it('substitutes dotted variables', () => {
    assert.equal(renderString('a={{x.y}} b={{ z }}', {x: {y: 1}, z: 'two'}), 'a=1 b=two')
  })
  it('repeats each-blocks per item', () => {
    const text = 'head\n{{#each nodes}}\n{{this.ip}} {{this.name}}.{{domain}}\n{{/each}}\ntail\n'
    assert.equal(
      renderString(text, {
        domain: 'lan',
        nodes: [
          {ip: '10.0.0.2', name: 's1'},
          {ip: '10.0.0.3', name: 's2'},
        ],
      }),
      'head\n10.0.0.2 s1.lan\n10.0.0.3 s2.lan\ntail\n',
    )
  })
  it('keeps an if-block only when its value is set', () => {
    const text = 'a\n{{#if tls}}\ncert: {{tls.cert}}\n{{/if}}\nb\n'
    assert.equal(renderString(text, {tls: {cert: '/c.pem'}}), 'a\ncert: /c.pem\nb\n')
    assert.equal(renderString(text, {}), 'a\nb\n', 'a dropped block needs none of its values')
    assert.equal(renderString(text, {tls: false}), 'a\nb\n')
  })
  it('refuses a missing value rather than rendering half a file', () => {
    assert.throws(() => renderString('x={{missing}}', {}, 'template t'), /template t: no value for \{\{missing\}\}/)
    assert.throws(() => renderString('{{#each nope}}x{{/each}}', {}), /needs a list/)
  })
})
