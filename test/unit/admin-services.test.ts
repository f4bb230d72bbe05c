/**
 * The admin host's services as rendered from the spec: each config accepted by its real program
 * (squid -k parse, dnsmasq --test, chronyd -p, systemd-analyze verify), the Compose bundle
 * accepted by Debian's docker-compose (v1: it validates without an engine and rejects unknown
 * keys), and the refusals that need no running service (a missing program, a gateway that is
 * not here). The services themselves are proven in test/admin/native-services.test.ts.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {preflightAdminServices, renderAdminServices, renderAdminUnit, startNativeServices, writeComposeBundle, type AdminServicesBundle} from '../../src/lib/admin-services/index.js'
import {boundSockets, conflicts, socketHolders} from '../../src/lib/admin-services/sockets.js'
import {XclusterError} from '../../src/lib/errors.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import type {ClusterSpec} from '../../src/lib/spec/types.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {requireTool} from '../helpers/tools.js'

const NET = 73
const ROOT_DIR = '/var/lib/xcluster/admin'
const specWith = (packages = ''): ClusterSpec => parseSpec(`${testSpecYaml(NET)}${packages}`, 'spec.yaml')

const thrown = (fn: () => unknown): XclusterError => {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof XclusterError, `expected an XclusterError, got ${err}`)
    return err
  }
  assert.fail('expected a refusal')
}

describe('admin services: rendered configs', () => {
  let dir: string
  before(() => (dir = mkdtempSync(join(tmpdir(), 'xct-adm-unit-'))))
  after(() => rmSync(dir, {recursive: true, force: true}))

  /** Writes a bundle's files under dir/<name>/ and returns that root. */
  const materialize = (bundle: AdminServicesBundle, name: string): string => {
    const root = join(dir, name)
    for (const f of bundle.files) {
      mkdirSync(dirname(join(root, f.path)), {recursive: true})
      writeFileSync(join(root, f.path), f.content)
    }
    return root
  }

  it('renders every service on the gateway address, with the boot script at the URL DHCP hands out', () => {
    const bundle = renderAdminServices(specWith(), {root: ROOT_DIR, interface: 'eth0'})
    assert.deepEqual(
      bundle.services.map((s) => s.name),
      ['ntp', 'dns-tftp', 'http', 'package-cache', 'ansible'],
    )
    assert.deepEqual(
      bundle.services.flatMap((s) => s.ports.map((p) => `${p.address}:${p.port}/${p.protocol}`)),
      [`10.${NET}.0.1:123/udp`, `10.${NET}.0.1:53/udp`, `10.${NET}.0.1:53/tcp`, `10.${NET}.0.1:69/udp`, `10.${NET}.0.1:80/tcp`, `10.${NET}.0.1:3128/tcp`],
    )
    assert.deepEqual(bundle.files.map((f) => f.path).sort(), [
      'ansible/ansible.cfg',
      'ansible/inventory.yaml',
      'ansible/known_hosts',
      'config/chrony.conf',
      'config/dnsmasq-cluster.conf',
      'config/dnsmasq.conf',
      'config/nginx.conf',
      'config/squid.conf',
      'http/boot.ipxe',
      'http/xcluster-enlist.sh',
    ])
    assert.deepEqual(
      bundle.copies.map((c) => [c.source, c.path]),
      [
        ['/usr/lib/ipxe/undionly.kpxe', 'tftp/undionly.kpxe'],
        ['/usr/lib/ipxe/ipxe.efi', 'tftp/ipxe.efi'],
      ],
    )
    const custom = renderAdminServices(parseSpec(`${testSpecYaml(NET)}pxe: {httpBootUrl: "http://10.${NET}.0.1/boot/x.ipxe", biosBootFile: bios.kpxe}\n`, 's'), {root: ROOT_DIR})
    assert.ok(custom.files.some((f) => f.path === 'http/boot/x.ipxe' && f.content.startsWith('#!ipxe\n')))
    assert.ok(custom.copies.some((c) => c.path === 'tftp/bios.kpxe' && c.source === '/usr/lib/ipxe/undionly.kpxe'))
  })

  it('Squid: only the mirrors (escaped, with a path boundary), only the subnet, CONNECT refused first; a parent only with upstream', () => {
    const squid = (spec: ClusterSpec) => renderAdminServices(spec, {root: ROOT_DIR}).files.find((f) => f.path === 'config/squid.conf')!.content
    const plain = squid(specWith(`packages:\n  mirrors: [http://deb.debian.org/debian, "http://10.${NET}.0.90:8080/debian"]\n`))
    assert.match(plain, /^acl mirrors url_regex \^http:\/\/deb\\\.debian\\\.org\/debian\(\/\|\$\)$/m)
    assert.match(plain, new RegExp(`^acl mirrors url_regex \\^http://10\\\\\\.${NET}\\\\\\.0\\\\\\.90:8080/debian\\(/\\|\\$\\)$`, 'm'))
    assert.match(plain, new RegExp(`^acl cluster src 10\\.${NET}\\.0\\.0/20$`, 'm'))
    const rules = plain.split('\n').filter((l) => l.startsWith('http_access'))
    assert.deepEqual(rules, ['http_access deny CONNECT', 'http_access allow cluster mirrors', 'http_access deny all'])
    assert.match(plain, /^cache_dir ufs \/var\/lib\/xcluster\/admin\/cache\/squid \d+ 16 256$/m)
    assert.doesNotMatch(plain, /cache_peer|never_direct/)
    const parent = squid(specWith(`packages:\n  upstream: http://proxy.example.com:3129\n`))
    assert.match(parent, /^cache_peer proxy\.example\.com parent 3129 0 no-query no-digest no-netdb-exchange default$/m)
    assert.match(parent, /^never_direct allow all$/m)
  })

  it('no package cache on the admin host when the nodes use another proxy or none', () => {
    for (const proxy of ['none', `http://10.${NET}.0.90:8000`]) {
      const bundle = renderAdminServices(specWith(`packages:\n  proxy: ${proxy}\n`), {root: ROOT_DIR})
      assert.ok(!bundle.services.some((s) => s.name === 'package-cache'), proxy)
      assert.ok(!bundle.files.some((f) => f.path === 'config/squid.conf'), proxy)
      assert.doesNotMatch(bundle.compose, /package-cache|squid/, proxy)
      assert.doesNotMatch(bundle.dockerfile, /squid/, proxy)
    }
  })

  it('the enlist script parses (bash -n), reports to the leader, and authorizes the cluster key only when given one', () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJxbmRvbWtleWJ5dGVzMDEyMzQ1Njc4OWFiY2RlZmdo xcluster@xcluster'
    const script = (options: {clusterPublicKey?: string}) =>
      renderAdminServices(specWith(''), {root: ROOT_DIR, interface: 'eth0', ...options}).files.find((f) => f.path === 'http/xcluster-enlist.sh')!.content
    for (const text of [script({}), script({clusterPublicKey: key})]) {
      const check = spawnSync('bash', ['-n'], {input: text, encoding: 'utf8'})
      assert.equal(check.status, 0, check.stderr)
      assert.match(text, /^port=4701$/m)
      assert.match(text, /^path=\/enlist$/m)
    }
    assert.doesNotMatch(script({}), /authorized_keys/)
    const withKey = script({clusterPublicKey: key})
    assert.equal(withKey.split(key).length - 1, 2, 'the key: once checked, once appended')
    assert.match(withKey, /getent passwd root/)
    assert.throws(() => script({clusterPublicKey: "ssh-ed25519 AAAA x'; rm -rf /"}), /not one OpenSSH public key line/)
  })

  it('every config is accepted by its own program, and a broken one is refused (the checks can fail)', () => {
    const squid = requireTool('squid', 'squid')
    const dnsmasq = requireTool('dnsmasq', 'dnsmasq-base')
    const chronyd = requireTool('chronyd', 'chrony')
    const root = materialize(renderAdminServices(specWith(`packages:\n  upstream: http://10.${NET}.0.95:3129\n`), {root: ROOT_DIR, interface: 'eth0'}), 'check')
    const run = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, {encoding: 'utf8'})
      return {status: r.status, out: r.stdout + r.stderr}
    }
    // The configs name their paths under ROOT_DIR; each program is pointed at the file itself.
    const squidConf = join(root, 'config', 'squid.conf')
    const parse = run(squid, ['-k', 'parse', '-f', squidConf])
    assert.equal(parse.status, 0, parse.out)
    assert.doesNotMatch(parse.out, /FATAL|ERROR|WARNING: (?!.*(?:pinger|cache_dir))/, parse.out)
    const dnsmasqConf = join(root, 'config', 'dnsmasq.conf')
    // dnsmasq.conf includes the cluster file by its installed path: check each part on its own.
    writeFileSync(dnsmasqConf, readFileSync(dnsmasqConf, 'utf8').replace(/^conf-file=.*$/m, `conf-file=${join(root, 'config', 'dnsmasq-cluster.conf')}`))
    const test = run(dnsmasq, ['--test', `--conf-file=${dnsmasqConf}`])
    assert.equal(test.status, 0, test.out)
    assert.match(test.out, /syntax check OK/)
    const chrony = run(chronyd, ['-p', '-f', join(root, 'config', 'chrony.conf')])
    assert.equal(chrony.status, 0, chrony.out)
    assert.match(chrony.out, new RegExp(`^bindaddress 10\\.${NET}\\.0\\.1$`, 'm'))

    writeFileSync(squidConf, `${readFileSync(squidConf, 'utf8')}\nhttp_acess allow all\n`)
    assert.notEqual(run(squid, ['-k', 'parse', '-f', squidConf]).status, 0, 'squid refuses a misspelt directive')
    writeFileSync(dnsmasqConf, `${readFileSync(dnsmasqConf, 'utf8')}\nexcept-interfase=lo\n`)
    assert.notEqual(run(dnsmasq, ['--test', `--conf-file=${dnsmasqConf}`]).status, 0, 'dnsmasq refuses a misspelt option')
  })

  it('a systemd unit per daemon that systemd-analyze verify accepts', () => {
    const analyze = requireTool('systemd-analyze', 'systemd')
    const bundle = renderAdminServices(specWith(), {root: ROOT_DIR})
    const unitDir = join(dir, 'units')
    mkdirSync(unitDir, {recursive: true})
    for (const service of bundle.services.filter((s) => s.daemon)) {
      requireTool(service.binary, service.debianPackage)
      const file = join(unitDir, `xcluster-admin-${service.name}.service`)
      const text = renderAdminUnit(service, 'xcluster', ROOT_DIR)
      writeFileSync(file, text)
      const r = spawnSync(analyze, ['verify', file], {encoding: 'utf8'})
      assert.equal(r.status, 0, `${service.name}: ${r.stdout}${r.stderr}`)
      assert.match(text, new RegExp(`^ExecStart=/\\S+/${service.binary} `, 'm'), 'an absolute program path')
    }
    writeFileSync(join(unitDir, 'xcluster-admin-bad.service'), '[Service]\nExecStrt=/bin/true\n')
    assert.notEqual(spawnSync(analyze, ['verify', join(unitDir, 'xcluster-admin-bad.service')]).status, 0, 'the check can fail')
  })
})

describe('admin services: the Compose bundle', () => {
  let dir: string
  before(() => (dir = mkdtempSync(join(tmpdir(), 'xct-adm-compose-'))))
  after(() => rmSync(dir, {recursive: true, force: true}))
  const compose = (bundleDir: string) => {
    const r = spawnSync(requireTool('docker-compose', 'docker-compose'), ['--project-directory', bundleDir, '-f', join(bundleDir, 'compose.yaml'), 'config'], {encoding: 'utf8', cwd: bundleDir})
    return {status: r.status, out: r.stdout, err: r.stderr}
  }

  it('docker-compose config accepts it: every service on the host network, every config mounted read-only', () => {
    const bundleDir = join(dir, 'bundle')
    const result = writeComposeBundle(bundleDir, specWith(), {root: ROOT_DIR})
    assert.ok(result.written.includes('compose.yaml') && result.written.includes('config/squid.conf') && result.written.includes('Dockerfile'))
    const r = compose(bundleDir)
    assert.equal(r.status, 0, r.err)
    assert.match(r.out, /^ {2}ntp:$/m)
    for (const service of ['ansible', 'dns-tftp', 'http', 'ntp', 'package-cache']) assert.match(r.out, new RegExp(`^ {2}${service}:$`, 'm'), service)
    assert.equal(r.out.match(/network_mode: host/g)?.length, 5)
    for (const f of ['chrony.conf', 'dnsmasq.conf', 'dnsmasq-cluster.conf', 'nginx.conf', 'squid.conf']) {
      assert.ok(r.out.includes(`${join(bundleDir, 'config', f)}:${ROOT_DIR}/config/${f}:ro`), `${f} is mounted read-only at the path the configs name`)
    }
    // The same configs --native writes: the bundle's files are the rendered ones, byte for byte.
    for (const f of renderAdminServices(specWith(), {root: ROOT_DIR}).files) assert.equal(readFileSync(join(bundleDir, f.path), 'utf8'), f.content, f.path)
  })

  it('the images carry exactly the Debian packages of the daemons and the iPXE binaries', () => {
    const bundle = renderAdminServices(specWith(), {root: ROOT_DIR})
    const install = /^FROM \S+ AS services\nRUN apt-get update \\\n && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends (.+) \\$/m.exec(bundle.dockerfile)
    assert.ok(install, bundle.dockerfile)
    assert.deepEqual(install[1].split(' '), ['chrony', 'dnsmasq-base', 'ipxe', 'nginx-light', 'squid'])
    assert.match(bundle.dockerfile, /^FROM debian:bookworm-slim AS ansible$/m)
    assert.match(bundle.dockerfile, /cp \/usr\/lib\/ipxe\/undionly\.kpxe \/var\/lib\/xcluster\/admin\/tftp\/undionly\.kpxe/)
    assert.match(bundle.dockerfile, /install -d -o proxy -g proxy -m 0755 \/var\/lib\/xcluster\/admin\/cache\/squid/)
  })

  it('a re-run writes nothing, a dry run writes nothing, and docker-compose refuses an unknown key (the check can fail)', () => {
    const bundleDir = join(dir, 'again')
    writeComposeBundle(bundleDir, specWith(), {root: ROOT_DIR})
    const again = writeComposeBundle(bundleDir, specWith(), {root: ROOT_DIR})
    assert.deepEqual(again.written, [])
    const changed = specWith(`packages:\n  mirrors: [http://10.${NET}.0.90/debian]\n`)
    const dry = writeComposeBundle(bundleDir, changed, {root: ROOT_DIR, dryRun: true})
    assert.deepEqual(dry.written, ['config/squid.conf'])
    assert.doesNotMatch(readFileSync(join(bundleDir, 'config', 'squid.conf'), 'utf8'), /10\\\.73\\\.0\\\.90/, 'the dry run wrote nothing')
    const file = join(bundleDir, 'compose.yaml')
    writeFileSync(file, readFileSync(file, 'utf8').replace('    network_mode: host\n', '    network_mode: host\n    netwrok_mode: host\n'))
    const r = compose(bundleDir)
    assert.notEqual(r.status, 0)
    assert.match(r.err, /netwrok_mode/)
  })
})

describe('admin services: refusals before anything is written', () => {
  it('a missing program names its Debian package and exits 3', () => {
    const spec = specWith()
    const bundle = renderAdminServices(spec, {root: ROOT_DIR})
    const broken = {...bundle, services: bundle.services.map((s) => (s.name === 'http' ? {...s, binary: 'xcluster-no-such-nginx', debianPackage: 'nginx-light'} : s))}
    const err = thrown(() => preflightAdminServices(spec, broken, () => false))
    assert.equal(err.code, 'ADMIN_PROGRAM_MISSING')
    assert.equal(err.exit, 3)
    assert.match(err.message, /xcluster-no-such-nginx \(Debian package nginx-light\)/)
    assert.match(err.message, /Nothing was started/)
    assert.equal(err.suggestion, 'Install them, then run again: sudo apt-get install -y nginx-light')
    const noIpxe = {...bundle, copies: bundle.copies.map((c) => ({...c, source: '/nonexistent/undionly.kpxe'}))}
    assert.match(thrown(() => preflightAdminServices(spec, noIpxe, () => false)).suggestion ?? '', /apt-get install -y ipxe$/)
  })

  it('a gateway address that is not on this host is refused before anything is written (dry run too)', async () => {
    const stateDir = join(tmpdir(), `xct-adm-never-${process.pid}`)
    for (const dryRun of [true, false]) {
      await assert.rejects(startNativeServices(specWith(), {stateDir, dryRun}), (err: XclusterError) => {
        assert.equal(err.code, 'ADMIN_GATEWAY_NOT_LOCAL')
        assert.equal(err.exit, 3)
        assert.match(err.message, new RegExp(`10\\.${NET}\\.0\\.1`))
        assert.match(err.suggestion ?? '', /ip addr add 10\.73\.0\.1\/20 dev IFACE/)
        return true
      })
    }
    assert.throws(() => readFileSync(stateDir), /ENOENT/, 'nothing was written')
  })

  it('the socket tables name who holds a port, and a wildcard bind conflicts with every address', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const port = (server.address() as {port: number}).port
      const mine = boundSockets().filter((s) => conflicts(s, {protocol: 'tcp', address: '127.0.0.1', port}))
      assert.equal(mine.length, 1)
      const holders = socketHolders(new Set([mine[0].inode])).get(mine[0].inode) ?? []
      assert.deepEqual(
        holders.map((h) => h.pid),
        [process.pid],
      )
      assert.ok(!boundSockets().some((s) => conflicts(s, {protocol: 'udp', address: '127.0.0.1', port})), 'tcp is not udp')
    } finally {
      server.close()
    }
    assert.ok(conflicts({protocol: 'udp', address: '0.0.0.0', port: 53, inode: 1}, {protocol: 'udp', address: '10.0.0.1', port: 53}))
    assert.ok(conflicts({protocol: 'tcp', address: '::', port: 80, inode: 1}, {protocol: 'tcp', address: '10.0.0.1', port: 80}))
    assert.ok(!conflicts({protocol: 'tcp', address: '127.0.0.1', port: 80, inode: 1}, {protocol: 'tcp', address: '10.0.0.1', port: 80}))
  })
})
