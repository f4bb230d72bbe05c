import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {env, settings} from '../settings.js'

/** The package root (dist/lib/lab -> ../../..), for the shim and the default spec. */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

export const labDir = (): string => process.env[env.labDir] || settings.lab.stateDir
export const labCacheDir = (): string => settings.lab.cacheDir

/** Every file the lab keeps in its state dir, named in one place. */
export function labPaths(dir = labDir()) {
  return {
    dir,
    state: join(dir, 'state.json'),
    spec: join(dir, 'xcluster.yaml'),
    /** The admin host's PKI directory (the cluster secret, the operator's certificate, the context). */
    adminPki: join(dir, 'admin-pki'),
    /** The admin host's bootstrap services (--native). */
    adminServices: join(dir, 'admin-services'),
    sshKey: join(dir, 'id_ed25519'),
    knownHosts: join(dir, 'known_hosts'),
    bin: join(dir, 'bin'),
    run: join(dir, 'run'),
    log: join(dir, 'log'),
    proxySocket: join(dir, 'proxy.sock'),
    squid: join(dir, 'squid'),
    etcdData: join(dir, 'etcd'),
    nodes: join(dir, 'nodes'),
    pidFile: (name: string) => join(dir, 'run', `${name}.pid`),
    logFile: (name: string) => join(dir, 'log', `${name}.log`),
    node: (name: string) => ({
      base: join(dir, 'nodes', name),
      root: join(dir, 'nodes', name, 'root'),
      upper: join(dir, 'nodes', name, 'upper'),
      work: join(dir, 'nodes', name, 'work'),
    }),
  }
}

export type LabPaths = ReturnType<typeof labPaths>

export const netnsName = (host: string): string => `xc-${host}`
export const LAN_NETNS = 'xc-lan'
export const LAN_BRIDGE = 'br0'
/** veth names are limited to 15 characters: node names are short (s1, c12). */
export const bridgePortName = (host: string): string => `v-${host}`.slice(0, 15)
export const cgroupDirs = (host: string): string[] => [`/sys/fs/cgroup/systemd/xc-${host}`, `/sys/fs/cgroup/unified/xc-${host}`]
