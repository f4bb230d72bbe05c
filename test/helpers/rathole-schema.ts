/**
 * Rathole's configuration schema, as its src/config.rs declares it (serde, deny_unknown_fields
 * on every table) and validates it (Config::from_str): a TOML file parsed with a real TOML
 * parser is checked here field by field, so a config Rathole would refuse fails a test instead.
 * https://github.com/rapiz1/rathole/blob/main/src/config.rs
 */
import {parse} from 'smol-toml'

type Table = Record<string, unknown>
type Field = 'string' | 'integer' | 'boolean' | 'table'

interface Shape {
  required: Record<string, Field>
  optional: Record<string, Field>
}

const SERVER: Shape = {
  required: {bind_addr: 'string', services: 'table'},
  optional: {default_token: 'string', transport: 'table', heartbeat_interval: 'integer'},
}
const SERVER_SERVICE: Shape = {required: {bind_addr: 'string'}, optional: {type: 'string', token: 'string', nodelay: 'boolean'}}
const CLIENT: Shape = {
  required: {remote_addr: 'string', services: 'table'},
  optional: {default_token: 'string', transport: 'table', heartbeat_timeout: 'integer'},
}
const CLIENT_SERVICE: Shape = {required: {local_addr: 'string'}, optional: {type: 'string', token: 'string', nodelay: 'boolean'}}

export interface RatholeService {
  name: string
  /** bind_addr (server) or local_addr (client). */
  addr: string
  token: string
  type: 'tcp' | 'udp'
}

export interface RatholeConfig {
  role: 'server' | 'client'
  /** bind_addr (server) or remote_addr (client). */
  addr: string
  services: RatholeService[]
}

const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date)

function typeOf(value: unknown): Field | 'other' {
  if (typeof value === 'string') return 'string'
  if (typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value))) return 'integer'
  if (typeof value === 'boolean') return 'boolean'
  return isTable(value) ? 'table' : 'other'
}

function checkShape(table: Table, shape: Shape, where: string): void {
  for (const key of Object.keys(shape.required)) {
    if (!(key in table)) throw new Error(`${where}: missing field \`${key}\``)
  }
  for (const [key, value] of Object.entries(table)) {
    const type = shape.required[key] ?? shape.optional[key]
    if (!type) throw new Error(`${where}: unknown field \`${key}\``)
    if (typeOf(value) !== type) throw new Error(`${where}.${key}: expected ${type}, got ${typeOf(value)}`)
  }
}

/** HOST:PORT as Rathole binds or connects it: an IPv4 address or a DNS name, and a port 1-65535. */
export function parseAddress(addr: string, where: string): {host: string; port: number} {
  const m = /^([a-z0-9.-]+):(\d+)$/i.exec(addr)
  const port = Number(m?.[2])
  const host = m?.[1] ?? ''
  const ipv4 = /^\d+\.\d+\.\d+\.\d+$/.test(host)
  if (!m || !(port >= 1 && port <= 65_535) || (ipv4 && host.split('.').some((o) => Number(o) > 255))) throw new Error(`${where}: ${JSON.stringify(addr)} is not HOST:PORT`)
  return {host, port}
}

/** Parses TOML text and checks it as Rathole's Config::from_str does; returns the one role it holds. */
export function parseRatholeConfig(text: string): RatholeConfig {
  const doc = parse(text) as Table
  for (const key of Object.keys(doc)) if (key !== 'server' && key !== 'client') throw new Error(`unknown top-level field \`${key}\``)
  const role = 'server' in doc ? 'server' : 'client' in doc ? 'client' : undefined
  if (!role) throw new Error('Neither of `[server]` or `[client]` is defined')
  if ('server' in doc && 'client' in doc) throw new Error('xcluster renders one role per file, this has both')
  const section = doc[role]
  if (!isTable(section)) throw new Error(`[${role}] is not a table`)
  checkShape(section, role === 'server' ? SERVER : CLIENT, role)
  const addrField = role === 'server' ? 'bind_addr' : 'remote_addr'
  const addr = section[addrField] as string
  parseAddress(addr, `${role}.${addrField}`)
  const defaultToken = section.default_token as string | undefined
  const services = Object.entries(section.services as Table).map(([name, service]): RatholeService => {
    const where = `${role}.services.${name}`
    if (!isTable(service)) throw new Error(`${where} is not a table`)
    checkShape(service, role === 'server' ? SERVER_SERVICE : CLIENT_SERVICE, where)
    const type = (service.type as string | undefined) ?? 'tcp'
    if (type !== 'tcp' && type !== 'udp') throw new Error(`${where}.type: unknown variant \`${type}\``)
    const token = (service.token as string | undefined) ?? defaultToken
    if (!token) throw new Error(`The token of service ${name} is not set`)
    const serviceAddr = service[role === 'server' ? 'bind_addr' : 'local_addr'] as string
    parseAddress(serviceAddr, where)
    return {name, addr: serviceAddr, token, type}
  })
  return {role, addr, services}
}
