/**
 * The frontend configs rendered from templates/frontend/, without etcd: Rathole's server and
 * client TOML parsed with a real TOML parser and checked against Rathole's schema (src/config.rs),
 * the two sides agreeing on every service and token; the nginx site's paths and ports. nginx
 * itself checks and serves the site in test/etcd/frontend.test.ts.
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {checkPublicPort, freeTunnelPort, newToken, parseTarget, type FrontendRecord} from '../../src/lib/frontend/endpoint.js'
import {REDACTED, defaultLayout, renderNginxSite, renderNodeConfig, renderRatholeClient, renderRatholeServer, type FrontendState} from '../../src/lib/frontend/render.js'
import {settings} from '../../src/lib/settings.js'
import {parseAddress, parseRatholeConfig} from '../helpers/rathole-schema.js'

const endpoint = (name: string, fields: Partial<FrontendRecord>): FrontendRecord => ({
  name,
  target: {kind: 'host', host: '10.0.0.51', port: 8080},
  port: 443,
  tunnelPort: 20_000,
  token: newToken(),
  createdAt: '2026-01-01T00:00:00.000Z',
  ...fields,
})

const state = (): FrontendState => ({
  acmeAnswerer: '10.0.0.254',
  endpoints: [
    endpoint('shop', {target: {kind: 'service', service: 'web', port: 8080}, port: 443, cert: 'shop', tunnelPort: 20_000}),
    endpoint('grafana.internal', {target: {kind: 'host', host: 'grafana.xcluster.lan', port: 3000}, port: 8443, cert: 'grafana', tunnelPort: 20_001}),
    endpoint('plain', {port: 8080, tunnelPort: 20_002}),
  ],
  nodes: [
    {name: 's1', type: 'core', state: 'ready', ip: '10.0.0.2'},
    {name: 's2', type: 'core', state: 'ready', ip: '10.0.0.3'},
    {name: 'c1', type: 'compute', state: 'ready', ip: '10.0.0.51'},
    {name: 'f1', type: 'frontend', state: 'ready', ip: '10.0.0.71'},
    {name: 'f2', type: 'frontend', state: 'ready', ip: '10.0.0.72'},
    {name: 'f3', type: 'frontend', state: 'registered'},
  ],
  certSans: {shop: ['shop.example.org', 'www.shop.example.org', '203.0.113.10'], grafana: ['10.0.0.80']},
  serviceVips: {web: '10.0.0.253'},
})

describe('frontend rendering: Rathole TOML against its schema, nginx site', () => {
  it("the Rathole server TOML parses and fits Rathole's schema: a control port, every endpoint bound on loopback at its tunnel port", () => {
    const s = state()
    const server = parseRatholeConfig(renderRatholeServer('f1', s, defaultLayout(), {redact: false}))
    assert.equal(server.role, 'server')
    assert.deepEqual(parseAddress(server.addr, 'bind_addr'), {host: '0.0.0.0', port: settings.frontend.ratholePort})
    assert.deepEqual(server.services.map((x) => [x.name, x.addr, x.type]).sort(), [
      ['grafana.internal', '127.0.0.1:20001', 'tcp'],
      ['plain', '127.0.0.1:20002', 'tcp'],
      ['shop', '127.0.0.1:20000', 'tcp'],
    ])
    for (const e of s.endpoints) assert.equal(server.services.find((x) => x.name === e.name)?.token, e.token)
  })

  it('the Rathole client TOML parses and fits the schema: the frontend as remote_addr, targets (a service at its VIP), the same tokens as the server', () => {
    const s = state()
    const f1 = s.nodes.find((n) => n.name === 'f1')!
    const client = parseRatholeConfig(renderRatholeClient(f1, s, defaultLayout(), {redact: false}))
    const server = parseRatholeConfig(renderRatholeServer('f1', s, defaultLayout(), {redact: false}))
    assert.equal(client.role, 'client')
    assert.equal(client.addr, `10.0.0.71:${settings.frontend.ratholePort}`)
    assert.deepEqual(Object.fromEntries(client.services.map((x) => [x.name, x.addr])), {shop: '10.0.0.253:8080', 'grafana.internal': 'grafana.xcluster.lan:3000', plain: '10.0.0.51:8080'})
    assert.deepEqual(client.services.map((x) => x.name).sort(), server.services.map((x) => x.name).sort(), 'every service on both sides')
    for (const c of client.services) assert.equal(c.token, server.services.find((x) => x.name === c.name)!.token, `${c.name}: tokens match`)
    assert.equal(new Set(client.services.map((x) => x.token)).size, 3, 'a token per endpoint')
  })

  it('with no endpoint both files still fit the schema (Rathole needs the services table)', () => {
    const s = {...state(), endpoints: []}
    assert.deepEqual(parseRatholeConfig(renderRatholeServer('f1', s)).services, [])
    assert.deepEqual(parseRatholeConfig(renderRatholeClient(s.nodes[3], s)).services, [])
  })

  it('the schema check refuses what Rathole refuses (so a pass means something)', () => {
    const cases: [string, RegExp][] = [
      ['[server]\nbind_addr = "0.0.0.0:2333"\n', /missing field `services`/],
      ['[server]\nbind_addr = "0.0.0.0:2333"\n[server.services.a]\nbind_addr = "127.0.0.1:1"\n', /The token of service a is not set/],
      ['[server]\nbind_addr = "0.0.0.0:2333"\n[server.services.a]\nbind_addr = "127.0.0.1:1"\nlocal_addr = "127.0.0.1:1"\ntoken = "t"\n', /unknown field `local_addr`/],
      ['[client]\nremote_addr = "10.0.0.71"\n[client.services]\n', /is not HOST:PORT/],
      ['[client]\nremote_addr = "10.0.0.71:2333"\n[client.services.a]\nlocal_addr = "x:1"\ntoken = 5\n', /token: expected string/],
      ['[client]\nremote_addr = "10.0.0.71:2333"\n[client.services.a]\nlocal_addr = "x:1"\ntoken = "t"\ntype = "sctp"\n', /unknown variant `sctp`/],
      ['[frontend]\n', /unknown top-level field/],
      ['[server\n', /./],
    ]
    for (const [text, error] of cases) assert.throws(() => parseRatholeConfig(text), error, text)
  })

  it('per node: a frontend gets the nginx site and the server, a core node one client per ready frontend, a compute node is refused; tokens redacted unless asked', () => {
    const s = state()
    const frontend = renderNodeConfig(s, 'f3')
    assert.deepEqual(
      frontend.files.map((f) => [f.name, f.secret]),
      [
        ['nginx-site.conf', false],
        ['rathole-server.toml', true],
      ],
    )
    const core = renderNodeConfig(s, 's2')
    assert.deepEqual(
      core.files.map((f) => f.name),
      ['rathole-client-f1.toml', 'rathole-client-f2.toml'],
      'f3 is not ready: no client for it',
    )
    for (const f of [...frontend.files, ...core.files]) {
      for (const e of s.endpoints) assert.ok(!f.content.includes(e.token), `${f.name} holds no token`)
    }
    for (const x of parseRatholeConfig(core.files[0].content).services) assert.equal(x.token, REDACTED)
    assert.equal(parseRatholeConfig(renderNodeConfig(s, 's2', defaultLayout(), {redact: false}).files[1].content).services.find((x) => x.name === 'shop')!.token, s.endpoints[0].token)
    assert.throws(() => renderNodeConfig(s, 'c1'), /c1 is a compute node/)
    assert.throws(() => renderNodeConfig(s, 'nope'), /No node named "nope"/)
    assert.throws(() => renderNodeConfig({...s, serviceVips: {}}, 's1'), /service web, which the spec no longer gives a VIP/)
  })

  it('the nginx site: TLS from the certificate files, server names from its DNS SANs, a proxy to each tunnel port, ACME challenges to the answerer', () => {
    const site = renderNginxSite(state())
    const {tlsDir, acmePort, httpPort} = settings.frontend
    assert.match(site, new RegExp(`listen ${httpPort};\\n    server_name ~\\.;\\n\\n    location /.well-known/acme-challenge/ \\{\\n        proxy_pass http://10\\.0\\.0\\.254:${acmePort};`))
    assert.match(renderNginxSite({...state(), acmeAnswerer: undefined}), new RegExp(`proxy_pass http://127\\.0\\.0\\.1:${acmePort};`), 'loopback without an admin VIP')
    assert.ok(site.includes(`listen 443 ssl;\n    ssl_certificate ${tlsDir}/certs/shop.crt;\n    ssl_certificate_key ${tlsDir}/private/shop.key;`))
    assert.ok(site.includes('server_name shop.example.org www.shop.example.org;'), 'IP SANs are no server names')
    assert.ok(site.includes('listen 8443 ssl;'))
    assert.ok(site.includes('listen 8080;\n    server_name _;'), 'plain HTTP without a certificate')
    for (const port of [20_000, 20_001, 20_002]) assert.ok(site.includes(`proxy_pass http://127.0.0.1:${port};`))
    assert.equal(site.match(/location \/\.well-known\/acme-challenge\//g)?.length, 4)
    assert.doesNotMatch(site, /\{\{|\}\}/)
  })

  it('what expose accepts: targets, public ports (not the frontend’s own), the lowest free tunnel port', () => {
    assert.deepEqual(parseTarget('web:8080'), {host: 'web', port: 8080})
    assert.deepEqual(parseTarget('10.0.0.51:3000'), {host: '10.0.0.51', port: 3000})
    assert.deepEqual(parseTarget('Grafana.XCluster.lan:3000'), {host: 'grafana.xcluster.lan', port: 3000})
    for (const bad of ['web', 'web:0', 'web:65536', '10.0.0.300:80', ':80', 'a b:80', 'http://web:80', 'web:80:90', '-web:80'])
      assert.throws(() => parseTarget(bad), /is not SERVICE_OR_HOST:PORT/, bad)
    assert.equal(checkPublicPort(443), 443)
    for (const bad of [0, 65_536, settings.frontend.httpPort, settings.frontend.acmePort, settings.frontend.ratholePort, settings.frontend.tunnelPorts.first])
      assert.throws(() => checkPublicPort(bad), /--port/)
    assert.equal(freeTunnelPort([]), settings.frontend.tunnelPorts.first)
    assert.equal(freeTunnelPort([20_000, 20_002]), 20_001)
    assert.match(newToken(), /^[\w-]{43}$/)
  })
})
