import {hostname} from 'node:os'

import {Flags} from '@oclif/core'
import {existsSync} from 'node:fs'

import {EtcdCommand} from '../etcd-command.js'
import {nodeTlsFiles} from '../lib/certs/paths.js'
import {usageError} from '../lib/errors.js'
import {healthApiTls, parseListenAddress} from '../lib/health/http-api.js'
import {serve, type ServeResult} from '../lib/serve/daemons.js'
import {ratholeClientDir} from '../lib/frontend/rathole-clients.js'
import {env, settings} from '../lib/settings.js'

export default class Serve extends EtcdCommand<typeof Serve> {
  static summary = "Run this node's xcluster daemons: leader election for singleton services, the DHCP/PXE server and the health API."
  static description = `Meant to run under systemd on every core node.

--elect NAME campaigns in etcd for a service declared in the spec's services:. The winner runs its start command (or systemctl start UNIT); a leader that cannot renew its lease stops the service before the lease could expire; SIGTERM or SIGINT stops it and resigns at once so a peer takes over.

--dhcp runs the DHCP/PXE server on --interface with MAC-typed leases in etcd. It campaigns for the dhcp service: only the leader answers, and every lease write is fenced with its token. The leader also takes enlistment reports (a node's SSH host keys, from the address leased to it) on port ${settings.enlistment.port}.

--provision (core nodes: it needs the cluster secret and SSH key) campaigns for the provision service: when the spec says autoProvision: true, the leader provisions every registered node that has enlisted, as node add would, with its enlisted host keys pinned.

--certs (core nodes: it needs the cluster secret) campaigns for the certs service: the leader renews each certificate as it falls due (30 days before its end, or the last third of a short-lived one's life), the cluster CA's as cert renew does and an ACME CA's as cert acme renew does (its challenges answered by serve --acme-http; a failed order is tried again after ${settings.certs.keeperRetryMs / 60_000} min, then twice as long each time up to ${settings.certs.keeperAcmeRetryMaxMs / 3_600_000} h), and signs a fresh CRL past half its life, every write fenced by its token; with the cluster's SSH key (${settings.bootstrap.nodeClusterKey}) it then puts what changed on the frontends, as frontend sync does. While it leads it also keeps one Rathole client config per ready frontend (0600, they hold tokens) in ${settings.frontend.ratholeClientDir} (env ${env.ratholeClientDir}), rendered again when an endpoint or a node changes and removed when it stops leading; nothing runs Rathole yet.

--acme-http ADDR answers ACME HTTP-01 challenges (GET /.well-known/acme-challenge/TOKEN) from etcd, for xcluster cert acme issue: the nginx site of each frontend (xcluster frontend render) proxies that path to 127.0.0.1:${settings.frontend.acmePort}, so with --acme-http 127.0.0.1:${settings.frontend.acmePort} there, whichever frontend the CA reaches answers. Plain HTTP, as HTTP-01 is.

--http ADDR serves a read-only health API (GET /health, /status, /nodes, /leaders, /leader/SERVICE, /metrics) and the web dashboard at / (live through /events): /leader/SERVICE is 200 only while this node leads SERVICE, for load balancers and keepalived track scripts. It speaks HTTPS with --http-cert/--http-key, or on a core node with its server certificate (${nodeTlsFiles.serverCert}); plain HTTP otherwise.

Events are logged to stderr as JSON lines.`
  static examples = [
    {command: '<%= config.bin %> <%= command.id %> --dhcp --interface eth0', description: 'Serve DHCP and PXE on eth0 while this node leads the dhcp election.'},
    {command: '<%= config.bin %> <%= command.id %> --elect postgres --elect qdrant', description: 'Campaign for two services as this host.'},
    {command: '<%= config.bin %> <%= command.id %> --dhcp --interface eth0 --unknown ignore --node s2', description: 'Serve only registered MACs, under an explicit node name.'},
    {
      command: '<%= config.bin %> <%= command.id %> --elect postgres --http 10.0.0.2:8008',
      description: 'Campaign for postgres, and answer GET /leader/postgres on port 8008 with 200 only while leading it (HTTPS on a core node).',
    },
    {command: '<%= config.bin %> <%= command.id %> --dhcp --interface eth0 --provision', description: "A core node's daemons as bootstrap sets them up: DHCP, enlistment and auto-provisioning."},
    {command: '<%= config.bin %> <%= command.id %> --certs', description: 'Renew certificates and the CRL while this node leads the certs election.'},
    {
      command: `<%= config.bin %> <%= command.id %> --acme-http 127.0.0.1:${settings.frontend.acmePort}`,
      description: `On a frontend: answer ACME HTTP-01 challenges from etcd on 127.0.0.1:${settings.frontend.acmePort}, where its nginx proxies /.well-known/acme-challenge/.`,
    },
  ]
  static flags = {
    elect: Flags.string({summary: "A service (from the spec's services:) to campaign for; repeatable.", multiple: true}),
    node: Flags.string({summary: "This node's name.", description: "Default: this host's short hostname."}),
    dhcp: Flags.boolean({summary: 'Run the DHCP/PXE server (answers while this node leads the dhcp election).'}),
    interface: Flags.string({char: 'i', summary: 'Interface to serve DHCP on (its address is the server identifier).', dependsOn: ['dhcp']}),
    address: Flags.string({summary: "The server's own address on --interface when it has several (default: the first in the cluster subnet).", dependsOn: ['dhcp']}),
    provision: Flags.boolean({
      summary: `Provision enlisted nodes while this node leads the provision election (spec autoProvision; reads ${nodeTlsFiles.secret} and ${settings.bootstrap.nodeClusterKey}).`,
    }),
    certs: Flags.boolean({
      summary: `Renew certificates and the CRL as they fall due while this node leads the certs election (reads the cluster secret, ${nodeTlsFiles.secret}).`,
    }),
    'secret-file': Flags.file({summary: `The cluster secret for --provision and --certs (default ${nodeTlsFiles.secret}).`, exists: true}),
    'acme-ca-file': Flags.file({
      summary: "With --certs: also trust this CA (PEM) for ACME directories' HTTPS when renewing, as cert acme renew --ca-file (a test CA's).",
      env: env.acmeCaFile,
      exists: true,
    }),
    http: Flags.string({summary: 'Serve the read-only health API, Prometheus /metrics and the web dashboard on this address (HOST:PORT, [IPv6]:PORT or :PORT).'}),
    'acme-http': Flags.string({summary: 'Answer ACME HTTP-01 challenges from etcd on this address (HOST:PORT, [IPv6]:PORT or :PORT), for cert acme issue.'}),
    'http-cert': Flags.file({summary: "The health API's TLS certificate (PEM; default on a core node: its server certificate).", exists: true, dependsOn: ['http', 'http-key']}),
    'http-key': Flags.file({summary: "The health API's TLS key (PEM).", exists: true, dependsOn: ['http', 'http-cert']}),
    unknown: Flags.string({summary: 'What an unknown MAC gets: a short lease from the discovery range, or nothing.', options: ['discover', 'ignore'], default: 'discover'}),
  }

  async run(): Promise<ServeResult> {
    const {elect = [], dhcp, provision, certs} = this.flags
    const secretPath = this.flags['secret-file'] ?? nodeTlsFiles.secret
    // Computed here, not as the flag's default: the manifest would bake in the build machine's name.
    const node = this.flags.node ?? hostname().split('.')[0]
    if (elect.length === 0 && !dhcp && !provision && !certs && this.flags.http === undefined && this.flags['acme-http'] === undefined)
      throw usageError('Nothing to serve.', 'Name a daemon: --dhcp --interface eth0, --provision, --certs, --elect SERVICE, --http ADDR or --acme-http ADDR.')
    if (dhcp && !this.flags.interface) throw usageError('--dhcp needs --interface.', 'Name the interface on the cluster network, e.g. --interface eth0.')
    const http = this.flags.http === undefined ? undefined : {address: parseListenAddress(this.flags.http), tls: healthApiTls({certFile: this.flags['http-cert'], keyFile: this.flags['http-key']})}
    const acmeHttp = this.flags['acme-http'] === undefined ? undefined : {address: parseListenAddress(this.flags['acme-http'])}
    const stop = new Promise<string>((resolve) => {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve(signal))
    })
    const log = (source: string, event: string, details: Record<string, unknown> = {}) => process.stderr.write(`${JSON.stringify({at: new Date().toISOString(), node, source, event, ...details})}\n`)
    const result = await serve(
      this.store(),
      {
        node,
        elect,
        ...(dhcp ? {dhcp: {interface: this.flags.interface!, address: this.flags.address, unknown: this.flags.unknown as 'discover' | 'ignore'}} : {}),
        ...(provision ? {provision: {secretPath, sshKeyPath: settings.bootstrap.nodeClusterKey}} : {}),
        ...(certs
          ? {
              certs: {
                secretPath,
                ratholeClientDir: ratholeClientDir(),
                ...(existsSync(settings.bootstrap.nodeClusterKey) ? {sshKeyPath: settings.bootstrap.nodeClusterKey} : {}),
                ...(this.flags['acme-ca-file'] ? {acmeCaFile: this.flags['acme-ca-file']} : {}),
              },
            }
          : {}),
        ...(http ? {http} : {}),
        ...(acmeHttp ? {acmeHttp} : {}),
      },
      stop,
      log,
    )
    log('serve', 'stopped', {by: result.stoppedBy, ...(result.dhcp ? {dhcp: result.dhcp} : {})})
    // Every service is stopped by now: a socket stuck on an unreachable etcd must not keep the
    // process alive (systemd would wait, then SIGKILL). The timer is unref'd: a clean exit wins.
    setTimeout(() => process.exit(process.exitCode ?? 0), settings.serveUnit.exitGraceMs).unref()
    return result
  }
}
