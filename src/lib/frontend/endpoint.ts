/**
 * A public endpoint as etcd keeps it (`frontends/<name>`), and the checks on what an operator
 * gives `frontend expose`. Pure: no etcd, no files.
 */
import {randomBytes} from 'node:crypto'

import {usageError} from '../errors.js'
import {settings} from '../settings.js'
import {isIpv4} from '../spec/ipv4.js'

/** Where the tunnel's far end connects (from a core node): a host, or a spec service by its VIP. */
export type FrontendTarget = {kind: 'host'; host: string; port: number} | {kind: 'service'; service: string; port: number}

/** The value under `frontends/<name>`. `token` authenticates the Rathole service: never shown. */
export interface FrontendRecord {
  name: string
  target: FrontendTarget
  /** The public port nginx listens on, on every frontend node. */
  port: number
  /** A certificate stored by `cert issue` (`certs/issued/<cert>`): TLS on `port`; plain HTTP without. */
  cert?: string
  /** Clients must present a certificate of the cluster CA that its CRL does not list (mutual TLS). */
  clientAuth?: boolean
  /** The loopback port on each frontend where the Rathole server hands the tunnel to nginx. */
  tunnelPort: number
  token: string
  createdAt: string
}

/** A record as it may be shown (list, --json): everything but the token. */
export type FrontendPublic = Omit<FrontendRecord, 'token'>

export const withoutToken = ({token: _token, ...rest}: FrontendRecord): FrontendPublic => rest

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

const isDnsName = (host: string): boolean => host.length <= 253 && host.split('.').every((label) => DNS_LABEL.test(label)) && !/^[0-9.]+$/.test(host)

/** HOST:PORT, HOST an IPv4 address, a DNS name or a service name (lower-case); refused as a usage error otherwise. */
export function parseTarget(text: string): {host: string; port: number} {
  const match = /^([^:\s]+):(\d{1,5})$/.exec(text.trim())
  const host = match?.[1].toLowerCase() ?? ''
  const port = Number(match?.[2])
  if (!match || !(isIpv4(host) || isDnsName(host)) || !validPort(port)) {
    throw usageError(
      `--to ${JSON.stringify(text)} is not SERVICE_OR_HOST:PORT.`,
      'Give a spec service (reached at its VIP), an IPv4 address or a DNS name, and a port from 1 to 65535, e.g. --to web:8080 or --to 10.0.0.51:8080.',
    )
  }
  return {host, port}
}

const validPort = (port: number): boolean => Number.isInteger(port) && port >= 1 && port <= 65_535

/** Ports a frontend already uses for itself: an endpoint cannot take them. */
export function reservedPorts(): Map<number, string> {
  const f = settings.frontend
  return new Map([
    [f.httpPort, 'nginx’s plain-HTTP port (ACME challenges)'],
    [f.acmePort, 'the ACME answerer’s port'],
    [f.ratholePort, 'the Rathole server’s control port'],
  ])
}

/** A public port an endpoint may listen on; a usage error otherwise. */
export function checkPublicPort(port: number): number {
  const {first, last} = settings.frontend.tunnelPorts
  const reserved = reservedPorts().get(port) ?? (port >= first && port <= last ? `in the tunnel ports (${first}-${last})` : undefined)
  if (!validPort(port) || reserved) {
    throw usageError(`--port ${port} ${reserved ? `is ${reserved} on every frontend` : 'is not a port (1-65535)'}.`, 'Choose another public port, e.g. --port 443 or --port 8443.')
  }
  return port
}

export const targetText = (t: FrontendTarget): string => `${t.kind === 'host' ? t.host : t.service}:${t.port}`

/** The lowest tunnel port no endpoint holds; undefined when the range is full. */
export function freeTunnelPort(taken: Iterable<number>): number | undefined {
  const used = new Set(taken)
  const {first, last} = settings.frontend.tunnelPorts
  for (let port = first; port <= last; port++) if (!used.has(port)) return port
  return undefined
}

/** A fresh Rathole token: random, base64url (safe inside a TOML string as it is). */
export const newToken = (): string => randomBytes(settings.frontend.tokenBytes).toString('base64url')
