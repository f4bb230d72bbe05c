import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {before, describe, test} from 'node:test'

import {labTopology} from '../../src/lib/lab/topology.js'
import {loadSpecFile} from '../../src/lib/spec/parse.js'
import {hostCommand} from '../../src/lib/lab/exec.js'
import {readLabState, type LabState} from '../../src/lib/lab/state.js'
import {xcluster} from '../helpers/cli.js'
import {requireTool} from '../helpers/tools.js'

describe('the running lab (brought up by the test runner)', () => {
  let state: LabState
  const sh = (args: string[]) => execFileSync(args[0], args.slice(1), {encoding: 'utf8'})

  before(() => {
    requireTool('nsenter', 'util-linux')
    requireTool('ssh', 'openssh-client')
    // Fails loudly (LAB_NOT_UP) when no lab is up: this file never builds or removes one.
    state = readLabState()
  })

  test('status reports every host healthy: nodes running with sshd active, etcd on admin', async () => {
    const res = await xcluster(['lab', 'status', '--json'])
    assert.equal(res.code, 0, res.stderr + res.stdout)
    const status = res.json<{healthy: boolean; hosts: Array<{name: string; systemd: string | null; sshd: boolean | null; etcd: boolean | null}>}>()
    assert.equal(status.healthy, true)
    assert.deepEqual(status.hosts.map((h) => h.name).sort(), state.hosts.map((h) => h.name).sort())
    for (const h of status.hosts.filter((x) => x.name !== 'admin')) {
      assert.match(h.systemd ?? '', /^(running|degraded)$/, h.name)
      assert.equal(h.sshd, true, h.name)
    }
    assert.equal(status.hosts.find((h) => h.name === 'admin')?.etcd, true)
  })

  test('lab exec s1 -- hostname prints s1 (over OpenSSH with the pinned host key)', async () => {
    assert.equal(hostCommand(state, 's1', ['hostname']).via, 'ssh')
    assert.ok(hostCommand(state, 's1', ['hostname']).argv.includes('StrictHostKeyChecking=yes'))
    const res = await xcluster(['lab', 'exec', 's1', '--', 'hostname'])
    assert.equal(res.code, 0, res.stderr)
    assert.equal(res.stdout.trim(), 's1')
  })

  test('exec passes the exit code through, on ssh, nsenter and admin paths', async () => {
    assert.equal((await xcluster(['lab', 'exec', 's2', '--', 'sh', '-c', 'exit 7'])).code, 7)
    const viaNsenter = await xcluster(['lab', 'exec', 'c1', '--', 'sh', '-c', 'exit 5'])
    assert.equal(viaNsenter.code, 5)
    assert.match(viaNsenter.stderr, /nsenter/)
    assert.equal((await xcluster(['lab', 'exec', 'admin', '--', 'sh', '-c', 'exit 3'])).code, 3)
  })

  test('exec on an unknown host is a usage error', async () => {
    const res = await xcluster(['lab', 'exec', 'nosuch', '--', 'true'])
    assert.equal(res.code, 2)
    assert.match(res.stderr, /LAB_UNKNOWN_HOST/)
  })

  test("each node's eth0 carries its spec MAC; a node without a fixed IP has at most one, from DHCP, in its type's range", () => {
    const spec = labTopology(state.specFile, 0)
    const network = loadSpecFile(state.specFile).network
    const ranges = network.ranges
    for (const node of spec.nodes) {
      const link = sh(['ip', '-n', `xc-${node.name}`, '-j', 'addr', 'show', 'eth0'])
      const [info] = JSON.parse(link) as Array<{address: string; addr_info: Array<{family: string; local: string}>}>
      assert.equal(info.address, node.mac, node.name)
      const v4 = info.addr_info
        .filter((a) => a.family === 'inet')
        .map((a) => a.local)
        .filter((a) => a !== network.adminVip)
      if (node.ip) {
        assert.deepEqual(v4, [node.ip], node.name)
        continue
      }
      // The lab gives these nodes none: whatever they have came from the cluster's DHCP server.
      assert.ok(v4.length <= 1, `${node.name}: ${v4.join(', ')}`)
      const range = ranges[node.type as keyof typeof ranges]
      const last = (ip: string) => Number(ip.split('.')[3])
      for (const ip of v4) assert.ok(last(ip) >= last(range.start) && last(ip) <= last(range.end), `${node.name}: ${ip} outside ${range.start}-${range.end}`)
    }
  })

  test('inside a node, eth0 has the same MAC (the container really uses its namespace)', async () => {
    const res = await xcluster(['lab', 'exec', 's1', '--', 'cat', '/sys/class/net/eth0/address'])
    assert.equal(res.stdout.trim(), '02:58:43:00:01:01')
  })

  test('the root namespace has no lab address or route', () => {
    // The suite runs inside xc-admin: look through the lab's Squid, which runs in the root namespace.
    const squid = readFileSync(join(state.dir, 'run', 'squid.pid'), 'utf8').trim()
    const root = ['nsenter', `--net=/proc/${squid}/ns/net`, 'ip', '-4']
    assert.doesNotMatch(sh([...root, 'addr', 'show']), /inet 10\.0\.0\./)
    assert.doesNotMatch(sh([...root, 'route', 'show', 'table', 'all']), /10\.0\.0\./)
  })

  test('the admin host sees the lab etcd and the CLI shim', async () => {
    const res = await xcluster([
      'lab',
      'exec',
      'admin',
      '--',
      'sh',
      '-c',
      `etcdctl --endpoints=${state.etcdEndpoint} put /lab-test ok >/dev/null && etcdctl --endpoints=${state.etcdEndpoint} get --print-value-only /lab-test && command -v xcluster`,
    ])
    assert.equal(res.code, 0, res.stderr)
    assert.deepEqual(res.stdout.trim().split('\n'), ['ok', join(state.dir, 'bin', 'xcluster')])
  })

  test("a core node fetches the Debian mirror through the admin host's package cache (bootstrap started it)", async () => {
    const res = await xcluster([
      'lab',
      'exec',
      's3',
      '--',
      'sh',
      '-c',
      'grep -q "http://10.0.0.1:3128" /etc/apt/apt.conf.d/90xcluster-proxy && /usr/lib/apt/apt-helper download-file http://deb.debian.org/debian/dists/bookworm/Release /tmp/Release && head -c 200 /tmp/Release',
    ])
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stdout, /Origin: Debian/)
  })

  test('the proxy refuses hosts other than the mirror', async () => {
    const res = await xcluster(['lab', 'exec', 's3', '--', '/usr/lib/apt/apt-helper', 'download-file', 'http://blocked.invalid/', '/tmp/x'])
    assert.notEqual(res.code, 0)
    assert.match(res.stdout + res.stderr, /403|Forbidden/)
  })

  test('lab up with a bad spec fails with a usage error and leaves the running lab alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xc-badspec-'))
    const bad = join(dir, 'bad.yaml')
    writeFileSync(bad, 'cluster: x\nnetwork: {subnet: nope}\nnodes: []\n')
    const res = await xcluster(['lab', 'up', '-f', bad])
    assert.equal(res.code, 2)
    assert.match(res.stderr, /SPEC_INVALID/)
    assert.equal((await xcluster(['lab', 'status', '--json'])).code, 0)
  })

  test('known_hosts pins each addressed node with the fingerprint recorded in the state', () => {
    for (const h of state.hosts.filter((x) => x.kind === 'node' && x.ip)) {
      const out = sh(['ssh-keygen', '-l', '-F', h.ip!, '-f', join(state.dir, 'known_hosts')])
      assert.ok(h.hostKeyFingerprint?.startsWith('SHA256:'), h.name)
      assert.ok(out.includes(h.hostKeyFingerprint!), `${h.name}: ${out}`)
    }
  })
})
