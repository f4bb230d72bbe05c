/**
 * The health API over HTTPS picks up a renewed certificate without a restart: a real `serve
 * --http` process, its certificate and key replaced on disk the way a sync writes them (a rename
 * over each), serves the new one to the next handshake (openssl s_client, verifying against the
 * CA), from the same process; a pair that does not match is not taken and the old one keeps
 * serving.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdtempSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {createCa, issueCertificate, type CertificateAuthority} from '../../src/lib/certs/authority.js'
import {EtcdStore} from '../../src/lib/etcd/store.js'
import {applyPlan, planApply} from '../../src/lib/spec/apply.js'
import {parseSpec} from '../../src/lib/spec/parse.js'
import {testSpecYaml} from '../helpers/dhcp.js'
import {Daemon, until} from '../helpers/election-harness.js'
import {freePort, startEtcd, type TestEtcd} from '../helpers/etcd.js'
import {requireTool} from '../helpers/tools.js'

describe('serve --http: a renewed TLS certificate is served without a restart', {concurrency: false}, () => {
  let dir: string
  let etcd: TestEtcd
  let store: EtcdStore
  let ca: CertificateAuthority
  let daemon: Daemon
  let port: number
  const files = () => ({cert: join(dir, 'http.crt'), key: join(dir, 'http.key'), ca: join(dir, 'ca.crt')})

  /** Writes the pair as a sync would: each file to a temporary name, renamed over the old. */
  const install = (certPem: string, keyPem: string) => {
    for (const [path, content] of [
      [files().cert, certPem],
      [files().key, keyPem],
    ] as const) {
      writeFileSync(`${path}.new`, content, {mode: 0o600})
      renameSync(`${path}.new`, path)
    }
  }
  const issue = () => issueCertificate(ca, {commonName: 'serve-http', sans: ['127.0.0.1'], profile: 'server'})
  const served = (): string | undefined => {
    const r = spawnSync('sh', ['-c', `openssl s_client -connect 127.0.0.1:${port} -CAfile ${files().ca} -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial`], {
      encoding: 'utf8',
      timeout: 10_000,
    })
    return r.status === 0 ? r.stdout.trim().split('=')[1]?.toLowerCase() : undefined
  }

  before(async () => {
    requireTool('openssl', 'openssl')
    dir = mkdtempSync(join(tmpdir(), 'xct-http-tls-'))
    etcd = await startEtcd()
    store = new EtcdStore({endpoints: [etcd.endpoint], cluster: 'xcluster'})
    await applyPlan(store, await planApply(store, parseSpec(testSpecYaml(70), 'test.yaml')))
    ca = await createCa({cluster: 'xcluster'})
    writeFileSync(files().ca, ca.certPem)
    const first = await issue()
    install(first.certPem, first.key.exportPem())
    port = await freePort()
    daemon = new Daemon('s1', [], etcd.endpoint, undefined, [], {}, ['--http', `127.0.0.1:${port}`, '--http-cert', files().cert, '--http-key', files().key]).start()
    await until('serve --http answering', () => served() === first.serial, 15_000, 100)
  })

  after(async () => {
    await Daemon.killAll()
    await store?.close()
    await etcd?.stop()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('a new pair on disk is served to the next handshake by the same process', async () => {
    const pid = daemon.proc.pid
    const renewed = await issue()
    install(renewed.certPem, renewed.key.exportPem())
    await until('the renewed certificate served', () => served() === renewed.serial, 10_000, 100)
    assert.equal(daemon.proc.pid, pid)
    assert.ok(daemon.alive, 'no restart')
    // Its log line may reach us after the handshake that showed the new certificate.
    await until('the reload logged', () => daemon.events.some((e) => e.event === 'http-tls-reloaded'), 5_000, 50)
  })

  it('a certificate whose key is not beside it is not taken: the pair in use keeps serving', async () => {
    const serving = served()
    const [a, b] = [await issue(), await issue()]
    install(a.certPem, b.key.exportPem())
    await until('the mismatch noticed', () => daemon.events.some((e) => e.event === 'http-tls-reload-failed'), 10_000, 100)
    assert.equal(served(), serving)
    assert.ok(daemon.alive)
  })
})
