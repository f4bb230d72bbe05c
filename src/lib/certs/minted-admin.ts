import {EtcdStore} from '../etcd/store.js'
import {settings} from '../settings.js'
import {forgetMinted, mintClientFiles, type MintedFiles} from './cluster-pki.js'
import {identity} from './identities.js'
import {readClusterSecret} from './secret.js'
import {loadCa} from './store.js'

/**
 * The operator identity for a leader's writes that the serve identity may not make (nodes, pins,
 * certificates): minted from the CA with the cluster secret of a core node, short-lived, renewed
 * at half its validity, and forgotten (files and connection) on close.
 */
export class MintedAdmin {
  private minted?: {files: MintedFiles; store: EtcdStore; until: number}

  constructor(
    /** The serve identity's connection: where the CA is read and which endpoints to dial. */
    private readonly serveStore: EtcdStore,
    private readonly secretPath: string,
  ) {}

  async store(): Promise<EtcdStore> {
    // An etcd without client certificates has no identities (nor RBAC): the serve connection writes as anyone would.
    if (!this.serveStore.connection.cert) return this.serveStore
    if (this.minted && this.minted.until > Date.now()) return this.minted.store
    await this.close()
    const ca = await loadCa(this.serveStore, readClusterSecret(this.secretPath))
    const files = await mintClientFiles(ca, identity.admin)
    const {endpoints, cluster} = this.serveStore.connection
    const store = new EtcdStore({endpoints, cluster, ca: files.ca, cert: files.cert, key: files.key})
    // Renewed at half its validity: a run started now ends long before the rest runs out.
    this.minted = {files, store, until: Date.now() + (settings.certs.rootClientDays * 86_400_000) / 2}
    return store
  }

  async close(): Promise<void> {
    if (!this.minted) return
    const {files, store} = this.minted
    this.minted = undefined
    await store.close()
    forgetMinted(files)
  }
}
