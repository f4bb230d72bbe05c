import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {parse as parseYaml} from 'yaml'

import {etcdClientEndpoints, etcdMembers, nodeMemberTls, renderEtcdMemberConfig, renderEtcdMemberUnit} from '../../src/lib/etcd/cluster-config.js'
import {safetyMarginMs} from '../../src/lib/election/lease.js'
import {renderServeEnv, renderServeUnit, serveStopBudgetMs} from '../../src/lib/election/units.js'
import {settings} from '../../src/lib/settings.js'
import {XclusterError} from '../../src/lib/errors.js'
import {loadSpecFile} from '../../src/lib/spec/parse.js'
import {renderTemplate} from '../../src/lib/render/template.js'
import {ROOT} from '../helpers/cli.js'
import {requireTool} from '../helpers/tools.js'

const spec = loadSpecFile(join(ROOT, 'templates', 'xcluster.yaml'))

describe('etcd members from the spec', () => {
  it('one member per core node, on its fixed IP', () => {
    assert.deepEqual(
      etcdMembers(spec).map((m) => `${m.name} ${m.clientUrl} ${m.peerUrl}`),
      ['s1 http://10.0.0.2:2379 http://10.0.0.2:2380', 's2 http://10.0.0.3:2379 http://10.0.0.3:2380', 's3 http://10.0.0.4:2379 http://10.0.0.4:2380'],
    )
    assert.equal(etcdClientEndpoints(etcdMembers(spec)), 'http://10.0.0.2:2379,http://10.0.0.3:2379,http://10.0.0.4:2379')
  })
  it('renders a member config with the whole initial cluster', () => {
    const text = renderEtcdMemberConfig(spec, 's2', {clusterState: 'existing'})
    assert.match(text, /^name: s2$/m)
    assert.match(text, /^listen-peer-urls: http:\/\/10\.0\.0\.3:2380$/m)
    assert.match(text, /^initial-cluster: s1=http:\/\/10\.0\.0\.2:2380,s2=http:\/\/10\.0\.0\.3:2380,s3=http:\/\/10\.0\.0\.4:2380$/m)
    assert.match(text, /^initial-cluster-state: existing$/m)
    assert.match(text, /^pre-vote: true$/m)
  })
  it("sizes the member for thousands of nodes: a 4 GiB backend quota, hourly compaction, and etcd's own request limits", () => {
    const parsed = parseYaml(renderEtcdMemberConfig(spec, 's1')) as Record<string, unknown>
    assert.equal(parsed['quota-backend-bytes'], 4 * 1024 ** 3)
    assert.equal(parsed['auto-compaction-mode'], 'periodic')
    assert.equal(parsed['auto-compaction-retention'], '1h')
    // xcluster works with any stock etcd: it never depends on raised limits.
    assert.equal(parsed['max-txn-ops'], undefined)
    assert.equal(parsed['max-request-bytes'], undefined)
  })
  it('with TLS: https URLs, client-certificate auth on both ports, only peer certificates on the peer port, no gateway', () => {
    const text = renderEtcdMemberConfig(spec, 's1', {tls: nodeMemberTls})
    assert.match(text, /^listen-client-urls: https:\/\/10\.0\.0\.2:2379$/m)
    assert.match(text, /^initial-cluster: s1=https:\/\/10\.0\.0\.2:2380,s2=https:\/\/10\.0\.0\.3:2380,s3=https:\/\/10\.0\.0\.4:2380$/m)
    assert.match(
      text,
      /^client-transport-security:\n {2}cert-file: \/etc\/xcluster\/pki\/etcd-server\.crt\n {2}key-file: \/etc\/xcluster\/pki\/etcd-server\.key\n {2}trusted-ca-file: \/etc\/xcluster\/pki\/ca\.crt\n {2}client-cert-auth: true$/m,
    )
    assert.match(
      text,
      /^peer-transport-security:\n {2}cert-file: \/etc\/xcluster\/pki\/etcd-peer\.crt\n {2}key-file: \/etc\/xcluster\/pki\/etcd-peer\.key\n {2}trusted-ca-file: \/etc\/xcluster\/pki\/ca\.crt\n {2}client-cert-auth: true$/m,
    )
    assert.match(text, /^PeerTLSInfo:\n {2}AllowedCN: etcd-peer$/m)
    assert.match(text, /^enable-grpc-gateway: false$/m)
    assert.doesNotMatch(text, /http:\/\//)
    const parsed = parseYaml(text) as Record<string, unknown>
    assert.equal(parsed['enable-grpc-gateway'], false, 'one gateway setting, and it is off')
    const plain = parseYaml(renderEtcdMemberConfig(spec, 's1')) as Record<string, unknown>
    assert.equal(plain['enable-grpc-gateway'], true)
    assert.equal(plain['client-transport-security'], undefined)
  })
  it('refuses a node that is not a core node, and a core node without an IP', () => {
    assert.throws(
      () => renderEtcdMemberConfig(spec, 'c1'),
      (e: unknown) => e instanceof XclusterError && e.code === 'ETCD_NOT_A_MEMBER',
    )
    const noIp = {...spec, nodes: spec.nodes.map((n) => (n.name === 's3' ? {...n, ip: undefined} : n))}
    assert.throws(
      () => etcdMembers(noIp),
      (e: unknown) => e instanceof XclusterError && e.code === 'ETCD_MEMBER_NO_IP' && /s3/.test(e.message),
    )
  })
})

describe('node units', () => {
  it('the serve unit runs the node wrapper with its env file; the env file carries --elect flags', () => {
    const unit = renderServeUnit()
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/xcluster serve --node %H \$XCLUSTER_SERVE_ARGS$/m)
    assert.match(unit, /^EnvironmentFile=\/etc\/xcluster\/serve\.env$/m)
    assert.match(unit, /^KillSignal=SIGTERM$/m)
    assert.match(unit, /^Restart=on-failure$/m)
    const env = renderServeEnv({etcd: 'http://10.0.0.2:2379', cluster: 'xcluster', elect: ['postgres', 'qdrant']})
    assert.match(env, /^XCLUSTER_SERVE_ARGS=--elect postgres --elect qdrant$/m)
    assert.match(env, /^XCLUSTER_ETCD=http:\/\/10\.0\.0\.2:2379$/m)
    assert.doesNotMatch(env, /XCLUSTER_ETCD_(CA|CERT|KEY)/)
    const tls = renderServeEnv({etcd: 'https://10.0.0.2:2379', cluster: 'xcluster', elect: [], tls: true})
    assert.match(tls, /^XCLUSTER_ETCD_CA=\/etc\/xcluster\/pki\/ca\.crt\nXCLUSTER_ETCD_CERT=\/etc\/xcluster\/pki\/serve\.crt\nXCLUSTER_ETCD_KEY=\/etc\/xcluster\/pki\/serve\.key$/m)
    assert.match(renderEtcdMemberUnit(), /^ExecStart=\/usr\/bin\/etcd --config-file \/etc\/xcluster\/etcd\.conf\.yml$/m)
  })
})

describe("the serve unit's stop budget", () => {
  it('TimeoutStopSec covers what a SIGTERMed serve may still do: a start in flight, its lock, the stop, the unlock, the cleanup', () => {
    const unit = renderServeUnit()
    const seconds = Number(unit.match(/^TimeoutStopSec=(\d+)$/m)?.[1])
    const e = settings.election
    // Derived here from the settings serve obeys, independently of serveStopBudgetMs().
    const worstMs = e.startTimeoutMs + settings.ceph.commandTimeoutMs + e.stopTimeoutMs + settings.ceph.commandTimeoutMs + 2 * e.shutdownCleanupMs + e.callTimeoutMs + settings.serveUnit.exitGraceMs
    assert.ok(seconds * 1000 >= worstMs, `TimeoutStopSec=${seconds} s is shorter than serve's worst graceful stop (${worstMs} ms): systemd would SIGKILL it mid-stop`)
    assert.ok(seconds * 1000 >= serveStopBudgetMs())
    // systemd kills what is left of the unit (the instances) with the final SIGKILL, then frees the leases.
    assert.match(unit, /^KillMode=mixed$/m)
    assert.match(unit, /^ExecStopPost=-\/opt\/xcluster\/libexec\/xcluster-revoke-leases \/run\/xcluster\/serve\/%H$/m)
  })
  it('a guardian deadline lies inside the safety margin, after the demotion point and before the lease could expire', () => {
    for (const ttl of [1, 2, 5, 30]) {
      const margin = safetyMarginMs(ttl)
      const killBudget = margin * settings.election.guardianKillFraction
      assert.ok(killBudget > 0 && killBudget < margin, `TTL ${ttl}: kill budget ${killBudget} ms, margin ${margin} ms`)
      // The guardian ticks every 20 ms and reads a 10 ms clock: a kill budget must leave room for both.
      assert.ok(killBudget >= 50, `TTL ${ttl}: ${killBudget} ms leaves no room for the guardian's own ticks`)
    }
  })
})

describe('the units bootstrap installs on a core node', () => {
  it('systemd-analyze verify accepts each of them, and the runtime binding drop-in', () => {
    const analyze = requireTool('systemd-analyze', 'systemd')
    requireTool('etcd', 'etcd-server')
    requireTool('dnsmasq', 'dnsmasq-base')
    const dir = mkdtempSync(join(tmpdir(), 'xct-units-'))
    try {
      // The serve unit as rendered, with this checkout's program and libexec standing in for the
      // node's /usr/local/bin/xcluster and /opt/xcluster/libexec (verify checks they exist).
      const units: Record<string, string> = {
        [settings.serveUnit.name]: renderServeUnit(join(ROOT, 'bin', 'run.js'), join(ROOT, 'libexec')),
        'etcd-member.service': renderEtcdMemberUnit(),
        [settings.coreDns.unit]: renderTemplate('node/xcluster-dns.service', {configFile: settings.coreDns.configFile}),
        'xct-elected.service': '[Service]\nExecStart=/bin/sleep infinity\n',
      }
      for (const [name, text] of Object.entries(units)) writeFileSync(join(dir, name), text)
      mkdirSync(join(dir, 'xct-elected.service.d'))
      writeFileSync(join(dir, 'xct-elected.service.d', settings.election.bindingDropIn), renderTemplate('node/serve-binding.conf', {serveUnit: settings.serveUnit.name}))
      for (const name of Object.keys(units)) {
        const r = spawnSync(analyze, ['verify', join(dir, name)], {encoding: 'utf8', env: {...process.env, SYSTEMD_UNIT_PATH: `${dir}:`}})
        assert.equal(r.status, 0, `${name}: ${r.stdout}${r.stderr}`)
      }
      const shown = spawnSync('systemd-analyze', ['cat-config', '--no-pager', join(dir, 'xct-elected.service.d', settings.election.bindingDropIn)], {encoding: 'utf8'})
      assert.match(shown.stdout + readFileSync(join(dir, 'xct-elected.service.d', settings.election.bindingDropIn), 'utf8'), /BindsTo=xcluster-serve\.service/)
      writeFileSync(join(dir, 'bad.service'), '[Service]\nExecStrat=/bin/true\n')
      assert.notEqual(spawnSync(analyze, ['verify', join(dir, 'bad.service')]).status, 0, 'the check can fail')
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
