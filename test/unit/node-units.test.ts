import assert from 'node:assert/strict'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {parse as parseYaml} from 'yaml'

import {etcdClientEndpoints, etcdMembers, nodeMemberTls, renderEtcdMemberConfig, renderEtcdMemberUnit} from '../../src/lib/etcd/cluster-config.js'
import {renderServeEnv, renderServeUnit} from '../../src/lib/election/units.js'
import {XclusterError} from '../../src/lib/errors.js'
import {loadSpecFile} from '../../src/lib/spec/parse.js'
import {ROOT} from '../helpers/cli.js'

const spec = loadSpecFile(join(ROOT, 'templates', 'xcluster.yaml'))

describe('etcd members from the spec', () => {
  it('one member per core node, on its fixed IP', () => {
    assert.deepEqual(etcdMembers(spec).map((m) => `${m.name} ${m.clientUrl} ${m.peerUrl}`), [
      's1 http://10.0.0.2:2379 http://10.0.0.2:2380',
      's2 http://10.0.0.3:2379 http://10.0.0.3:2380',
      's3 http://10.0.0.4:2379 http://10.0.0.4:2380',
    ])
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
  it('with TLS: https URLs, client-certificate auth on both ports, only peer certificates on the peer port, no gateway', () => {
    const text = renderEtcdMemberConfig(spec, 's1', {tls: nodeMemberTls})
    assert.match(text, /^listen-client-urls: https:\/\/10\.0\.0\.2:2379$/m)
    assert.match(text, /^initial-cluster: s1=https:\/\/10\.0\.0\.2:2380,s2=https:\/\/10\.0\.0\.3:2380,s3=https:\/\/10\.0\.0\.4:2380$/m)
    assert.match(text, /^client-transport-security:\n  cert-file: \/etc\/xcluster\/pki\/etcd-server\.crt\n  key-file: \/etc\/xcluster\/pki\/etcd-server\.key\n  trusted-ca-file: \/etc\/xcluster\/pki\/ca\.crt\n  client-cert-auth: true$/m)
    assert.match(text, /^peer-transport-security:\n  cert-file: \/etc\/xcluster\/pki\/etcd-peer\.crt\n  key-file: \/etc\/xcluster\/pki\/etcd-peer\.key\n  trusted-ca-file: \/etc\/xcluster\/pki\/ca\.crt\n  client-cert-auth: true$/m)
    assert.match(text, /^PeerTLSInfo:\n  AllowedCN: etcd-peer$/m)
    assert.match(text, /^enable-grpc-gateway: false$/m)
    assert.doesNotMatch(text, /http:\/\//)
    const parsed = parseYaml(text) as Record<string, unknown>
    assert.equal(parsed['enable-grpc-gateway'], false, 'one gateway setting, and it is off')
    const plain = parseYaml(renderEtcdMemberConfig(spec, 's1')) as Record<string, unknown>
    assert.equal(plain['enable-grpc-gateway'], true)
    assert.equal(plain['client-transport-security'], undefined)
  })
  it('refuses a node that is not a core node, and a core node without an IP', () => {
    assert.throws(() => renderEtcdMemberConfig(spec, 'c1'), (e: unknown) => e instanceof XclusterError && e.code === 'ETCD_NOT_A_MEMBER')
    const noIp = {...spec, nodes: spec.nodes.map((n) => (n.name === 's3' ? {...n, ip: undefined} : n))}
    assert.throws(() => etcdMembers(noIp), (e: unknown) => e instanceof XclusterError && e.code === 'ETCD_MEMBER_NO_IP' && /s3/.test(e.message))
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
