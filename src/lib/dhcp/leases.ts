import {preconditionError, usageError} from '../errors.js'
import type {EtcdStore} from '../etcd/store.js'
import {isIpv4} from '../spec/ipv4.js'
import type {Lease, LeaseByMac, LeaseSummary} from './lease.js'

/** Every lease in etcd, in address order, with whether it has expired. */
export async function listLeases(store: EtcdStore, now = Date.now()): Promise<LeaseSummary[]> {
  const rows = await store.listJson<Lease>(store.keys.leasesPrefix())
  const toNumber = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0)
  return rows.map((r) => ({...r.value, expired: Date.parse(r.value.expiresAt) <= now})).sort((a, b) => toNumber(a.ip) - toNumber(b.ip))
}

/** The lease on `ip`; LEASE_NOT_FOUND (exit 3) when there is none. */
export async function requireLease(store: EtcdStore, ip: string): Promise<{lease: Lease; modRevision: string}> {
  if (!isIpv4(ip)) throw usageError(`"${ip}" is not an IPv4 address.`, 'Give the leased address, e.g. xcluster dhcp release 10.0.0.51 (see xcluster dhcp leases).')
  const row = await store.getJson<Lease>(store.keys.lease(ip))
  if (!row) throw preconditionError('LEASE_NOT_FOUND', `No DHCP lease on ${ip}.`, 'List the leases with: xcluster dhcp leases')
  return {lease: row.value, modRevision: row.modRevision}
}

/**
 * Frees a lease (the address returns to the pool). Guarded by the revision read, so a lease a
 * server renewed in between is not dropped: LEASE_CHANGED, nothing written.
 */
export async function releaseLease(store: EtcdStore, ip: string, seen: {modRevision: string}): Promise<void> {
  const key = store.keys.lease(ip)
  if (!(await store.transaction().ifUnchanged(key, seen.modRevision).delete(key).commit())) {
    throw preconditionError(
      'LEASE_CHANGED',
      `The lease on ${ip} changed while releasing it (a server renewed or replaced it). Nothing was removed.`,
      'Look again with xcluster dhcp leases and re-run if it should still go.',
    )
  }
}

/** The address DHCP currently leases to a MAC (bound and not expired), if any. */
export async function leasedAddress(store: EtcdStore, mac: string, now = Date.now()): Promise<string | undefined> {
  const index = await store.getJson<LeaseByMac>(store.keys.leaseByMac(mac))
  if (!index) return undefined
  const lease = (await store.getJson<Lease>(store.keys.lease(index.value.ip)))?.value
  if (!lease || lease.mac !== mac || lease.state !== 'bound' || Date.parse(lease.expiresAt) <= now) return undefined
  return lease.ip
}
