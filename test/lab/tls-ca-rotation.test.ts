/**
 * `xcluster cert ca rotate` on the lab's bootstrapped cluster (test/lab/bootstrap.test.ts runs
 * first), as a user would check it from the admin host: what each member presents on its client
 * and peer ports (openssl), which client certificates etcd accepts (etcdctl), the trust files on
 * the nodes' disks, and the members' processes (their PIDs change only when restarted). The
 * cluster answers throughout; the tests after this file run on the rotated cluster.
 */
import assert from 'node:assert/strict'
import {execFile, spawnSync} from 'node:child_process'
import {copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {CaRotateResult} from '../../src/lib/actions/ca-rotate.js'
import {labPaths} from '../../src/lib/lab/paths.js'
import {settings} from '../../src/lib/settings.js'
import {admin, inNode, lab, ok, waitUntil} from '../helpers/lab.js'

const state = lab()
const CORE = ['s1', 's2', 's3']
const pki = join(labPaths(state.dir).adminPki, state.cluster)
const operator = {ca: join(pki, 'ca.crt'), cert: join(pki, 'xcluster-admin.crt'), key: join(pki, 'xcluster-admin.key')}
const ipOf = (name: string): string => state.hosts.find((h) => h.name === name)!.ip as string
const work = mkdtempSync(join(tmpdir(), 'xct-lab-ca-rotation-'))
const file = (name: string, text: string): string => {
  writeFileSync(join(work, name), text)
  return join(work, name)
}

type Files = {ca: string; cert: string; key: string}

/** etcdctl from the admin host with these TLS files, against every member. */
function etcdctl(files: Files, args: string[]): Promise<{code: number; out: string}> {
  return new Promise((resolve) =>
    execFile(
      'etcdctl',
      [
        `--endpoints=${CORE.map((n) => `https://${ipOf(n)}:2379`).join(',')}`,
        `--cacert=${files.ca}`,
        `--cert=${files.cert}`,
        `--key=${files.key}`,
        '--dial-timeout=3s',
        '--command-timeout=5s',
        ...args,
      ],
      {env: {...process.env, ETCDCTL_API: '3'}},
      (err, stdout, stderr) => resolve({code: err ? 1 : 0, out: `${stdout}${stderr}`}),
    ),
  )
}

/** The certificate a member presents on `port` (PEM), read with the operator's client certificate. */
function presented(ip: string, port: number): string {
  const r = spawnSync('sh', ['-c', `openssl s_client -connect ${ip}:${port} -cert ${operator.cert} -key ${operator.key} </dev/null 2>/dev/null | openssl x509`], {encoding: 'utf8', timeout: 15_000})
  assert.equal(r.status, 0, `no certificate on ${ip}:${port}: ${r.stderr}`)
  return r.stdout
}

/** Whether OpenSSL verifies `pem` against exactly `caPem`. */
const verifies = (pem: string, caPem: string): boolean => spawnSync('openssl', ['verify', '-CAfile', file('trust.pem', caPem), file('leaf.pem', pem)]).status === 0

/** What the frontend f1 trusts: the certs leader puts the trust bundle there when the CA changes. */
const f1Trust = () => inNode('f1', `cat ${settings.frontend.tlsDir}/ca.crt 2>/dev/null || true`)

const pids = (unit: string) => CORE.map((n) => inNode(n, `systemctl show -p MainPID --value ${unit}`).trim())
const trustFiles = () => CORE.map((n) => inNode(n, 'cat /etc/xcluster/pki/ca.crt'))
const rotate = async (...args: string[]) => ok(await admin(['cert', 'ca', 'rotate', '--json', ...args]), `cert ca rotate ${args.join(' ')}`).json<CaRotateResult>()
const bundle = async () => ok(await admin(['cert', 'ca', 'show', '--bundle']), 'cert ca show --bundle').stdout

type Election = {service: string; leader: string | null}

/** The elected services that have a leader now (earlier lab tests leave records of services nobody campaigns for). */
async function ledServices(): Promise<string[]> {
  const r = ok(await admin(['election', 'list', '--json']), 'election list')
  return r
    .json<Election[]>()
    .filter((e) => e.leader !== null)
    .map((e) => e.service)
    .sort()
}

/** Every service led before the rotation has a leader again (serve restarted on each core node). */
async function leadersBack(services: string[]): Promise<void> {
  let last: string[] = []
  await waitUntil(
    async () => {
      last = await ledServices()
      return services.every((s) => last.includes(s))
    },
    90_000,
    () => `led before: ${services.join(', ')}; led now: ${last.join(', ')}`,
  )
}

describe('cert ca rotate in the lab: a new CA for etcd and serve, one core node at a time, the cluster answering throughout', {concurrency: false}, () => {
  let oldCa: string
  /** What the core nodes' serve daemons lead before the rotation: they must lead it again after each restart. */
  let led: string[] = []
  const oldOperator = {ca: join(work, 'old-ca.crt'), cert: join(work, 'old-admin.crt'), key: join(work, 'old-admin.key')}

  before(async () => {
    led = await ledServices()
    for (const s of ['certs', 'dhcp', 'provision']) assert.ok(led.includes(s), `${s} has a leader before the rotation: ${led.join(', ')}`)
    oldCa = readFileSync(operator.ca, 'utf8')
    copyFileSync(operator.ca, oldOperator.ca)
    copyFileSync(operator.cert, oldOperator.cert)
    copyFileSync(operator.key, oldOperator.key)
  })

  after(() => rmSync(work, {recursive: true, force: true}))

  it('--dry-run plans a restart of each member and changes nothing: not the CA, not a trust file, not a process', async () => {
    const [trust, etcdPids, servePids, ca] = [trustFiles(), pids('etcd-member.service'), pids(settings.serveUnit.name), await bundle()]
    const plan = await rotate('--dry-run')
    assert.equal(plan.step, 'would begin')
    for (const n of CORE)
      assert.ok(
        plan.run?.plan[n]?.some((s) => s.includes('restart etcd-member.service')),
        `${n}: ${plan.run?.plan[n]?.join('; ')}`,
      )
    assert.deepEqual([trustFiles(), pids('etcd-member.service'), pids(settings.serveUnit.name), await bundle()], [trust, etcdPids, servePids, ca])
  })

  it('begins: every member presents certificates from the new CA, trusts both, and was restarted; the old operator certificate still works', async () => {
    const etcdPids = pids('etcd-member.service')
    const result = await rotate('--yes')
    assert.equal(result.step, 'begun')
    assert.equal(result.run?.result, 'succeeded')
    const trust = await bundle()
    const newCa = trust.slice(0, trust.indexOf('-----END CERTIFICATE-----') + 26)
    assert.notEqual(newCa, oldCa)
    assert.equal(trust, newCa + oldCa, 'the bundle: the new CA, then the old')
    assert.deepEqual(trustFiles(), [trust, trust, trust], "each node's trust file holds both CAs")
    for (const n of CORE) {
      for (const port of [2379, 2380]) {
        const pem = presented(ipOf(n), port)
        assert.ok(verifies(pem, newCa), `${n}:${port} presents a certificate from the new CA`)
        assert.ok(!verifies(pem, oldCa), `${n}:${port}: not the old CA's`)
      }
    }
    pids('etcd-member.service').forEach((pid, i) => assert.notEqual(pid, etcdPids[i], `${CORE[i]}'s member restarted to read its trust file`))
    assert.ok(verifies(readFileSync(operator.cert, 'utf8'), newCa), "the operator's certificate was reissued from the new CA")
    assert.equal(readFileSync(operator.ca, 'utf8'), trust, "the operator's trust file holds both")
    // The overlap: a client still holding the old CA's certificate is accepted.
    const old = await etcdctl({...oldOperator, ca: operator.ca}, ['endpoint', 'health'])
    assert.equal(old.code, 0, old.out)
    const health = await etcdctl(operator, ['endpoint', 'health'])
    assert.equal(health.code, 0, health.out)
    await leadersBack(led)
    ok(await admin(['node', 'list']), 'node list')
    await waitUntil(
      () => f1Trust() === trust,
      60_000,
      () => `f1 does not trust both CAs: ${f1Trust().slice(0, 80)}`,
    )
  })

  it('running it again changes nothing and restarts nothing', async () => {
    const [etcdPids, servePids] = [pids('etcd-member.service'), pids(settings.serveUnit.name)]
    const result = await rotate('--yes')
    assert.equal(result.step, 'carried on')
    assert.equal(result.run?.changed, 0, JSON.stringify(result.run?.plan))
    assert.deepEqual([pids('etcd-member.service'), pids(settings.serveUnit.name)], [etcdPids, servePids])
  })

  it('--finish: each node trusts the new CA alone, and etcd refuses the old CA’s certificates from then on', async () => {
    const newCa = (await bundle()).split(oldCa)[0] as string
    const result = await rotate('--finish', '--yes')
    assert.equal(result.step, 'finished')
    assert.equal(result.ca.previous, undefined)
    assert.equal(await bundle(), newCa)
    assert.deepEqual(trustFiles(), [newCa, newCa, newCa])
    assert.equal(readFileSync(operator.ca, 'utf8'), newCa)
    const refused = await etcdctl({...oldOperator, ca: operator.ca}, ['endpoint', 'health'])
    assert.notEqual(refused.code, 0, `etcd accepted a certificate of the retired CA: ${refused.out}`)
    const health = await etcdctl(operator, ['endpoint', 'health'])
    assert.equal(health.code, 0, health.out)
    await leadersBack(led)
    ok(await admin(['node', 'list']), 'node list')
    await waitUntil(
      () => f1Trust() === newCa,
      60_000,
      () => `f1 does not trust the new CA alone: ${f1Trust().slice(0, 80)}`,
    )
    const again = await admin(['cert', 'ca', 'rotate', '--finish', '--yes'])
    assert.equal(again.code, 3)
    assert.match(again.stderr, /No CA rotation is under way/)
  })
})
