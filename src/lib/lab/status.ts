import {existsSync} from 'node:fs'

import {systemState, unitActive} from './node.js'
import {etcdHealthy} from './services.js'
import {readLabState, type LabState} from './state.js'
import {requireRoot} from './system.js'

export interface LabHostStatus {
  name: string
  kind: 'admin' | 'node'
  netns: string
  mac: string
  ip: string | null
  /** `systemctl is-system-running` inside the container; null for the admin host. */
  systemd: string | null
  sshd: boolean | null
  /** etcd health, admin host only. */
  etcd: boolean | null
  healthy: boolean
}

export interface LabStatus {
  dir: string
  cluster: string
  etcdEndpoint: string
  proxyUrl: string
  healthy: boolean
  hosts: LabHostStatus[]
}

/** Looks at every host live: namespace present, systemd state and sshd inside, etcd on admin. */
export async function labStatus(dir?: string): Promise<LabStatus> {
  requireRoot()
  const state: LabState = readLabState(dir)
  const hosts = await Promise.all(
    state.hosts.map(async (h): Promise<LabHostStatus> => {
      const netnsUp = existsSync(`/run/netns/${h.netns}`)
      const base = {name: h.name, kind: h.kind, netns: h.netns, mac: h.mac, ip: h.ip ?? null}
      if (h.kind === 'admin') {
        const etcd = netnsUp && (await etcdHealthy(state.etcdEndpoint))
        return {...base, systemd: null, sshd: null, etcd, healthy: etcd}
      }
      const systemd = h.pid === undefined ? 'stopped' : await systemState(h.pid)
      const sshd = h.pid !== undefined && (await unitActive(h.pid, 'ssh'))
      return {...base, systemd, sshd, etcd: null, healthy: netnsUp && (systemd === 'running' || systemd === 'degraded') && sshd}
    }),
  )
  return {dir: state.dir, cluster: state.cluster, etcdEndpoint: state.etcdEndpoint, proxyUrl: state.proxyUrl, healthy: hosts.every((h) => h.healthy), hosts}
}
