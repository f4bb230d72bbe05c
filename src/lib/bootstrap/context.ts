import {createCa, type CertificateAuthority} from '../certs/authority.js'
import {forgetMinted, mintClientFiles} from '../certs/cluster-pki.js'
import {identity} from '../certs/identities.js'
import {adminTlsPaths, nodeTlsFiles} from '../certs/paths.js'
import {ClusterSecret, readClusterSecret, writeClusterSecret} from '../certs/secret.js'
import {loadCa, saveCa} from '../certs/store.js'
import {EtcdStore, type EtcdConnection} from '../etcd/store.js'
import type {NodeRecord} from '../nodes/record.js'
import {NodeRunContext, type NodeHost} from '../phases/context.js'
import type {ClusterSpec} from '../spec/types.js'
import {HostKeyStore, type HostPool} from '../ssh/index.js'
import type {ReleaseDeployment} from '../release/deployment.js'
import type {RunJournal} from '../tasks/journal.js'
import type {BootstrapPlan} from './plan.js'

/** Who runs this part of the bootstrap: the operator's admin host, or the seed core node carrying it on. */
export type BootstrapRole = 'admin' | 'core'

export interface BootstrapOptions {
  role: BootstrapRole
  /** Run the admin host's bootstrap services as processes here (no container engine). */
  native: boolean
  /** The spec file given to bootstrap (admin only). */
  specFile?: string
}

/**
 * The state of one bootstrap run, shared by its phases. The cluster's state starts in the admin
 * host's etcd and moves (one verified copy) into the cluster's own etcd once the seed member
 * runs; from then on `store` is the cluster's etcd and the run's journal is kept there.
 */
export class BootstrapContext extends NodeRunContext {
  /** xcluster and its Node.js runtime, built once for the run, going to the core nodes. */
  release!: ReleaseDeployment
  journal?: RunJournal
  runId?: string
  private caCache?: CertificateAuthority
  private secretCache?: ClusterSecret
  private clusterStoreCache?: EtcdStore
  /** Temporary client credentials minted from the CA (root for RBAC and membership, admin on core). */
  private readonly minted: string[] = []

  constructor(
    hosts: NodeHost[],
    dryRun: boolean,
    /** The etcd the run started with: the admin host's (or, re-run, the cluster's). */
    readonly initialStore: EtcdStore,
    spec: ClusterSpec,
    cluster: NodeRecord[],
    pool: HostPool,
    readonly bootstrap: BootstrapPlan,
    readonly options: BootstrapOptions,
  ) {
    super(hosts, dryRun, initialStore, spec, cluster, pool, new HostKeyStore(initialStore))
  }

  get role(): BootstrapRole {
    return this.options.role
  }

  /** The seed core node's host entry. */
  get seed(): NodeHost {
    return this.hosts.find((h) => h.name === this.bootstrap.seed.name) as NodeHost
  }

  /** Whether the state already lives in the cluster's own etcd (after the migrate step, or on a re-run). */
  get onClusterStore(): boolean {
    return this.store !== this.initialStore || this.initialStore.connection.endpoints.join(',') === this.bootstrap.endpoints.join(',')
  }

  /** The cluster secret: on the admin host beside the operator's credentials, on a core node in its PKI directory. */
  secret(create = false): ClusterSecret {
    if (this.secretCache) return this.secretCache
    const path = this.secretPath()
    try {
      this.secretCache = readClusterSecret(path)
    } catch (err) {
      if (!create || (err as {code?: string}).code !== 'SECRET_MISSING') throw err
      const secret = ClusterSecret.generate()
      if (!this.dryRun) writeClusterSecret(path, secret)
      this.secretCache = secret
    }
    return this.secretCache
  }

  secretPath(): string {
    return this.role === 'admin' ? adminTlsPaths(this.bootstrap.cluster).secret : nodeTlsFiles.secret
  }

  /** The cluster CA: from etcd (sealed under the secret), or created and stored when `create` (the first run). */
  async ca(create = false): Promise<CertificateAuthority> {
    if (this.caCache) return this.caCache
    const stored = await this.store.getJson(this.store.keys.certAuthority())
    if (stored) {
      this.caCache = await loadCa(this.store, this.secret())
    } else if (create) {
      const ca = await createCa({cluster: this.bootstrap.cluster})
      if (!this.dryRun) await saveCa(this.store, ca, this.secret(true))
      this.caCache = ca
    } else {
      throw new Error(`no cluster CA is stored for ${this.bootstrap.cluster}`)
    }
    return this.caCache
  }

  /** Switches the run to the cluster's etcd (its state was just copied there): pins, journal, everything. */
  async moveToClusterStore(store: EtcdStore): Promise<void> {
    if (this.journal && this.runId) await this.journal.moveTo(store, this.runId)
    this.store = store
    this.hostKeys = new HostKeyStore(store)
  }

  /** The cluster's etcd as the operator (the admin role): what the run writes to after the move. */
  async clusterStore(): Promise<EtcdStore> {
    if (this.clusterStoreCache) return this.clusterStoreCache
    const connection = this.role === 'admin' ? this.adminConnection() : await this.mintedConnection(identity.admin)
    this.clusterStoreCache = new EtcdStore(connection)
    return this.clusterStoreCache
  }

  /**
   * The cluster's etcd as etcd's root user, with a short-lived certificate minted from the CA for
   * this run and forgotten after: for what RBAC reserves to root (users, roles, membership).
   */
  async rootStore(): Promise<EtcdStore> {
    return new EtcdStore(await this.mintedConnection(identity.root))
  }

  private adminConnection(): EtcdConnection {
    const paths = adminTlsPaths(this.bootstrap.cluster)
    return {endpoints: this.bootstrap.endpoints, cluster: this.bootstrap.cluster, ca: paths.ca, cert: paths.cert, key: paths.key}
  }

  private async mintedConnection(commonName: string): Promise<EtcdConnection> {
    const {dir, ...files} = await mintClientFiles(await this.ca(), commonName)
    this.minted.push(dir)
    return {endpoints: this.bootstrap.endpoints, cluster: this.bootstrap.cluster, ...files}
  }

  /** Forgets minted credentials and closes the cluster connections. */
  async close(): Promise<void> {
    await this.clusterStoreCache?.close()
    for (const dir of this.minted) forgetMinted({dir})
  }
}
