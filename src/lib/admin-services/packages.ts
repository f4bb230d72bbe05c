import {settings} from '../settings.js'
import type {ClusterSpec} from '../spec/types.js'
import {NO_PROXY} from '../spec/validate.js'

/** The spec's packages: section with every default filled in. */
export interface PackageSettings {
  /** URLs the admin host's cache may fetch from (normalised, no trailing slash). */
  mirrors: string[]
  /** The proxy the nodes' apt uses; undefined for direct access (`proxy: none`). */
  nodeProxy?: string
  /** True when the nodes' proxy is the admin host's own cache (so the admin host runs Squid). */
  adminCache: boolean
  /** The parent proxy the admin host's cache fetches through, if any. */
  upstream?: string
}

/** The admin host's cache: Squid on the gateway address. */
export const adminCacheUrl = (spec: ClusterSpec): string => `http://${spec.network.gateway}:${settings.packageProxyPort}`

/** The spec's packages: section, defaults from the gateway (the admin host runs the cache). */
export function packageSettings(spec: ClusterSpec): PackageSettings {
  const proxy = spec.packages?.proxy ?? adminCacheUrl(spec)
  const adminCache = proxy === adminCacheUrl(spec)
  return {
    mirrors: spec.packages?.mirrors ?? [...settings.packages.mirrors],
    ...(proxy === NO_PROXY ? {} : {nodeProxy: proxy}),
    adminCache,
    ...(adminCache && spec.packages?.upstream ? {upstream: spec.packages.upstream} : {}),
  }
}

const regexEscape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** Squid url_regex patterns for the mirrors: the mirror's URL and a path boundary (/debian must not admit /debian-evil). */
export const mirrorUrlPatterns = (mirrors: string[]): string[] => mirrors.map((m) => `${regexEscape(m)}(/|$)`)
