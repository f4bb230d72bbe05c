/**
 * What `ceph bootstrap` and `ceph join` run, line by line, for both backends. Debian's lines are
 * proven against a real Ceph in the lab (test/lab/ceph.test.ts); MicroCeph cannot run here (it is
 * a snap), so its lines are checked against MicroCeph's documented CLI:
 * https://documentation.ubuntu.com/microceph/latest/snap/reference/commands/cluster/ (usage
 * `microceph cluster bootstrap [flags]` with --mon-ip and --public-network, `microceph cluster add
 * <NAME>`, `microceph cluster join <TOKEN>`, `microceph cluster list`) and
 * https://documentation.ubuntu.com/microcloud/latest/microceph/how-to/single-node
 * (`sudo snap install microceph`, `sudo snap refresh --hold microceph`).
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {confFsid, firstMonLines, formed, joiningMonLines, mgrLines, microceph, monAddressVector, parseQuorum, renderCephConf} from '../../src/lib/ceph/deploy.js'

const FSID = '8d0e5c52-1f4e-4c34-9d4e-000000000001'

describe('ceph bootstrap and join: the lines they run', () => {
  it("MicroCeph: the documented CLI's words, flags and argument order", () => {
    assert.deepEqual(microceph.install, ['snap install microceph', 'snap refresh --hold microceph'])
    assert.equal(microceph.member, 'microceph cluster list')
    assert.equal(microceph.bootstrap({name: 's1', ip: '10.0.0.2'}, '10.0.0.0/24'), 'microceph cluster bootstrap --mon-ip 10.0.0.2 --public-network 10.0.0.0/24')
    assert.equal(microceph.add('s2'), 'microceph cluster add s2')
    // A token is base64; whatever it holds, it stays one argument.
    assert.equal(microceph.join('eyJuYW1lIjoiczIifQ=='), 'microceph cluster join eyJuYW1lIjoiczIifQ==')
    assert.equal(microceph.join('a b;c'), "microceph cluster join 'a b;c'")
    assert.doesNotMatch(microceph.joinShown, /eyJ/)
    // Every line is one of the documented commands.
    const documented = /^(snap (install|refresh --hold) microceph|microceph cluster (bootstrap( --mon-ip \S+)?( --public-network \S+)?|add \S+|join \S+|list))$/
    for (const line of [...microceph.install, microceph.member, microceph.bootstrap({name: 's1', ip: '10.0.0.2'}, '10.0.0.0/24'), microceph.add('s2'), microceph.join('tok')]) {
      assert.match(line, documented)
    }
  })

  it("Debian's Ceph: the first monitor's keyring, monmap and store, made as the ceph user", () => {
    assert.equal(monAddressVector('10.0.0.2'), '[v2:10.0.0.2:3300,v1:10.0.0.2:6789]')
    const lines = firstMonLines({name: 's1', ip: '10.0.0.2'}, FSID)
    assert.ok(lines.includes(`monmaptool --create --clobber --addv s1 '[v2:10.0.0.2:3300,v1:10.0.0.2:6789]' --fsid ${FSID} /var/lib/ceph/tmp/monmap`))
    assert.ok(lines.includes('runuser -u ceph -- ceph-mon --mkfs -i s1 --monmap /var/lib/ceph/tmp/monmap --keyring /var/lib/ceph/tmp/ceph.mon.keyring'))
    // The mon. key is made, used and removed: it stays only in the monitor's own store.
    assert.equal(lines.at(-1), 'rm -f /var/lib/ceph/tmp/ceph.mon.keyring /var/lib/ceph/tmp/monmap')
    const joining = joiningMonLines('s2')
    assert.deepEqual(joining.slice(1, 3), ['ceph mon getmap -o /var/lib/ceph/tmp/monmap', 'ceph auth get mon. -o /var/lib/ceph/tmp/ceph.mon.keyring'])
    // A manager's key goes to its keyring file (-o), never to stdout.
    assert.ok(mgrLines('s2').includes("ceph auth get-or-create mgr.s2 mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o /var/lib/ceph/mgr/ceph-s2/keyring"))
  })

  it('ceph.conf names the fsid, every monitor by its v2/v1 addresses and the public network; its fsid is read back', () => {
    const conf = renderCephConf(
      FSID,
      [
        {name: 's1', ip: '10.0.0.2'},
        {name: 's2', ip: '10.0.0.3'},
      ],
      '10.0.0.0/24',
    )
    assert.match(conf, /^mon_host = \[v2:10\.0\.0\.2:3300,v1:10\.0\.0\.2:6789\],\[v2:10\.0\.0\.3:3300,v1:10\.0\.0\.3:6789\]$/m)
    assert.match(conf, /^public_network = 10\.0\.0\.0\/24$/m)
    assert.equal(confFsid(conf), FSID)
    assert.equal(confFsid('[global]\nmon_host = x\n'), undefined)
  })

  it('formed: every named monitor in quorum, no other in the monmap, an active manager and a standby beside each other monitor', () => {
    const q = parseQuorum({fsid: FSID, quorum_names: ['s2', 's1'], monmap: {num_mons: 2}, mgrmap: {available: true, num_standbys: 1}})
    assert.deepEqual(q, {fsid: FSID, quorum: ['s1', 's2'], mons: 2, mgrAvailable: true, mgrStandbys: 1})
    assert.equal(formed(q, ['s1', 's2']), true)
    assert.equal(formed(q, ['s1', 's2', 's3']), false)
    assert.equal(formed({...q, mgrAvailable: false}, ['s1', 's2']), false)
    assert.equal(formed({...q, mgrStandbys: 0}, ['s1', 's2']), false, "the new node's manager has not registered yet")
    assert.equal(formed({...q, quorum: ['s1']}, ['s1', 's2']), false)
  })
})
