import {type Command, Flags, type Interfaces} from '@oclif/core'

import {BaseCommand} from './base-command.js'
import {ExitStatus, XclusterError} from './lib/errors.js'
import {KeySchema} from './lib/etcd/keys.js'
import {contextConnection, readOperatorContext} from './lib/etcd/operator-context.js'
import {EtcdStore, type EtcdConnection} from './lib/etcd/store.js'
import {env, settings} from './lib/settings.js'

export type EtcdFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof EtcdCommand)['baseFlags'] & T['flags']>

/**
 * A command that reads or writes the cluster's state in etcd: the connection flags, checked
 * before anything runs (a bad value is a usage error, exit 2), and a store that is connected on
 * first use and closed when the command ends.
 */
export abstract class EtcdCommand<T extends typeof Command> extends BaseCommand<T> {
  static baseFlags = {
    ...BaseCommand.baseFlags,
    etcd: Flags.string({
      summary: 'Comma-separated etcd endpoints.',
      description: `Default: the cluster this admin host bootstrapped (its endpoints and TLS files, from \`xcluster bootstrap\`), else ${settings.etcdEndpoints.join(',')}.`,
      env: env.etcd,
      helpGroup: 'GLOBAL',
    }),
    cluster: Flags.string({
      summary: 'Cluster name (the etcd key prefix).',
      env: env.cluster,
      helpGroup: 'GLOBAL',
      default: settings.cluster,
    }),
    'etcd-ca': Flags.file({summary: 'CA certificate for etcd TLS.', env: env.etcdCa, helpGroup: 'GLOBAL', exists: true}),
    'etcd-cert': Flags.file({
      summary: 'Client certificate for etcd TLS.',
      env: env.etcdCert,
      helpGroup: 'GLOBAL',
      exists: true,
      dependsOn: ['etcd-key'],
    }),
    'etcd-key': Flags.file({
      summary: 'Client key for etcd TLS.',
      env: env.etcdKey,
      helpGroup: 'GLOBAL',
      exists: true,
      dependsOn: ['etcd-cert'],
    }),
  }

  declare protected flags: EtcdFlags<T>
  private connection?: EtcdConnection
  private etcdStore?: EtcdStore

  public async init(): Promise<void> {
    await super.init()
    const cluster = new KeySchema(this.flags.cluster).cluster
    // Without --etcd (or XCLUSTER_ETCD), a cluster bootstrapped from this host is the default.
    const context = this.flags.etcd === undefined ? readOperatorContext(cluster) : undefined
    this.connection = context
      ? {...contextConnection(context), ...(this.flags['etcd-ca'] ? {ca: this.flags['etcd-ca']} : {}), ...(this.flags['etcd-cert'] ? {cert: this.flags['etcd-cert'], key: this.flags['etcd-key']} : {})}
      : {
          endpoints: parseEndpoints(this.flags.etcd ?? settings.etcdEndpoints.join(',')),
          cluster,
          ca: this.flags['etcd-ca'],
          cert: this.flags['etcd-cert'],
          key: this.flags['etcd-key'],
        }
  }

  /** etcd connection options from the shared flags (checked in init). */
  protected etcdConnection(): EtcdConnection {
    return this.connection!
  }

  /** The etcd store, connected on first use and closed when the command ends. */
  protected store(): EtcdStore {
    this.etcdStore ??= new EtcdStore(this.etcdConnection())
    return this.etcdStore
  }

  protected async finally(err: Error | undefined): Promise<unknown> {
    await this.etcdStore?.close()
    return super.finally(err)
  }
}

/**
 * `--etcd` as a list of endpoints: host:port (http:// assumed), http(s)://host:port, or
 * unix://PATH for a local socket. Anything else is refused before a connection is tried.
 */
export function parseEndpoints(value: string): string[] {
  const endpoints = value
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
  const refuse = (why: string) =>
    new XclusterError(`--etcd ${JSON.stringify(value)}: ${why}.`, {
      code: 'ETCD_ENDPOINT_INVALID',
      exit: ExitStatus.usage,
      suggestion: `Give one or more comma-separated endpoints with their ports, e.g. --etcd ${settings.etcdEndpoints.join(',')} (or set ${env.etcd}).`,
    })
  if (endpoints.length === 0) throw refuse('no endpoint given')
  for (const endpoint of endpoints) {
    let url: URL
    try {
      url = new URL(/^[a-z]+:\/\//.test(endpoint) ? endpoint : `http://${endpoint}`)
    } catch {
      throw refuse(`"${endpoint}" is not an endpoint`)
    }
    if (url.protocol === 'unix:') continue
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refuse(`"${endpoint}" is neither http://, https:// nor unix://`)
    if (!url.hostname || !url.port || (url.pathname !== '/' && url.pathname !== '')) throw refuse(`"${endpoint}" is not HOST:PORT`)
  }
  return endpoints
}
