/**
 * `xcluster health` on the bootstrapped lab, as the operator runs it on the admin host: ok on a
 * healthy cluster; fail, naming the broken part and the next step, when a node's sshd, an etcd
 * member or every serve (so the dhcp service's leader) is stopped; ok again once each is back.
 * A forced disagreement of the published views is split brain to health, /health, /metrics and
 * the web dashboard, in Debian's Chromium trusting only the node's pinned key.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync} from 'node:fs'
import {get as httpsGet} from 'node:https'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {chromium} from 'playwright-core'

import {nodeTlsFiles} from '../../src/lib/certs/paths.js'
import type {ViewRecord} from '../../src/lib/election/records.js'
import {settings} from '../../src/lib/settings.js'
import {ROOT} from '../helpers/cli.js'
import {admin, clusterStore, lab, onNode, waitUntil} from '../helpers/lab.js'

interface Check {
  name: string
  status: 'ok' | 'warn' | 'fail'
  observed: string
  next?: string
}
interface Report {
  status: 'ok' | 'warn' | 'fail'
  checks: Check[]
}

const CORE = ['s1', 's2', 's3']

async function health(...flags: string[]): Promise<{code: number; report: Report}> {
  const res = await admin(['health', '--json', ...flags])
  assert.ok(res.stdout.trim().startsWith('{'), `health printed no report (exit ${res.code}): ${res.stderr}`)
  return {code: res.code, report: JSON.parse(res.stdout) as Report}
}

const check = (report: Report, name: string): Check | undefined => report.checks.find((c) => c.name === name)
const failing = (report: Report): string[] => report.checks.filter((c) => c.status === 'fail').map((c) => `${c.name}: ${c.observed}`)

/** Waits until health's verdict has no failure (exit 0), and returns that report. */
async function healthy(...flags: string[]): Promise<Report> {
  let last: {code: number; report: Report} | undefined
  await waitUntil(
    async () => (last = await health(...flags)).code === 0,
    60_000,
    () => `still unhealthy: ${last ? failing(last.report).join('; ') : 'no report'}`,
  )
  return last!.report
}

/** Waits until the named check fails with exit 3, and returns it. */
async function failsOn(name: string, ...flags: string[]): Promise<Check> {
  let last: {code: number; report: Report} | undefined
  await waitUntil(
    async () => {
      last = await health(...flags)
      return last.code === 3 && check(last.report, name)?.status === 'fail'
    },
    60_000,
    () => `${name} did not fail: exit ${last?.code}, ${JSON.stringify(last && check(last.report, name))}`,
  )
  return check(last!.report, name)!
}

/** GET over HTTPS, trusting only the cluster's CA. */
function get(url: string, ca: string): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, {ca, timeout: 10_000}, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({status: res.statusCode ?? 0, body}))
    })
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)))
    req.on('error', reject)
  })
}

/** The cluster CA's PEM, and the URL of a core node's health API. */
async function healthApi(): Promise<{ca: string; url: (node: string, path: string) => string}> {
  const ca = (await onNode('s1', `cat ${nodeTlsFiles.ca}`)).stdout
  return {ca, url: (node, path) => `https://${lab().hosts.find((h) => h.name === node)?.ip}:${settings.serveUnit.httpPort}${path}`}
}

const CHROMIUM = '/usr/bin/chromium'

/**
 * The base64 SHA-256 of a certificate's public key: Chromium trusts exactly that key with
 * --ignore-certificate-errors-spki-list (a pin, as SSH pins host keys; never "ignore errors").
 */
function spkiPin(certPem: string): string {
  const der = execFileSync('openssl', ['x509', '-pubkey', '-noout'], {input: certPem})
  const spki = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], {input: der})
  return execFileSync('openssl', ['dgst', '-sha256', '-binary'], {input: spki}).toString('base64')
}

describe('xcluster health on the bootstrapped cluster', {concurrency: false}, () => {
  it("every core node's serve answers the health API over HTTPS with its server certificate: /leader/dhcp is 200 on exactly the dhcp leader", async () => {
    const {ca, url} = await healthApi()
    const leaders = await Promise.all(CORE.map(async (node) => ({node, status: (await get(url(node, '/leader/dhcp'), ca)).status})))
    assert.equal(leaders.filter((l) => l.status === 200).length, 1, JSON.stringify(leaders))
    assert.deepEqual(
      leaders.filter((l) => l.status !== 200).map((l) => l.status),
      [503, 503],
    )
    const leader = leaders.find((l) => l.status === 200)!.node
    const health = await get(url('s2', '/health'), ca)
    assert.equal(health.status, 200, health.body)
    const metrics = await get(url('s3', '/metrics'), ca)
    assert.ok(metrics.body.split('\n').includes(`xcluster_service_leader{service="dhcp",node="${leader}"} 1`), metrics.body.slice(0, 2000))
  })

  it('a healthy cluster: every etcd member, node, election and (over SSH, with pinned keys) every node and its clock', async () => {
    const report = await healthy('--ssh')
    for (const member of CORE) assert.equal(check(report, `etcd:member:${member}`)?.status, 'ok', JSON.stringify(report.checks))
    assert.equal(check(report, 'etcd:quorum')?.status, 'ok')
    for (const node of ['s1', 's2', 's3', 's4', 'c1', 'f1']) {
      assert.equal(check(report, `node:${node}`)?.status, 'ok', `node:${node}`)
      assert.equal(check(report, `ssh:${node}`)?.status, 'ok', `ssh:${node}: ${check(report, `ssh:${node}`)?.observed}`)
    }
    assert.equal(check(report, 'election:dhcp')?.status, 'ok')
  })

  it("a node's sshd stopped: ssh:c1 fails, and is ok again once sshd is back", async () => {
    await onNode('c1', 'systemctl stop ssh.socket ssh.service 2>/dev/null; systemctl stop ssh')
    try {
      const failed = await failsOn('ssh:c1', '--ssh')
      assert.ok(failed.next, 'a failure names the next step')
    } finally {
      await onNode('c1', 'systemctl start ssh')
    }
    assert.equal(check(await healthy('--ssh'), 'ssh:c1')?.status, 'ok')
  })

  it('an etcd member stopped: that member fails while quorum holds, and all is ok once it is back', async () => {
    await onNode('s3', 'systemctl stop etcd-member')
    try {
      const failed = await failsOn('etcd:member:s3')
      assert.match(failed.observed, /s3|unreachable|refused|timed out|deadline/i)
      const {report} = await health()
      assert.equal(check(report, 'etcd:quorum')?.status, 'ok', 'two of three members keep quorum')
    } finally {
      await onNode('s3', 'systemctl start etcd-member')
    }
    await healthy()
  })

  it('every serve stopped: the dhcp service has no leader and fails, and is led again once serve is back', async () => {
    await Promise.all(CORE.map((n) => onNode(n, 'systemctl stop xcluster-serve')))
    try {
      const failed = await failsOn('election:dhcp')
      assert.ok(failed.next, 'a failure names the next step')
    } finally {
      await Promise.all(CORE.map((n) => onNode(n, 'systemctl start xcluster-serve')))
    }
    assert.equal(check(await healthy(), 'election:dhcp')?.status, 'ok')
  })

  it('a forced split brain (a view on s4 that claims dhcp): health, /health, /metrics and the dashboard report it, and all is ok once it is gone', async () => {
    const store = clusterStore()
    const {ca, url} = await healthApi()
    // s4 runs no serve for dhcp: nothing republishes over the rogue view while it stands.
    const rogue: ViewRecord = {node: 's4', believesLeader: true, active: true, leader: 's4', token: '1', since: null, updatedAt: new Date().toISOString()}
    await store.put(store.keys.electionView('dhcp', 's4'), rogue)
    try {
      const failed = await failsOn('election:dhcp')
      assert.match(failed.observed, /^split brain: .*\[multiple-leaders\].*s4/)
      assert.match(failed.next ?? '', /xcluster election check/)
      let api: {status: number; body: string} | undefined
      await waitUntil(
        async () => (api = await get(url('s2', '/health'), ca)).status === 503,
        10_000,
        () => `/health: ${api?.status} ${api?.body.slice(0, 500)}`,
      )
      assert.match(api!.body, /split brain/)
      const metrics = (await get(url('s3', '/metrics'), ca)).body.split('\n')
      assert.ok(metrics.includes('xcluster_service_split_brain{service="dhcp"} 1'), metrics.filter((l) => l.includes('split_brain')).join('\n'))
      // The dashboard of s2, over HTTPS: the red banner names the service and the disagreement,
      // and goes without a reload once the views agree.
      assert.ok(existsSync(CHROMIUM), `this test needs Debian's chromium at ${CHROMIUM}: apt-get install -y chromium`)
      const pin = spkiPin((await onNode('s2', `cat ${nodeTlsFiles.serverCert}`)).stdout)
      const browser = await chromium.launch({executablePath: CHROMIUM, args: ['--no-sandbox', `--ignore-certificate-errors-spki-list=${pin}`]})
      try {
        const page = await browser.newPage({viewport: {width: 1440, height: 900}})
        await page.goto(url('s2', '/'))
        await page.waitForSelector('#split-brain', {state: 'visible', timeout: 15_000})
        const banner = (await page.textContent('#split-brain')) ?? ''
        assert.match(banner, /dhcp/)
        assert.match(banner, /\[multiple-leaders\][^\n]*s4/)
        // The lab's own nodes and leaders, as etcd has them.
        const rows = (body: string) => page.$$eval(`#${body} tr`, (trs) => trs.map((tr) => [...(tr as HTMLTableRowElement).cells].map((c) => (c.textContent ?? '').trim())))
        await page.waitForFunction(() => document.querySelectorAll('#nodes tr').length === 6, undefined, {timeout: 10_000})
        assert.deepEqual((await rows('nodes')).map((r) => r[0]).sort(), ['c1', 'f1', 's1', 's2', 's3', 's4'])
        const dhcpLeader = (await rows('leaders')).find((r) => r[0] === 'dhcp')
        const etcdSays = JSON.parse((await get(url('s2', '/leaders'), ca)).body) as {service: string; leader: string; token: string}[]
        assert.deepEqual(dhcpLeader?.slice(1, 3), [etcdSays.find((e) => e.service === 'dhcp')?.leader, etcdSays.find((e) => e.service === 'dhcp')?.token])
        const artifacts = join(ROOT, 'test-artifacts', 'dashboard')
        mkdirSync(artifacts, {recursive: true})
        await page.screenshot({path: join(artifacts, 'lab-split-brain.png')})
        await store.delete(store.keys.electionView('dhcp', 's4'))
        await page.waitForSelector('#split-brain', {state: 'hidden', timeout: 15_000})
      } finally {
        await browser.close()
      }
    } finally {
      await store.delete(store.keys.electionView('dhcp', 's4'))
      await store.close()
    }
    assert.equal(check(await healthy(), 'election:dhcp')?.status, 'ok')
    let metrics: string[] = []
    await waitUntil(
      async () => (metrics = (await get(url('s3', '/metrics'), ca)).body.split('\n')).includes('xcluster_service_split_brain{service="dhcp"} 0'),
      10_000,
      () => metrics.filter((l) => l.includes('split_brain')).join('\n'),
    )
  })
})
