import {startAcmeResponder} from '../certs/acme-responder.js'
import type {CampaignStatus} from '../election/campaign.js'
import {ElectionDaemon, resolveServices} from '../election/daemon.js'
import {instanceScope} from '../election/instance.js'
import {leaderFence} from '../election/fence.js'
import {bindUnitsToServe} from '../election/unit-binding.js'
import type {InProcessService} from '../election/service-runner.js'
import type {EtcdStore} from '../etcd/store.js'
import {startHealthApi, type ListenAddress, type LocalLeadership} from '../health/http-api.js'
import {EnlistmentReceiver} from '../dhcp/enlistment-receiver.js'
import {DhcpServer, type DhcpStats} from '../dhcp/server.js'
import {settings} from '../settings.js'
import type {ClusterSpec, ServiceSpec} from '../spec/types.js'
import {readStoredSpec} from '../spec/store.js'
import {AutoProvisioner} from '../nodes/auto-provision.js'
import {CertKeeper} from '../certs/keeper.js'
import {lockCampaigns} from './node-lock.js'

export interface ServeOptions {
  /** This node's name: what it campaigns as. */
  node: string
  /** Services from the spec to campaign for (start/stop commands or units). */
  elect: string[]
  /** Run the DHCP/PXE server; it answers only while this node leads the `dhcp` election. */
  dhcp?: {interface: string; address?: string; unknown: 'discover' | 'ignore'}
  /** Provision enlisted nodes (spec autoProvision) while this node leads the `provision` election. */
  provision?: {secretPath: string; sshKeyPath: string}
  /**
   * Renew due certificates (the cluster CA's and ACME ones) and the CRL, sync the frontends (with
   * the SSH key) and keep the Rathole clients' configs in `ratholeClientDir`, while this node leads
   * the `certs` election.
   */
  certs?: {secretPath: string; sshKeyPath?: string; acmeCaFile?: string; ratholeClientDir?: string}
  /** Serve the read-only health API (src/lib/health/http-api.ts) here; HTTPS with `tls`. */
  http?: {address: ListenAddress; tls?: {certFile: string; keyFile: string}}
  /** Answer ACME HTTP-01 challenges from etcd here (src/lib/certs/acme-responder.ts), for the frontends' nginx. */
  acmeHttp?: {address: ListenAddress}
}

export interface ServeResult {
  node: string
  services: string[]
  stoppedBy: string
  final: CampaignStatus[]
  dhcp?: DhcpStats
}

export type ServeLog = (source: string, event: string, details?: Record<string, unknown>) => void

/**
 * An in-process service's election (dhcp, provision): the spec's entry of that name tunes it;
 * defaults otherwise. A node its `nodes:` leaves out is refused (NODE_NOT_ELIGIBLE).
 */
function inProcessService(spec: ClusterSpec, name: string, node: string): ServiceSpec {
  const service = spec.services?.find((s) => s.name === name) ?? {name, ttl: settings.election.defaultTtlSeconds}
  if (service.nodes && !service.nodes.includes(node)) resolveServices(spec, [name], node)
  return service
}

/**
 * What /leader/SERVICE answers, from this serve's campaigns in memory: the campaign knows whether
 * its lease is still safely held, which etcd cannot say any faster. Set `daemon` once it exists.
 */
class LocalLeaders {
  daemon?: ElectionDaemon

  constructor(
    private readonly node: string,
    /** Services it answers 503 for rather than 404: the spec's, and what this serve runs. */
    private readonly known: ReadonlySet<string>,
  ) {}

  leaderOf = (service: string): LocalLeadership | undefined => {
    const campaign = this.daemon?.campaign(service)
    if (!campaign) return this.known.has(service) ? {service, node: this.node, leader: false, phase: 'not-campaigning', token: null, seenLeader: null, active: false} : undefined
    const s = campaign.status()
    // A safe leader whose instance is not running (starting, or its start failed) takes no traffic.
    return {service, node: this.node, leader: campaign.isSafeLeader() && s.active, phase: s.phase, token: s.token, seenLeader: s.leader, active: s.active}
  }
}

/**
 * `xcluster serve`: the node's long-running daemons in one process. Every core node runs the
 * DHCP server, but only the elected `dhcp` leader answers, and every lease it writes carries its
 * fencing token, so a deposed leader's writes are refused by etcd.
 */
export async function serve(store: EtcdStore, options: ServeOptions, stop: Promise<string>, log: ServeLog): Promise<ServeResult> {
  const spec = await readStoredSpec(store)
  const services = resolveServices(
    spec,
    options.elect.filter(
      (name) => !(options.dhcp && name === 'dhcp') && !(options.provision && name === settings.enlistment.provisionService) && !(options.certs && name === settings.certs.keeperService),
    ),
    options.node,
  )
  // No second serve may campaign for these services as this node, nor clean up what this one runs.
  const lock = await lockCampaigns(instanceScope(store.connection, options.node).prefix, [
    ...services.map((s) => s.name),
    ...(options.dhcp ? ['dhcp'] : []),
    ...(options.provision ? [settings.enlistment.provisionService] : []),
    ...(options.certs ? [settings.certs.keeperService] : []),
  ])
  try {
    const leaders = new LocalLeaders(
      options.node,
      new Set([
        ...(spec.services ?? []).map((s) => s.name),
        ...services.map((s) => s.name),
        ...(options.dhcp ? ['dhcp'] : []),
        ...(options.provision ? [settings.enlistment.provisionService] : []),
        ...(options.certs ? [settings.certs.keeperService] : []),
      ]),
    )
    // Before the daemons, so an address in use fails serve before it campaigns; closed after them,
    // so a load balancer sees 503 from /leader while the services stop, not a refused connection.
    const api = options.http ? await startHealthApi({...options.http, store, leaderOf: leaders.leaderOf, log: (event, details) => log('http', event, details)}) : undefined
    try {
      const acme = options.acmeHttp ? await startAcmeResponder({...options.acmeHttp, store, log: (event, details) => log('acme', event, details)}) : undefined
      try {
        return await serveLocked(store, spec, services, options, stop, log, leaders)
      } finally {
        await acme?.close()
      }
    } finally {
      await api?.close()
    }
  } finally {
    await lock.release()
  }
}

async function serveLocked(store: EtcdStore, spec: ClusterSpec, services: ServiceSpec[], options: ServeOptions, stop: Promise<string>, log: ServeLog, leaders: LocalLeaders): Promise<ServeResult> {
  const bound = await bindUnitsToServe(services.flatMap((s) => (s.unit ? [s.unit] : [])))
  if (bound.length > 0) log('serve', 'units-bound', {units: bound})
  const inProcess: Record<string, InProcessService> = {}
  let dhcp: DhcpServer | undefined
  let enlistment: EnlistmentReceiver | undefined
  // Assigned once below; declared here because the DHCP server's leadership check reads it.
  // eslint-disable-next-line prefer-const
  let daemon: ElectionDaemon | undefined
  if (options.dhcp) {
    let token: string | undefined
    const service = inProcessService(spec, 'dhcp', options.node)
    inProcess.dhcp = {
      async start(leaderToken) {
        token = leaderToken
      },
      async stop() {
        token = undefined
      },
    }
    // The token says the service was started; the campaign says whether the lease behind it
    // is still safely held right now (it may have lapsed before the stop callback ran).
    const canServe = async () => (token && daemon?.campaign('dhcp')?.isSafeLeader() ? {ok: true, token} : {ok: false})
    dhcp = new DhcpServer({
      store,
      interface: options.dhcp.interface,
      ...(options.dhcp.address ? {address: options.dhcp.address} : {}),
      unknown: options.dhcp.unknown,
      canServe,
      // Read at each write: the token of the leadership in force, or none (refused).
      fence: (txn) => leaderFence(store.keys, 'dhcp', token)(txn),
      log: (line) => log('dhcp', 'log', {line}),
    })
    await dhcp.start()
    // Nodes report their host keys to the server their lease came from (enlistment).
    enlistment = new EnlistmentReceiver({
      store,
      address: dhcp.address,
      canServe,
      fence: (txn, leaderToken) => leaderFence(store.keys, 'dhcp', leaderToken)(txn),
      log: (event, details) => log('dhcp', event, details),
    })
    // DHCP must not go down with it: a node that cannot enlist can still be added with --host-key.
    await enlistment.start().catch((err: Error) => {
      log('dhcp', 'enlistment-unavailable', {port: settings.enlistment.port, error: err.message})
      enlistment = undefined
    })
    services.push(service)
  }
  /** A leader-only worker of serve's own (started with its token, stopped when leadership ends), campaigning for `name`. */
  const leaderWorker = <W extends {start(token: string): void; stop(): void}>(name: string, make: (log: (event: string, details: Record<string, unknown>) => void) => W): W => {
    const service = inProcessService(spec, name, options.node)
    const worker = make((event, details) => log(service.name, event, details))
    inProcess[service.name] = {
      async start(token) {
        worker.start(token)
      },
      async stop() {
        worker.stop()
      },
    }
    services.push(service)
    return worker
  }
  const provisioner = options.provision ? leaderWorker(settings.enlistment.provisionService, (l) => new AutoProvisioner({store, node: options.node, ...options.provision!, log: l})) : undefined
  const keeper = options.certs ? leaderWorker(settings.certs.keeperService, (l) => new CertKeeper({store, node: options.node, ...options.certs!, log: l})) : undefined
  daemon = new ElectionDaemon(store, options.node, services, (service) => (event, details) => log(service, event, details), inProcess)
  leaders.daemon = daemon
  daemon.start()
  const stoppedBy = await stop
  // DHCP first: its last writes (discovered MACs) are fenced, so they need the leadership
  // the daemon resigns next.
  await enlistment?.stop()
  await dhcp?.stop()
  await daemon.stop(stoppedBy)
  await provisioner?.close()
  await keeper?.close()
  return {
    node: options.node,
    services: services.map((s) => s.name),
    stoppedBy,
    final: daemon.status(),
    ...(dhcp ? {dhcp: dhcp.snapshotStats()} : {}),
  }
}
