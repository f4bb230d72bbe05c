/**
 * The elected `certs` service of `xcluster serve --certs` on the core nodes: while it leads, it
 * renews every certificate whose renewal is due (src/lib/certs/expiry.ts), the cluster CA's as
 * `cert renew` does and an ACME CA's as `cert acme renew` does (a new order, its challenges
 * answered from etcd by serve --acme-http), and signs a fresh CRL past half its life, each write
 * one transaction fenced by its token, so a deposed leader (paused, partitioned) can renew nothing
 * even if it wakes up believing it still leads. A failed ACME order is retried later and later
 * (settings.certs.keeperAcmeRetryMaxMs says why).
 *
 * With the cluster's SSH key it also keeps the frontends in step: after a renewal, an endpoint's
 * change or its own election, it runs `frontend sync` (which changes only what differs). And it
 * keeps the Rathole clients' configs on this node (src/lib/frontend/rathole-clients.ts), rendered
 * again whenever an endpoint or a node changes, and removed when it stops leading.
 *
 * No polling: it sleeps until the next certificate falls due (at most an hour, so a clock that
 * jumped is noticed) and wakes at once when a certificate changes in etcd.
 */
import {settlesWithin} from '../clock.js'
import {leaderFence} from '../election/fence.js'
import {XclusterError} from '../errors.js'
import {RatholeClientConfigs} from '../frontend/rathole-clients.js'
import {readFrontendState} from '../frontend/registry.js'
import {syncFrontends} from '../frontend/sync.js'
import type {EtcdStore, Transaction, Versioned} from '../etcd/store.js'
import type {PrefixWatch} from '../etcd/watch.js'
import type {NodeRecord} from '../nodes/record.js'
import {settings} from '../settings.js'
import {renewAcmeCertificate} from './acme.js'
import type {CertificateAuthority} from './authority.js'
import {DAY_MS, renewalAt} from './expiry.js'
import {MintedAdmin} from './minted-admin.js'
import {renewStoredCertificate} from './renewal.js'
import {readCrl, refreshCrl} from './revocation.js'
import {readClusterSecret} from './secret.js'
import {loadCa, type StoredCertificate, type StoredCertificateSummary} from './store.js'

export interface CertKeeperOptions {
  /** The cluster as this node's serve identity: it reads; certificates are written as the operator. */
  store: EtcdStore
  node: string
  /** The cluster secret (core nodes only): opens the CA and seals the new keys. */
  secretPath: string
  log: (event: string, details: Record<string, unknown>) => void
  /** Where the renewals write (default: the operator identity minted from the CA). */
  adminStore?: () => Promise<EtcdStore>
  /** The cluster's SSH key (core nodes): with it, the frontends get what changed (frontend sync). */
  sshKeyPath?: string
  /** A CA (PEM) to trust for ACME directories' HTTPS beside the system's, as cert acme renew's --ca-file (a test CA). */
  acmeCaFile?: string
  /** Where, while it leads, it keeps the Rathole clients' configs (core nodes; none without it). */
  ratholeClientDir?: string
}

/** A failed ACME renewal's wait before the next order: keeperRetryMs, doubling per failure, up to keeperAcmeRetryMaxMs. */
export const acmeRetryDelayMs = (failures: number): number => Math.min(settings.certs.keeperRetryMs * 2 ** Math.max(0, failures - 1), settings.certs.keeperAcmeRetryMaxMs)

/** An ACME certificate whose renewal failed: how often, and when to order again, for the record as it was then. */
interface AcmeFailure {
  modRevision: string
  failures: number
  retryAt: number
}

/** Whether a node record, as the watch decoded it, is a frontend's. */
const isFrontendRecord = (value: unknown): boolean => (value as Partial<NodeRecord> | undefined)?.type === 'frontend'

export class CertKeeper {
  private token?: string
  private timer?: NodeJS.Timeout
  private running?: Promise<void>
  private again = false
  private watch?: PrefixWatch
  private frontendWatch?: PrefixWatch
  private nodeWatch?: PrefixWatch
  /** The frontends may lag etcd: a certificate they serve was renewed, or an endpoint changed. */
  private syncPending = false
  /** The Rathole clients' configs may lag etcd: an endpoint or a node (a frontend ready or gone) changed. */
  private clientsPending = false
  private readonly admin: MintedAdmin
  /** By certificate name; forgotten once the record changes (renewed by anyone) or a renewal succeeds. */
  private readonly acmeFailures = new Map<string, AcmeFailure>()
  private readonly clients?: RatholeClientConfigs

  constructor(private readonly options: CertKeeperOptions) {
    this.admin = new MintedAdmin(options.store, options.secretPath)
    if (options.ratholeClientDir) {
      this.clients = new RatholeClientConfigs(options.ratholeClientDir)
      // Leading nothing yet: configs left by a run killed while it led are stale.
      this.removeClients()
    }
  }

  start(token: string): void {
    this.token = token
    const {store} = this.options
    // A new leader syncs once: its predecessor may have renewed and not synced.
    this.syncPending = this.options.sshKeyPath !== undefined
    const wake = () => this.schedule(0)
    this.clientsPending = this.clients !== undefined
    const clientsChanged = () => {
      this.clientsPending = this.clients !== undefined
      wake()
    }
    const changed = () => {
      this.syncPending = this.options.sshKeyPath !== undefined
      clientsChanged()
    }
    // A certificate replaced by anyone (cert renew, cert acme renew) may be one a frontend serves;
    // a CA rotation changes the trust file every frontend holds, a revocation the CRL they check clients with.
    // ACME challenges (written and deleted by every order, its own too) change nothing it keeps.
    const k = store.keys
    const certChanged = (key: string) => {
      if (key.startsWith(k.acmeChallengesPrefix())) return
      if (key.startsWith(k.issuedCertsPrefix()) || key === k.certAuthority() || key === k.previousCertAuthority() || key === k.certRevocationList()) changed()
      else wake()
    }
    this.watch = store.watchPrefix(store.keys.certsPrefix(), {onPut: (kv) => certChanged(kv.key), onDelete: certChanged, onReset: changed})
    this.frontendWatch = store.watchPrefix(store.keys.frontendsPrefix(), {onPut: changed, onDelete: changed, onReset: changed})
    // A frontend becoming ready (or leaving) adds (or drops) a client, and one that becomes ready
    // gets its site, certificates and Rathole server (a sync compares first: one round trip).
    const nodeChanged = (kv: {value: unknown}) => (isFrontendRecord(kv.value) ? changed() : clientsChanged())
    if (this.clients || this.options.sshKeyPath) this.nodeWatch = store.watchPrefix(store.keys.nodesPrefix(), {onPut: nodeChanged, onDelete: changed, onReset: changed})
    this.schedule(0)
  }

  /**
   * Renews nothing more from now on; a write in flight is fenced by the token it carries. The
   * Rathole clients' configs go at once: the election calls this before this node's lease could
   * run out, so they are gone before a successor writes its own, and two core nodes never hold
   * them at once (Rathole would drop one node's control channel for the other's, back and forth).
   */
  stop(): void {
    this.token = undefined
    clearTimeout(this.timer)
    for (const watch of [this.watch, this.frontendWatch, this.nodeWatch]) void watch?.cancel().catch(() => undefined)
    this.watch = undefined
    this.frontendWatch = undefined
    this.nodeWatch = undefined
    this.removeClients()
  }

  async close(): Promise<void> {
    this.stop()
    await settlesWithin(this.running ?? Promise.resolve(), settings.election.shutdownCleanupMs)
    await this.admin.close()
  }

  private schedule(ms: number): void {
    if (this.token === undefined) return
    if (this.running) {
      // A tick is under way: one more after it, which sees whatever woke us.
      this.again = this.again || ms === 0
      return
    }
    clearTimeout(this.timer)
    this.timer = setTimeout(
      () => {
        this.running = this.tick()
          .catch((err: Error) => {
            this.options.log('certs-step-failed', {error: String(err?.message ?? err)})
            return Date.now() + settings.certs.keeperRetryMs
          })
          .then((next) => {
            this.running = undefined
            const rerun = this.again
            this.again = false
            this.schedule(rerun ? 0 : Math.max(0, next - Date.now()))
          })
      },
      Math.min(ms, settings.certs.keeperMaxSleepMs),
    )
    this.timer.unref()
  }

  /** Writes the Rathole clients' configs if they lag, renews what is due; resolves when to look next. */
  private async tick(): Promise<number> {
    const token = this.token
    if (token === undefined) return Number.POSITIVE_INFINITY
    const clientsAt = this.clientsPending ? await this.writeClients(token) : Number.POSITIVE_INFINITY
    return Math.min(clientsAt, await this.renewDue(token))
  }

  /** Renews what is due (and syncs the frontends if they lag); resolves when to look next. */
  private async renewDue(token: string): Promise<number> {
    const {store, node, log} = this.options
    const fence = leaderFence(store.keys, settings.certs.keeperService, token)
    const now = Date.now()
    const certs = (await store.listJson<StoredCertificate>(store.keys.issuedCertsPrefix())).filter((c) => !c.value.revoked && c.value.sealedKey)
    for (const [name, failure] of this.acmeFailures) if (certs.find((c) => c.value.name === name)?.modRevision !== failure.modRevision) this.acmeFailures.delete(name)
    // Each one's time, computed once: when due, or for a failed ACME one not before its retry.
    const scheduled = certs.map((cert) => ({cert, at: Math.max(renewalAt(cert.value), this.acmeFailures.get(cert.value.name)?.retryAt ?? 0)}))
    const due = scheduled.filter((s) => s.at <= now).map((s) => s.cert)
    const crl = await readCrl(store)
    const crlAt = crl ? Date.parse(crl.nextUpdate) - (settings.certs.crlDays * DAY_MS) / 2 : Number.POSITIVE_INFINITY
    let next = Math.min(crlAt <= now ? Number.POSITIVE_INFINITY : crlAt, ...scheduled.filter((s) => s.at > now).map((s) => s.at))
    if (due.length === 0 && crlAt > now) return this.syncPending ? Math.min(next, await this.syncFrontends(token)) : next
    const admin = await (this.options.adminStore ?? (() => this.admin.store()))()
    const secret = readClusterSecret(this.options.secretPath)
    // The cluster CA's key is opened only when one of its certificates is due.
    let ca: CertificateAuthority | undefined
    const clusterCa = async () => (ca ??= await loadCa(store, secret))
    for (const cert of due) {
      if (this.token !== token) break
      const {name, serial: oldSerial, source} = cert.value
      try {
        const renewed = source ? await this.renewFromAcme(admin, cert, fence, token) : await renewStoredCertificate(admin, cert, await clusterCa(), secret, {fence, renewedBy: {node, token}})
        log('cert-renewed', {name, oldSerial, serial: renewed.serial, notAfter: renewed.notAfter, token, ...(source ? {directory: source.directory} : {})})
        this.syncPending = this.options.sshKeyPath !== undefined
      } catch (err) {
        const error = String((err as Error)?.message ?? err)
        if (!source) {
          log('cert-renew-refused', {name, token, error})
          next = Math.min(next, Date.now() + settings.certs.keeperRetryMs)
          continue
        }
        const failures = (this.acmeFailures.get(name)?.failures ?? 0) + 1
        const retryAt = Date.now() + acmeRetryDelayMs(failures)
        this.acmeFailures.set(name, {modRevision: cert.modRevision, failures, retryAt})
        log('cert-renew-refused', {name, token, error, directory: source.directory, failures, retryAt: new Date(retryAt).toISOString()})
        next = Math.min(next, retryAt)
      }
    }
    if (crlAt <= now && this.token === token) {
      try {
        const refreshed = await refreshCrl(admin, secret, new Date(), fence)
        log('crl-refreshed', {number: refreshed.number, nextUpdate: refreshed.nextUpdate, token})
      } catch (err) {
        log('crl-refresh-refused', {token, error: String((err as Error)?.message ?? err)})
        next = Math.min(next, Date.now() + settings.certs.keeperRetryMs)
      }
    }
    return this.syncPending ? Math.min(next, await this.syncFrontends(token)) : next
  }

  /** Renders the Rathole clients' configs from etcd into this node's directory; resolves when to try again. */
  private async writeClients(token: string): Promise<number> {
    const {store, log} = this.options
    this.clientsPending = false
    try {
      const state = await readFrontendState(store)
      // Checked after the read and followed by synchronous writes only, so a stop() that came
      // meanwhile (and removed the files) is never undone.
      if (this.token !== token || !this.clients) return Number.POSITIVE_INFINITY
      const change = this.clients.update(state)
      if (change.written.length > 0 || change.removed.length > 0) log('rathole-clients-written', {dir: this.clients.dir, ...change, token})
      return Number.POSITIVE_INFINITY
    } catch (err) {
      this.clientsPending = true
      log('rathole-clients-failed', {token, error: String((err as Error)?.message ?? err)})
      return Date.now() + settings.certs.keeperRetryMs
    }
  }

  private removeClients(): void {
    if (!this.clients) return
    try {
      const removed = this.clients.removeAll()
      if (removed.length > 0) this.options.log('rathole-clients-removed', {dir: this.clients.dir, removed})
    } catch (err) {
      this.options.log('rathole-clients-remove-failed', {dir: this.clients.dir, error: String((err as Error)?.message ?? err)})
    }
  }

  /**
   * Orders a new certificate from the ACME CA that issued this one, with its account, as
   * `cert acme renew` does: replaced only if the record is still the one found due, and only
   * while this leader leads (the fence); stamped with its node and token.
   */
  private async renewFromAcme(admin: EtcdStore, cert: Versioned<StoredCertificate>, fence: (txn: Transaction) => void, token: string): Promise<StoredCertificateSummary> {
    const {node, secretPath, acmeCaFile} = this.options
    const renewed = await renewAcmeCertificate(admin, {
      name: cert.value.name,
      secretFile: secretPath,
      ...(acmeCaFile === undefined ? {} : {caFile: acmeCaFile}),
      expectedRevision: cert.modRevision,
      fence,
      renewedBy: {node, token},
    })
    this.acmeFailures.delete(cert.value.name)
    return renewed.certificate!
  }

  /**
   * Puts what changed onto every ready frontend (src/lib/frontend/sync.ts: compare first, nginx -t
   * before any reload). Resolves when to try again: never after a sync that went through.
   */
  private async syncFrontends(token: string): Promise<number> {
    const {log} = this.options
    if (this.token !== token || !this.options.sshKeyPath) return Number.POSITIVE_INFINITY
    this.syncPending = false
    try {
      // With no endpoint left too: the last one unexposed must go from the frontends.
      const admin = await (this.options.adminStore ?? (() => this.admin.store()))()
      const result = await syncFrontends(admin, [], {
        keyPath: this.options.sshKeyPath,
        acceptNewHostKey: false,
        dryRun: false,
        progress: 'silent',
        concurrency: settings.taskConcurrency,
        args: ['frontend', 'sync'],
        secret: () => readClusterSecret(this.options.secretPath),
      })
      log('frontends-synced', {nodes: result.nodes.filter((n) => n.changed.length > 0).map((n) => n.node), run: result.run.runId, token})
      return Number.POSITIVE_INFINITY
    } catch (err) {
      // No frontend ready yet is no failure: there is nothing to serve.
      if (err instanceof XclusterError && err.code === 'FRONTEND_NONE_READY') return Number.POSITIVE_INFINITY
      this.syncPending = true
      log('frontend-sync-failed', {token, error: String((err as Error)?.message ?? err)})
      return Date.now() + settings.certs.keeperRetryMs
    }
  }
}
