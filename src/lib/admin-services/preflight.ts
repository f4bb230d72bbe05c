import {accessSync, constants, existsSync} from 'node:fs'
import {networkInterfaces} from 'node:os'
import {delimiter, join} from 'node:path'

import {ExitStatus, XclusterError} from '../errors.js'
import type {ClusterSpec} from '../spec/types.js'
import type {AdminPort, AdminService, AdminServicesBundle} from './render.js'
import {boundSockets, conflicts, socketHolders, type SocketHolder} from './sockets.js'

/** Where a program is looked for beyond PATH (a non-root PATH often lacks the sbin directories). */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin']

/** The absolute path of a program, or undefined when it is not installed. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN]
  for (const dir of dirs) {
    const path = join(dir, name)
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // not here
    }
  }
  return undefined
}

/** The interface holding the gateway address on this host (in this network namespace). */
export function gatewayInterface(spec: ClusterSpec): string | undefined {
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    if (addresses?.some((a) => a.family === 'IPv4' && a.address === spec.network.gateway)) return name
  }
  return undefined
}

export const gatewayNotLocal = (spec: ClusterSpec): XclusterError =>
  new XclusterError(`The gateway address ${spec.network.gateway} (network.gateway) is not on any interface of this host: the admin host's services answer on it.`, {
    code: 'ADMIN_GATEWAY_NOT_LOCAL',
    exit: ExitStatus.precondition,
    suggestion: `Run this on the admin host, or give its cluster interface the address: ip addr add ${spec.network.gateway}/${spec.network.subnet.split('/')[1]} dev IFACE`,
    details: {gateway: spec.network.gateway},
  })

/** A port one of our services needs and someone else holds. */
export interface PortConflict {
  service: string
  port: AdminPort
  /** Empty when the holder cannot be named (e.g. it lives in another PID namespace). */
  holders: SocketHolder[]
}

/**
 * Checks, before anything is written or started, that every program is installed and every
 * port is free or held by our own service (`ours` tells a holder of ours). Throws a
 * precondition error (exit 3) naming what is missing or who holds what.
 */
export function preflightAdminServices(spec: ClusterSpec, bundle: AdminServicesBundle, ours: (service: AdminService, holder: SocketHolder) => boolean): void {
  const daemons = bundle.services.filter((s) => s.daemon)
  const missing = [
    ...daemons.filter((s) => !findBinary(s.binary)).map((s) => ({what: s.binary, debianPackage: s.debianPackage})),
    ...bundle.copies.filter((c) => !existsSync(c.source)).map((c) => ({what: c.source, debianPackage: c.debianPackage})),
  ]
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((m) => m.debianPackage))]
    throw new XclusterError(`The admin host's services need programs that are not installed: ${missing.map((m) => `${m.what} (Debian package ${m.debianPackage})`).join(', ')}. Nothing was started.`, {
      code: 'ADMIN_PROGRAM_MISSING',
      exit: ExitStatus.precondition,
      suggestion: `Install them, then run again: sudo apt-get install -y ${packages.join(' ')}`,
      details: {missing},
    })
  }

  const sockets = boundSockets()
  const found: {service: AdminService; port: AdminPort; inodes: number[]}[] = []
  for (const service of daemons) {
    for (const port of service.ports) {
      const inodes = sockets.filter((s) => conflicts(s, port)).map((s) => s.inode)
      if (inodes.length > 0) found.push({service, port, inodes})
    }
  }
  const holders = socketHolders(new Set(found.flatMap((f) => f.inodes)))
  const taken: PortConflict[] = []
  for (const f of found) {
    const held = f.inodes.flatMap((i) => holders.get(i) ?? [])
    // Held by the service itself (a re-run): fine. Anyone else, or no one we can name: taken.
    if (held.length > 0 && held.every((h) => ours(f.service, h))) continue
    taken.push({service: f.service.name, port: f.port, holders: held.filter((h) => !ours(f.service, h))})
  }
  if (taken.length > 0) {
    const lines = taken.map((t) => `${t.port.port}/${t.port.protocol} on ${t.port.address} (for ${t.service}) is held by ${holderText(t)}`)
    const first = taken[0]
    const holders = taken.flatMap((t) => t.holders).filter((h, i, all) => all.findIndex((o) => o.pid === h.pid) === i)
    const units = [...new Set(holders.map((h) => h.unit).filter((u): u is string => u !== undefined))]
    const loose = holders.filter((h) => !h.unit)
    const steps = [
      ...(units.length > 0 ? [`sudo systemctl disable --now ${units.join(' ')}`] : []),
      ...(loose.length > 0 ? [`kill ${loose.map((h) => h.pid).join(' ')} (${loose.map((h) => h.command).join(', ')})`] : []),
    ]
    throw new XclusterError(`Ports the admin host's services need are taken: ${lines.join('; ')}. Nothing was started.`, {
      code: 'ADMIN_PORT_TAKEN',
      exit: ExitStatus.precondition,
      suggestion:
        steps.length > 0
          ? `Stop what holds them, then run again: ${steps.join('; ')}`
          : `Find and stop what holds them (e.g. ss -lnp${first.port.protocol === 'udp' ? 'u' : 't'} 'sport = :${first.port.port}'), then run again.`,
      details: {taken},
    })
  }
}

function holderText(t: PortConflict): string {
  if (t.holders.length === 0) return 'a process this host cannot name'
  return t.holders.map((h) => `${h.command} (pid ${h.pid}${h.unit ? `, ${h.unit}` : ''})`).join(', ')
}
