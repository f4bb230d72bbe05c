/**
 * `xcluster frontend expose|list|render|unexpose` as an operator runs them, against a real etcd
 * holding a spec (a frontend node, services with and without a VIP), the cluster CA and a
 * certificate from `cert issue`. Every refusal leaves the keyspace as it was; no output holds a
 * Rathole token; the Rathole TOML a node gets fits Rathole's schema. The nginx site rendered from
 * that etcd state is checked and served by the real nginx with the real certificate: OpenSSL
 * verifies the chain and host name through it, an HTTPS GET reaches the upstream behind it, and a
 * corrupted certificate makes `nginx -t` fail (the check cert-sync will run before a reload).
 */
import assert from 'node:assert/strict'
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {createServer, type Server} from 'node:http'
import {request} from 'node:https'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {createCa, issueCertificate, type CertificateAuthority} from '../../src/lib/certs/authority.js'
import {adminTlsPaths} from '../../src/lib/certs/paths.js'
import {ClusterSecret, writeClusterSecret} from '../../src/lib/certs/secret.js'
import {saveCa, saveIssuedCertificate} from '../../src/lib/certs/store.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import type {FrontendRecord} from '../../src/lib/frontend/endpoint.js'
import {readFrontendState, type ExposeResult, type FrontendView, type RenderResult} from '../../src/lib/frontend/registry.js'
import {renderNginxSite, type FrontendLayout} from '../../src/lib/frontend/render.js'
import type {NodeRecord} from '../../src/lib/nodes/record.js'
import {settings} from '../../src/lib/settings.js'
import {ROOT, xcluster, type CliResult} from '../helpers/cli.js'
import {freePort, startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {parseRatholeConfig} from '../helpers/rathole-schema.js'
import {requireTool} from '../helpers/tools.js'

const SERVICES = "services:\n  - {name: web, start: 'true', stop: 'true', nodes: [s1, s2, s3], vip: 10.0.0.253}\n  - {name: db, start: 'true', stop: 'true', nodes: [s1, s2, s3]}\n"

describe('xcluster frontend: expose, list, render and unexpose; the nginx site served by nginx', {concurrency: false}, () => {
  let etcd: TestEtcd
  let store: EtcdStore
  let dir: string
  let nginxBin: string
  let ca: CertificateAuthority
  let secret: ClusterSecret
  const outputs: string[] = []
  const cli = async (...args: string[]): Promise<CliResult> => {
    const r = await xcluster([...args, '--etcd', etcd.endpoint], {env: {XCLUSTER_PKI_DIR: join(dir, 'pki')}})
    outputs.push(r.stdout, r.stderr)
    return r
  }
  /** Every key and value of the whole keyspace: what a refusal must leave as it was. */
  const etcdState = async (): Promise<string[]> => {
    const res = await store.call('dump', (c) => c.kv.range({key: Buffer.from([0]), range_end: Buffer.from([0])}))
    return res.kvs.map((kv) => `${kv.key.toString()}=${kv.value.toString()}@${kv.mod_revision}`)
  }
  const tokens = async (): Promise<string[]> => (await store.listJson<FrontendRecord>(store.keys.frontendsPrefix())).map((r) => r.value.token)

  before(async () => {
    requireTool('openssl', 'openssl')
    nginxBin = requireTool('nginx', 'nginx')
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    dir = mkdtempSync(join(tmpdir(), 'xct-frontend-'))
    for (const sub of ['pki', 'certs', 'out']) mkdirSync(join(dir, sub))
    const spec = readFileSync(join(ROOT, 'templates', 'xcluster.yaml'), 'utf8').replace('{name: f1, mac: "02:58:43:00:03:01"}', '{name: f1, mac: "02:58:43:00:03:01", ip: 10.0.0.71}')
    writeFileSync(join(dir, 'xcluster.yaml'), `${spec.trimEnd()}\n${SERVICES}`)
    const applied = await cli('config', 'apply', '-f', join(dir, 'xcluster.yaml'), '--yes')
    assert.equal(applied.code, 0, applied.stderr)
    const f1 = (await store.getJson<NodeRecord>(store.keys.node('f1')))!.value
    await store.put(store.keys.node('f1'), {...f1, state: 'ready'})
    process.env.XCLUSTER_PKI_DIR = join(dir, 'pki')
    secret = ClusterSecret.generate()
    writeClusterSecret(adminTlsPaths('xcluster').secret, secret)
    ca = await createCa({cluster: 'xcluster'})
    await saveCa(store, ca, secret)
    const issued = await cli('cert', 'issue', 'shop', '--san', 'shop.test', '--days', '20', '--out', join(dir, 'certs'))
    assert.equal(issued.code, 0, issued.stderr)
  })

  after(async () => {
    await store?.close()
    await etcd?.stop()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('frontend expose: the endpoint recorded create-only, a service target reached at its VIP, a tunnel port and a token of its own, served by the ready frontend', async () => {
    const r = await cli('frontend', 'expose', 'shop', '--to', 'web:8080', '--port', '8443', '--cert', 'shop', '--json')
    assert.equal(r.code, 0, r.stderr)
    const {frontend, dryRun} = r.json<ExposeResult>()
    assert.equal(dryRun, false)
    assert.deepEqual(
      {to: frontend.to, target: frontend.target, port: frontend.port, cert: frontend.cert, tunnelPort: frontend.tunnelPort, servedBy: frontend.servedBy},
      {to: 'web:8080', target: {kind: 'service', service: 'web', port: 8080}, port: 8443, cert: 'shop', tunnelPort: settings.frontend.tunnelPorts.first, servedBy: [{node: 'f1', ip: '10.0.0.71'}]},
    )
    // A 20-day certificate falls due in the last third of its life (about 6.7 days), not under a fixed 30 days.
    assert.deepEqual({status: frontend.certificate?.status, daysLeft: frontend.certificate?.daysLeft}, {status: 'ok', daysLeft: 19})
    const stored = (await store.getJson<FrontendRecord>(store.keys.frontend('shop')))!.value
    assert.match(stored.token, /^[\w-]{43}$/)
    assert.ok(!('token' in frontend))
  })

  it('frontend expose --dry-run checks and shows a plain-HTTP endpoint and writes nothing; without it, the next tunnel port', async () => {
    const etcdBefore = await etcdState()
    const dry = await cli('frontend', 'expose', 'api', '--to', '10.0.0.51:9000', '--port', '9080', '--dry-run')
    assert.equal(dry.code, 0, dry.stderr)
    assert.match(dry.stdout, /^Dry run: would expose api: port 9080 \(plain HTTP\) to 10\.0\.0\.51:9000, tunnel port 20001; nothing was changed\.$/m)
    assert.deepEqual(await etcdState(), etcdBefore)
    const real = await cli('frontend', 'expose', 'api', '--to', '10.0.0.51:9000', '--port', '9080')
    assert.equal(real.code, 0, real.stderr)
    assert.match(real.stdout, /^Exposed api: port 9080 \(plain HTTP\) to 10\.0\.0\.51:9000, tunnel port 20001\.\nServed by f1 \(10\.0\.0\.71\)\.$/m)
  })

  it('refused with etcd unchanged: bad port, bad target, unknown certificate, a name or a port taken, a service without a VIP', async () => {
    const cases: [string[], number, RegExp][] = [
      [['x', '--to', 'web:80', '--port', '0'], 2, /--port 0 is not a port \(1-65535\)/],
      [['x', '--to', 'web:80', '--port', '70000'], 2, /--port 70000 is not a port/],
      [['x', '--to', 'web:80', '--port', '80'], 2, /--port 80 is nginx’s plain-HTTP port \(ACME challenges\) on every frontend/],
      [['x', '--to', 'web:80', '--port', 'https'], 2, /--port/],
      [['x', '--to', 'web', '--port', '443'], 2, /--to "web" is not SERVICE_OR_HOST:PORT/],
      [['x', '--to', '10.0.0.300:80', '--port', '443'], 2, /is not SERVICE_OR_HOST:PORT/],
      [['x', '--to', 'web:99999', '--port', '443'], 2, /is not SERVICE_OR_HOST:PORT/],
      [['x', '--to', 'web:80', '--port', '443', '--cert', 'nope'], 3, /Error \[CERT_MISSING\]: No certificate named "nope" in etcd/],
      [['shop', '--to', 'web:80', '--port', '443'], 3, /Error \[FRONTEND_EXISTS\]: An endpoint named "shop" is already exposed/],
      [['x', '--to', 'web:80', '--port', '8443'], 3, /Error \[FRONTEND_PORT_TAKEN\]: Port 8443 is already endpoint shop's/],
      [['x', '--to', 'db:5432', '--port', '5432'], 3, /Error \[SERVICE_NO_VIP\]: Service db has no VIP/],
      [['Bad_Name', '--to', 'web:80', '--port', '443'], 2, /Invalid frontend name: "Bad_Name"/],
    ]
    for (const [args, exit, message] of cases) {
      const before = await etcdState()
      const r = await cli('frontend', 'expose', ...args)
      assert.equal(r.code, exit, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message, args.join(' '))
      if (exit === 3) assert.match(r.stderr, /Try this: \S/, `${args.join(' ')} says what to do next`)
      assert.deepEqual(await etcdState(), before, `${args.join(' ')} changed etcd`)
    }
  })

  it('frontend list: endpoints with target, port, certificate days left and status (expiring once its renewal is due, as cert list says), serving nodes; never a token', async () => {
    // A 30-day certificate issued 25 days ago: 5 days left, inside its renewal window (its last
    // third, 10 days), as cert list calls it due. Listed beside shop's (19 days of 20: not due).
    const issued = await issueCertificate(ca, {commonName: 'legacy', sans: ['legacy.test'], profile: 'server', days: 30, now: new Date(Date.now() - 25 * 86_400_000)})
    await saveIssuedCertificate(store, 'legacy', issued, {secret, keepKey: true})
    const certList = await cli('cert', 'list', '--json')
    assert.equal(certList.code, 0, certList.stderr)
    assert.deepEqual(
      certList
        .json<{name: string; status: string}[]>()
        .map((c) => [c.name, c.status])
        .sort(),
      [
        ['legacy', 'due'],
        ['shop', 'ok'],
      ],
    )
    const exposed = await cli('frontend', 'expose', 'legacy', '--to', '10.0.0.52:8080', '--port', '9443', '--cert', 'legacy')
    assert.equal(exposed.code, 0, exposed.stderr)

    const r = await cli('frontend', 'list', '--json')
    assert.equal(r.code, 0, r.stderr)
    const listed = r.json<FrontendView[]>()
    assert.deepEqual(
      listed.map((f) => [f.name, f.to, f.port, f.cert ?? null, f.certificate?.daysLeft ?? null, f.certificate?.status ?? null, f.servedBy.map((n) => n.node)]),
      [
        ['api', '10.0.0.51:9000', 9080, null, null, null, ['f1']],
        ['legacy', '10.0.0.52:8080', 9443, 'legacy', 4, 'expiring', ['f1']],
        ['shop', 'web:8080', 8443, 'shop', 19, 'ok', ['f1']],
      ],
    )
    assert.doesNotMatch(r.stdout, /token/i)
    const table = await cli('frontend', 'list')
    assert.match(table.stdout, /^NAME\s+TO\s+PORT\s+CERT\s+DAYS LEFT\s+CERT STATUS\s+SERVED BY$/m)
    assert.match(table.stdout, /^shop\s+web:8080\s+8443\s+shop\s+19\s+ok\s+f1$/m)
    assert.match(table.stdout, /^legacy\s+10\.0\.0\.52:8080\s+9443\s+legacy\s+4\s+expiring\s+f1$/m)
    assert.match(table.stdout, /^api\s+10\.0\.0\.51:9000\s+9080\s+-\s+-\s+-\s+f1$/m)
    const removed = await cli('frontend', 'unexpose', 'legacy', '--yes')
    assert.equal(removed.code, 0, removed.stderr)
  })

  it("frontend render: printed with tokens redacted; --out writes a core node's Rathole client (0600) whose TOML fits Rathole's schema and holds the server's tokens", async () => {
    const printed = await cli('frontend', 'render', '--node', 'f1')
    assert.equal(printed.code, 0, printed.stderr)
    assert.match(printed.stdout, /^# ==> nginx-site\.conf <==$/m)
    assert.ok(printed.stdout.includes(`ssl_certificate ${settings.frontend.tlsDir}/certs/shop.crt;`))
    assert.match(printed.stdout, /^token = "<redacted>"$/m)
    const out = join(dir, 'out')
    const server = await cli('frontend', 'render', '--node', 'f1', '--out', out, '--json')
    const client = await cli('frontend', 'render', '--node', 's1', '--out', out, '--json')
    assert.equal(client.code, 0, client.stderr)
    assert.deepEqual(
      client.json<RenderResult>().files.map((f) => [f.name, f.path, f.content]),
      [['rathole-client-f1.toml', join(out, 'rathole-client-f1.toml'), undefined]],
    )
    assert.deepEqual(readdirSync(out).sort(), ['nginx-site.conf', 'rathole-client-f1.toml', 'rathole-server.toml'])
    for (const file of readdirSync(out)) assert.equal(statSync(join(out, file)).mode & 0o777, 0o600, file)
    const s = parseRatholeConfig(readFileSync(join(out, 'rathole-server.toml'), 'utf8'))
    const c = parseRatholeConfig(readFileSync(join(out, 'rathole-client-f1.toml'), 'utf8'))
    assert.equal(c.addr, `10.0.0.71:${settings.frontend.ratholePort}`)
    assert.deepEqual(Object.fromEntries(c.services.map((x) => [x.name, x.addr])), {api: '10.0.0.51:9000', shop: '10.0.0.253:8080'})
    assert.deepEqual(Object.fromEntries(s.services.map((x) => [x.name, x.addr])), {api: '127.0.0.1:20001', shop: '127.0.0.1:20000'})
    const stored = await tokens()
    assert.deepEqual(c.services.map((x) => x.token).sort(), [...stored].sort())
    assert.deepEqual(s.services.map((x) => x.token).sort(), [...stored].sort())
    assert.equal(server.code, 0, server.stderr)
    const compute = await cli('frontend', 'render', '--node', 'c1')
    assert.equal(compute.code, 3)
    assert.match(compute.stderr, /c1 is a compute node/)
  })

  it('the nginx site from this etcd state passes nginx -t and serves HTTPS with the issued certificate, to the upstream; a corrupted certificate fails nginx -t', async () => {
    // The state as etcd holds it; loopback ports instead of the frontend's public ones, and the
    // tunnel's loopback end is a Node server standing in for the Rathole server's service.
    const upstream = await listen(
      createServer((req, res) => {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({url: req.url, host: req.headers.host, proto: req.headers['x-forwarded-proto']}))
      }),
    )
    const nginxDir = join(dir, 'nginx')
    const tls = join(nginxDir, 'tls')
    for (const sub of [join(tls, 'certs'), join(tls, 'private'), join(nginxDir, 'tmp')]) mkdirSync(sub, {recursive: true})
    chmodSync(dir, 0o755)
    copyFileSync(join(dir, 'certs', 'shop.crt'), join(tls, 'certs', 'shop.crt'))
    copyFileSync(join(dir, 'certs', 'shop.key'), join(tls, 'private', 'shop.key'))
    const state = await readFrontendState(store)
    const publicPort = await freePort()
    const shop = state.endpoints.find((e) => e.name === 'shop')!
    state.endpoints = [{...shop, port: publicPort, tunnelPort: upstream.port}]
    const layout: FrontendLayout = {tlsDir: tls, httpPort: await freePort(), acmePort: settings.frontend.acmePort, ratholePort: settings.frontend.ratholePort, listenAddress: '127.0.0.1'}
    writeFileSync(join(nginxDir, 'site.conf'), renderNginxSite(state, layout))
    const conf = join(nginxDir, 'nginx.conf')
    writeFileSync(conf, testNginxConf(nginxDir))
    const nginxTest = () => spawnSync(nginxBin, ['-t', '-c', conf, '-e', join(nginxDir, 'error.log')], {encoding: 'utf8', timeout: 10_000})
    const checked = nginxTest()
    assert.equal(checked.status, 0, checked.stderr)
    assert.match(checked.stderr, /test is successful/)

    const server = spawn(nginxBin, ['-c', conf, '-e', join(nginxDir, 'error.log')], {stdio: ['ignore', 'ignore', 'pipe']})
    try {
      await waitForPort(publicPort, server)
      const sClient = spawnSync(
        'openssl',
        ['s_client', '-connect', `127.0.0.1:${publicPort}`, '-servername', 'shop.test', '-CAfile', join(dir, 'certs', 'ca.crt'), '-verify_return_error', '-verify_hostname', 'shop.test'],
        {input: '', encoding: 'utf8', timeout: 10_000},
      )
      assert.equal(sClient.status, 0, sClient.stderr)
      assert.match(sClient.stdout, /Verify return code: 0 \(ok\)/)
      assert.match(sClient.stdout, /subject=CN ?= ?shop/)
      const got = await httpsGet(publicPort, '/hello?x=1', readFileSync(join(dir, 'certs', 'ca.crt')))
      assert.equal(got.status, 200)
      assert.deepEqual(JSON.parse(got.body), {url: '/hello?x=1', host: 'shop.test', proto: 'https'})
    } finally {
      server.kill('SIGTERM')
      await new Promise((resolve) => (server.exitCode === null ? server.once('exit', resolve) : resolve(undefined)))
      upstream.server.close()
    }

    const pem = readFileSync(join(tls, 'certs', 'shop.crt'), 'utf8')
    const lines = pem.split('\n')
    lines[3] = lines[3].replace(/[A-Za-z]/g, '!')
    writeFileSync(join(tls, 'certs', 'shop.crt'), lines.join('\n'))
    const broken = nginxTest()
    assert.notEqual(broken.status, 0)
    assert.match(broken.stderr, /cannot load certificate "[^"]*\/certs\/shop\.crt"/)
    assert.match(broken.stderr, /configuration file \S+ test failed/)
  })

  it('frontend unexpose: refused without --yes when nobody can answer (etcd unchanged), removed with it', async () => {
    const before = await etcdState()
    const asked = await cli('frontend', 'unexpose', 'api')
    assert.equal(asked.code, 2)
    assert.match(asked.stderr, /Stop publishing api \(port 9080 to 10\.0\.0\.51:9000\) on 1 frontend node\(s\)\? Refusing without confirmation/)
    assert.deepEqual(await etcdState(), before)
    const missing = await cli('frontend', 'unexpose', 'nope', '--yes')
    assert.equal(missing.code, 3)
    assert.match(missing.stderr, /No endpoint named "nope" is exposed/)
    const removed = await cli('frontend', 'unexpose', 'api', '--yes', '--json')
    assert.equal(removed.code, 0, removed.stderr)
    assert.equal(removed.json<FrontendView>().name, 'api')
    assert.deepEqual(
      (await cli('frontend', 'list', '--json')).json<FrontendView[]>().map((f) => f.name),
      ['shop'],
    )
  })

  it('no output of any frontend command holds a Rathole token', async () => {
    const stored = await tokens()
    assert.equal(stored.length, 1)
    assert.ok(outputs.length > 30)
    for (const text of outputs) for (const token of stored) assert.ok(!text.includes(token), 'a token was printed')
  })
})

function testNginxConf(dir: string): string {
  const temp = (name: string) => `${name}_temp_path ${join(dir, 'tmp', name)};`
  return [
    'daemon off;',
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')};`,
    'events { worker_connections 64; }',
    'http {',
    '    access_log off;',
    `    ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n    ')}`,
    `    include ${join(dir, 'site.conf')};`,
    '}',
    '',
  ].join('\n')
}

async function listen(server: Server): Promise<{server: Server; port: number}> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {server, port: (server.address() as {port: number}).port}
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  let stderr = ''
  child.stderr?.on('data', (d) => (stderr += d))
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): ${stderr}`)
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy()
        resolve(true)
      })
      socket.on('error', () => resolve(false))
    })
    if (up) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`nginx did not listen on ${port}: ${stderr}`)
}

function httpsGet(port: number, path: string, ca: Buffer): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    const req = request({host: '127.0.0.1', port, path, servername: 'shop.test', headers: {host: 'shop.test'}, ca, timeout: 10_000}, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({status: res.statusCode ?? 0, body}))
    })
    req.on('error', reject)
    req.end()
  })
}
