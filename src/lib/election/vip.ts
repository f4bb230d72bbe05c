import {execFile} from 'node:child_process'
import {promisify} from 'node:util'

import type {ClusterSpec} from '../spec/types.js'

const run = promisify(execFile)

export interface VipState {
  address: string
  /** What the VIP is for: "admin" or a service name. */
  purpose: string
  holders: string[]
}

/** Every VIP the spec declares: the admin VIP and each service's. */
export function declaredVips(spec: ClusterSpec): {address: string; purpose: string}[] {
  return [{address: spec.network.adminVip, purpose: 'admin'}, ...(spec.services ?? []).filter((s) => s.vip).map((s) => ({address: s.vip as string, purpose: s.name}))]
}

/** The IPv4 addresses in the output of `ip -o -4 addr show`, wherever it ran. */
export function ipv4Addresses(ipAddrOutput: string): string[] {
  return [...ipAddrOutput.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1] as string)
}

/** The IPv4 addresses on every interface of a network namespace (`ip -n NS -o -4 addr`). */
export async function namespaceAddresses(namespace: string): Promise<string[]> {
  try {
    const {stdout} = await run('ip', ['-n', namespace, '-o', '-4', 'addr', 'show'])
    return ipv4Addresses(stdout)
  } catch {
    return [] // no such namespace: the node is down
  }
}

/**
 * Who holds an address, looking into each node's network namespace (`<prefix><node>`): how the
 * lab's nodes are reached from the machine that runs them. Real racks need SSH (`ip addr` on
 * each core node) instead: same shape, another probe.
 */
export function namespaceVipProbe(nodes: string[], prefix: string): (address: string) => Promise<string[]> {
  return async (address) => {
    const held = await Promise.all(nodes.map(async (n) => ((await namespaceAddresses(`${prefix}${n}`)).includes(address) ? n : undefined)))
    return held.filter((n): n is string => n !== undefined)
  }
}

export async function vipStatus(spec: ClusterSpec, probe: (address: string) => Promise<string[]>): Promise<VipState[]> {
  return Promise.all(declaredVips(spec).map(async (v) => ({...v, holders: await probe(v.address)})))
}
