/**
 * The ceph commands' input checks and parsers without a cluster, and the backend switch: a fake
 * host records the exact command lines, so the MicroCeph backend (no MicroCeph on this machine)
 * is checked to run microceph.ceph / microceph.rbd with the arguments Debian's ceph / rbd get.
 */
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {adminCandidates} from '../../src/lib/ceph/admin-node.js'
import {CephCli, cephBinary, type CephBackend, type CephHost} from '../../src/lib/ceph/cli.js'
import {createImage, IMAGE_FEATURES, parseLocks, parseWatchers, planImageRemove, planImageResize} from '../../src/lib/ceph/images.js'
import {humanSize, parseImageSpec, parsePoolName, parsePoolPath, parseSize, rbdSize} from '../../src/lib/ceph/input.js'
import {createPool, parsePools, setPool} from '../../src/lib/ceph/pools.js'
import {parseCephStatus} from '../../src/lib/ceph/status.js'
import {XclusterError} from '../../src/lib/errors.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {specToYaml} from '../../src/lib/spec/document.js'
import {checkSpecText} from '../../src/lib/spec/parse.js'
import {ROOT} from '../helpers/cli.js'

const usage = (fn: () => unknown, message: RegExp) => assert.throws(fn, (e: unknown) => e instanceof XclusterError && e.exit === 2 && message.test(e.message) && Boolean(e.suggestion), message.source)

describe('ceph input', () => {
  it('sizes: binary units or bytes; zero, fractions, negatives and junk refused', () => {
    assert.equal(parseSize('10G'), 10 * 1024 ** 3)
    assert.equal(parseSize('512M'), 512 * 1024 ** 2)
    assert.equal(parseSize('512m'), 512 * 1024 ** 2)
    assert.equal(parseSize('10GiB'), 10 * 1024 ** 3)
    assert.equal(parseSize('1T'), 1024 ** 4)
    assert.equal(parseSize('4096'), 4096)
    assert.equal(parseSize('4096B'), 4096)
    for (const bad of ['', '0', '0G', '1.5G', '-1G', '10Z', 'G', '10 G B', 'ten', '99999999P']) usage(() => parseSize(bad), /is not a size/)
  })

  it('sizes go to rbd in the largest exact unit, to people in binary units', () => {
    assert.equal(rbdSize(10 * 1024 ** 3), '10G')
    assert.equal(rbdSize(1536 * 1024 ** 2), '1536M')
    assert.equal(rbdSize(1000), '1000B')
    assert.equal(humanSize(1536 * 1024 ** 2), '1.5 GiB')
    assert.equal(humanSize(12), '12 B')
  })

  it('pool and image names', () => {
    assert.equal(parsePoolName('vm-disks'), 'vm-disks')
    for (const bad of ['', '.mgr', 'a b', 'rbd/x', 'x'.repeat(129), "a'b"]) usage(() => parsePoolName(bad), /Invalid pool name/)
    assert.deepEqual(parseImageSpec('rbd/pg'), {pool: 'rbd', name: 'pg', spec: 'rbd/pg'})
    assert.deepEqual(parseImageSpec('rbd/ns/pg'), {pool: 'rbd', namespace: 'ns', name: 'pg', spec: 'rbd/ns/pg'})
    for (const bad of ['pg', 'rbd/', '/pg', 'rbd/a/b/c', 'rbd/p g', '.mgr/x', 'rbd/$(reboot)']) usage(() => parseImageSpec(bad), /Invalid image/)
    assert.deepEqual(parsePoolPath('rbd/ns'), {pool: 'rbd', namespace: 'ns'})
    usage(() => parsePoolPath('rbd/ns/x'), /Invalid pool/)
  })

  it('the node asked: ready core nodes first, then ready storage nodes, by name', () => {
    const node = (name: string, type: NodeRecord['type'], state: NodeRecord['state'] = 'ready'): NodeRecord => ({name, type, state, mac: '02:00:00:00:00:01', createdAt: '', updatedAt: ''})
    const nodes = [node('s5', 'storage'), node('c1', 'compute'), node('s4', 'storage'), node('s2', 'core', 'drained'), node('s3', 'core'), node('s1', 'core', 'failed')]
    assert.deepEqual(
      adminCandidates(nodes).map((n) => n.name),
      ['s3', 's4', 's5'],
    )
  })
})

describe('the spec: ceph.backend', () => {
  const example = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8')
  it('is optional (MicroCeph), takes microceph or ceph, and names the choices for anything else', () => {
    const plain = checkSpecText(example, 'spec.yaml')
    assert.ok(plain.ok && plain.spec.ceph === undefined)
    const debian = checkSpecText(`${example}ceph:\n  backend: ceph\n`, 'spec.yaml')
    assert.ok(debian.ok)
    assert.deepEqual(debian.spec.ceph, {backend: 'ceph'})
    const again = checkSpecText(specToYaml(debian.spec), 'shown.yaml')
    assert.ok(again.ok)
    assert.deepEqual(again.spec.ceph, {backend: 'ceph'}, 'config show keeps it')
    const bad = checkSpecText(`${example}ceph:\n  backend: cephadm\n`, 'spec.yaml')
    assert.equal(bad.ok, false)
    assert.equal(bad.problems.length, 1)
    assert.equal(bad.problems[0]!.path, 'ceph.backend')
    assert.match(bad.problems[0]!.problem, /"cephadm" is not a Ceph backend/)
    assert.match(bad.problems[0]!.fix, /backend: microceph .* backend: ceph/)
    const unknownKey = checkSpecText(`${example}ceph:\n  backend: ceph\n  mons: 3\n`, 'spec.yaml')
    assert.equal(unknownKey.ok, false)
    assert.match(unknownKey.problems.map((p) => p.problem).join('\n'), /unknown key "mons"/)
  })
})

/** A realistic Pacific `ceph -s --format json` (trimmed of the maps xcluster does not read). */
const PACIFIC_STATUS = {
  fsid: '8d0e5c52-1f4e-4c34-9d4e-000000000001',
  health: {
    status: 'HEALTH_WARN',
    checks: {OSD_DOWN: {severity: 'HEALTH_WARN', summary: {message: '1 osds down', count: 1}, muted: false}},
    mutes: [],
  },
  election_epoch: 3,
  quorum_names: ['a'],
  monmap: {epoch: 1, num_mons: 1},
  mgrmap: {available: true, num_standbys: 0},
  osdmap: {epoch: 21, num_osds: 3, num_up_osds: 2, osd_up_since: 1700000000, num_in_osds: 3, osd_in_since: 1700000000, num_remapped_pgs: 0},
  pgmap: {
    pgs_by_state: [
      {state_name: 'active+clean', count: 30},
      {state_name: 'active+undersized', count: 2},
    ],
    num_pgs: 32,
    num_pools: 2,
    num_objects: 7,
    data_bytes: 1024,
    bytes_used: 3 * 1024 ** 2,
    bytes_avail: 765 * 1024 ** 2,
    bytes_total: 768 * 1024 ** 2,
  },
}

describe('ceph -s parsing', () => {
  it('health with its checks, OSDs up/in/total, PGs by state, usage', () => {
    assert.deepEqual(parseCephStatus(PACIFIC_STATUS, 's4'), {
      node: 's4',
      fsid: PACIFIC_STATUS.fsid,
      health: {status: 'HEALTH_WARN', checks: [{name: 'OSD_DOWN', severity: 'HEALTH_WARN', summary: '1 osds down', muted: false}]},
      mons: {total: 1, inQuorum: ['a']},
      mgr: {available: true, standbys: 0},
      osds: {total: 3, up: 2, in: 3},
      pgs: {
        total: 32,
        byState: [
          {state: 'active+clean', count: 30},
          {state: 'active+undersized', count: 2},
        ],
      },
      pools: 2,
      objects: 7,
      usage: {usedBytes: 3 * 1024 ** 2, availBytes: 765 * 1024 ** 2, totalBytes: 768 * 1024 ** 2},
    })
  })

  it("reads Octopus's nested osdmap too, and refuses output without a health verdict", () => {
    const octopus = {...PACIFIC_STATUS, osdmap: {osdmap: {num_osds: 5, num_up_osds: 5, num_in_osds: 4}}}
    assert.deepEqual(parseCephStatus(octopus, 's4').osds, {total: 5, up: 5, in: 4})
    assert.throws(() => parseCephStatus({...PACIFIC_STATUS, health: {}}, 's4'), /gave no health status/)
    assert.throws(
      () => parseCephStatus({}, 's4'),
      (e: unknown) => (e as XclusterError).code === 'CEPH_OUTPUT_INVALID',
    )
  })

  it('pools, watchers and locks', () => {
    assert.deepEqual(parsePools([{pool_name: 'rbd', pool_id: 2, size: 3, min_size: 2, pg_num: 32, pg_autoscale_mode: 'on', application_metadata: {rbd: {}}}]), [
      {name: 'rbd', id: 2, size: 3, minSize: 2, pgNum: 32, pgAutoscale: 'on', applications: ['rbd']},
    ])
    assert.deepEqual(parseWatchers({watchers: [{address: '10.0.0.11:0/3385', client: 4157, cookie: 9}]}), [{address: '10.0.0.11:0/3385', client: 'client.4157', cookie: '9'}])
    assert.deepEqual(parseWatchers({}), [])
    const lock = {id: 'xcluster:s2:41', locker: 'client.4157', address: '10.0.0.3:0/1'}
    assert.deepEqual(parseLocks([lock]), [lock])
    assert.deepEqual(parseLocks({'xcluster:s2:41': {locker: 'client.4157', address: '10.0.0.3:0/1'}}), [lock])
    assert.deepEqual(parseLocks(null), [])
  })
})

/**
 * A node whose Ceph has pool `rbd` (size 2 of 3 OSDs up) holding image `old` (1 GiB, unused):
 * every command line is recorded, reads answer from these fixtures, writes answer nothing.
 */
function fakeHost(): CephHost & {lines: string[]} {
  const lines: string[] = []
  const answers: [RegExp, unknown][] = [
    [/ osd pool ls detail --format json$/, [{pool_name: 'rbd', pool_id: 1, size: 2, min_size: 1, pg_num: 32, pg_autoscale_mode: 'on', application_metadata: {rbd: {}}}]],
    [/ osd stat --format json$/, {num_osds: 3, num_up_osds: 3, num_in_osds: 3}],
    [/ ls rbd --format json$/, ['old']],
    [/ info rbd\/old --format json$/, {id: 'abc', size: 1024 ** 3, format: 2, features: [...IMAGE_FEATURES]}],
    [/ status rbd\/old --format json$/, {watchers: []}],
    [/ lock ls rbd\/old --format json$/, []],
  ]
  return {
    name: 's4',
    lines,
    async exec(command: string) {
      lines.push(command)
      const answer = answers.find(([re]) => re.test(command))
      return {code: 0, stdout: answer ? JSON.stringify(answer[1]) : '', stderr: ''}
    },
  }
}

/** Every call the admin commands make for one set of operations, on one backend. */
async function commandsOf(backend: CephBackend): Promise<string[]> {
  const host = fakeHost()
  const cli = new CephCli(host, backend)
  await createPool(cli, 'vm', {size: 3, minSize: 2, pgAutoscale: 'warn', application: 'rbd'}, false)
  await setPool(cli, 'rbd', {size: 3, minSize: 2, pgAutoscale: 'on'}, false)
  await setPool(cli, 'rbd', {size: 1}, false)
  await createImage(cli, 'rbd/new', 10 * 1024 ** 3, false)
  const plan = await planImageResize(cli, 'rbd/old', 512 * 1024 ** 2, true)
  assert.equal(plan.shrink, true)
  await cli.run(plan.calls[0]!)
  await cli.run((await planImageRemove(cli, 'rbd/old')).calls[0]!)
  return host.lines
}

describe('backends: one code path, only the binaries differ', () => {
  it('microceph runs microceph.ceph and microceph.rbd with the arguments Debian ceph and rbd get', async () => {
    assert.equal(cephBinary('microceph', 'ceph'), 'microceph.ceph')
    assert.equal(cephBinary('microceph', 'rbd'), 'microceph.rbd')
    const micro = await commandsOf('microceph')
    const debian = await commandsOf('ceph')
    assert.equal(micro.length, debian.length)
    for (const [i, line] of micro.entries()) {
      assert.match(line, /^microceph\.(ceph|rbd) /, line)
      assert.equal(line.replace(/^microceph\./, ''), debian[i], `call ${i}`)
    }
    assert.deepEqual(
      debian.filter((l) => !/--format json$/.test(l)),
      [
        'ceph osd pool create vm',
        'ceph osd pool set vm size 3',
        'ceph osd pool set vm min_size 2',
        'ceph osd pool set vm pg_autoscale_mode warn',
        'ceph osd pool application enable vm rbd',
        // Growing: the size first, so min_size <= size holds at every step; autoscale is on already.
        'ceph osd pool set rbd size 3',
        'ceph osd pool set rbd min_size 2',
        'ceph osd pool set rbd size 1 --yes-i-really-mean-it',
        'rbd create --size 10G --image-feature layering,exclusive-lock,object-map,fast-diff,deep-flatten rbd/new',
        'rbd resize --no-progress --size 512M --allow-shrink rbd/old',
        'rbd rm --no-progress rbd/old',
      ],
    )
  })

  it("a node without the backend's CLI: CEPH_CLI_MISSING (exit 3) naming the spec's choice; another failure carries Ceph's words", async () => {
    const answering = (code: number, stderr: string): CephHost => ({name: 's4', exec: async () => ({code, stdout: '', stderr})})
    await assert.rejects(new CephCli(answering(127, 'sh: 1: microceph.ceph: not found\n'), 'microceph').run({tool: 'ceph', args: ['-s']}), (e: unknown) => {
      const err = e as XclusterError
      return err.code === 'CEPH_CLI_MISSING' && err.exit === 3 && /^microceph\.ceph -s failed on s4: sh: 1: microceph\.ceph: not found$/.test(err.message) && /ceph\.backend/.test(err.suggestion ?? '')
    })
    await assert.rejects(new CephCli(answering(1, "Error ENOENT: unrecognized pool 'x'\n"), 'ceph').run({tool: 'ceph', args: ['osd', 'pool', 'get', 'x', 'size']}), (e: unknown) => {
      const err = e as XclusterError
      return (
        err.code === 'CEPH_COMMAND_FAILED' &&
        /failed on s4: Error ENOENT: unrecognized pool 'x'$/.test(err.message) &&
        err.suggestion === "See Ceph's own view from that node: xcluster ceph status --node s4"
      )
    })
  })

  it('a dry run makes only the reads, and returns the lines a real run executes', async () => {
    const host = fakeHost()
    const change = await createPool(new CephCli(host, 'microceph'), 'vm', {size: 2}, true)
    assert.deepEqual(change, {pool: 'vm', node: 's4', dryRun: true, commands: ['microceph.ceph osd pool create vm', 'microceph.ceph osd pool set vm size 2']})
    assert.ok(
      host.lines.every((l) => / --format json$/.test(l)),
      host.lines.join('\n'),
    )
  })

  it('refusals before any change: size beyond the OSDs up, a name taken, min-size above size, an unknown pool', async () => {
    const refused = async (fn: (cli: CephCli) => Promise<unknown>, code: string) => {
      const host = fakeHost()
      await assert.rejects(fn(new CephCli(host, 'ceph')), (e: unknown) => (e as XclusterError).code === code && Boolean((e as XclusterError).suggestion))
      assert.ok(
        host.lines.every((l) => / --format json$/.test(l)),
        `only reads: ${host.lines.join('\n')}`,
      )
    }
    await refused((cli) => createPool(cli, 'vm', {size: 4}, false), 'CEPH_POOL_SIZE_TOO_LARGE')
    await refused((cli) => createPool(cli, 'rbd', {size: 2}, false), 'CEPH_POOL_EXISTS')
    await refused((cli) => createPool(cli, 'vm', {size: 2, minSize: 3}, false), 'USAGE')
    await refused((cli) => setPool(cli, 'rbd', {minSize: 3}, false), 'CEPH_POOL_MIN_SIZE_TOO_LARGE')
    await refused((cli) => setPool(cli, 'nope', {size: 2}, false), 'CEPH_POOL_NOT_FOUND')
    await refused((cli) => createImage(cli, 'rbd/old', 1024, false), 'CEPH_IMAGE_EXISTS')
    await refused((cli) => createImage(cli, 'nope/x', 1024, false), 'CEPH_POOL_NOT_FOUND')
    await refused((cli) => planImageResize(cli, 'rbd/old', 1024, false), 'USAGE')
  })
})
