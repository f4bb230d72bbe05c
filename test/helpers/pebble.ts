/**
 * Debian's Pebble, the ACME test CA, on loopback for a test: its HTTPS (API and management) under
 * a TLS CA made for it, and pebble-challtestsrv as its DNS, answering every name with one
 * address. Validation is real: PEBBLE_VA_NOSLEEP only (no artificial delays), never
 * PEBBLE_VA_ALWAYS_VALID; its 5 % rejected nonces are left on.
 */
import assert from 'node:assert/strict'
import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import {request as httpsRequest} from 'node:https'
import {join} from 'node:path'

import {freePort} from './etcd.js'
import {requireTool} from './tools.js'

export interface PebbleOptions {
  /** A directory of the test's own: Pebble's config, TLS files and working directory. */
  dir: string
  /** The address Pebble's DNS gives for every name: where its validator fetches HTTP-01 tokens. */
  address: string
  /** The port it fetches them on (80 in production). */
  httpPort: number
  /** Issued certificates' validity in seconds (Pebble's certificateValidityPeriod; default its own, years). */
  validitySeconds?: number
  /** How often (percent) a new order reuses a valid authorization instead of validating again (PEBBLE_AUTHZREUSE; Pebble's default 50). */
  authzReusePercent?: number
}

export interface Pebble {
  /** The ACME directory URL. */
  directory: string
  /** The CA of Pebble's HTTPS certificate: what an ACME client must trust (--ca-file). */
  tlsCaFile: string
  managementPort: number
  /** GET on Pebble's management API (its roots, intermediates), trusting only the test TLS CA. */
  management(path: string): Promise<{status: number; body: string}>
  stop(): Promise<void>
}

export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  requireTool('openssl', 'openssl')
  requireTool('pebble', 'pebble')
  requireTool('pebble-challtestsrv', 'pebble')
  const {dir} = options
  const ports = {dns: 0, acme: 0, management: 0, challtestManagement: 0, tlsAlpn: 0}
  for (const name of Object.keys(ports) as (keyof typeof ports)[]) ports[name] = await freePort()
  const tlsCaFile = join(dir, 'tls-ca.crt')
  const openssl = (...args: string[]) => execFileSync('openssl', args, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']})

  // Pebble's HTTPS (API and management): a test CA of our own and a certificate for 127.0.0.1.
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  openssl('req', '-x509', ...ec, '-keyout', join(dir, 'tls-ca.key'), '-out', tlsCaFile, '-days', '1', '-subj', '/CN=xcluster test Pebble TLS CA')
  openssl('req', ...ec, '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.csr'), '-subj', '/CN=localhost')
  writeFileSync(join(dir, 'tls.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  openssl(
    'x509',
    '-req',
    '-in',
    join(dir, 'tls.csr'),
    '-CA',
    tlsCaFile,
    '-CAkey',
    join(dir, 'tls-ca.key'),
    '-CAcreateserial',
    '-out',
    join(dir, 'tls.crt'),
    '-days',
    '1',
    '-extfile',
    join(dir, 'tls.ext'),
  )

  const children: ChildProcess[] = []
  const start = (command: string, args: string[], env: Record<string, string> = {}) => {
    const child = spawn(command, args, {cwd: dir, env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    let log = ''
    child.stdout!.on('data', (d) => (log += d))
    child.stderr!.on('data', (d) => (log += d))
    child.on('exit', (code) => {
      if (code !== null && code !== 0 && !child.killed) process.stderr.write(`${command} exited ${code}:\n${log}\n`)
    })
    children.push(child)
  }
  // DNS on loopback only, every name the given address, no AAAA; its own challenge servers off.
  start('pebble-challtestsrv', [
    '-defaultIPv4',
    options.address,
    '-defaultIPv6',
    '',
    '-dns01',
    `127.0.0.1:${ports.dns}`,
    '-http01',
    '',
    '-https01',
    '',
    '-tlsalpn01',
    '',
    '-management',
    `127.0.0.1:${ports.challtestManagement}`,
  ])
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${ports.acme}`,
      managementListenAddress: `127.0.0.1:${ports.management}`,
      certificate: join(dir, 'tls.crt'),
      privateKey: join(dir, 'tls.key'),
      // Where Pebble's VA fetches HTTP-01 tokens: the address DNS gave, this port.
      httpPort: options.httpPort,
      tlsPort: ports.tlsAlpn,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      ...(options.validitySeconds === undefined ? {} : {certificateValidityPeriod: options.validitySeconds}),
    },
  }
  writeFileSync(join(dir, 'pebble.json'), JSON.stringify(config))
  assert.equal(process.env.PEBBLE_VA_ALWAYS_VALID, undefined, 'validation is real')
  // No artificial validation delays; validation itself is real.
  start('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${ports.dns}`], {
    PEBBLE_VA_NOSLEEP: '1',
    ...(options.authzReusePercent === undefined ? {} : {PEBBLE_AUTHZREUSE: String(options.authzReusePercent)}),
  })

  const get = (url: string): Promise<{status: number; body: string}> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(url, {ca: readFileSync(tlsCaFile)}, (res) => {
        let body = ''
        res.on('data', (d) => (body += d))
        res.on('end', () => resolve({status: res.statusCode ?? 0, body}))
      })
      req.on('error', reject)
      req.setTimeout(2000, () => req.destroy(new Error(`timeout: ${url}`)))
      req.end()
    })
  const management = (path: string) => get(`https://127.0.0.1:${ports.management}${path}`)
  const directory = `https://127.0.0.1:${ports.acme}/dir`
  const pebble: Pebble = {
    directory,
    tlsCaFile,
    managementPort: ports.management,
    management,
    async stop() {
      await Promise.all(
        children.map((child) =>
          child.exitCode !== null || child.signalCode !== null
            ? undefined
            : new Promise<void>((resolve) => {
                child.once('exit', () => resolve())
                child.kill('SIGTERM')
              }),
        ),
      )
    },
  }
  const deadline = Date.now() + 20_000
  for (;;) {
    // Both listeners: the ACME API and the management API (its roots).
    const ready = await Promise.all([get(directory), management('/roots/0')])
      .then(([dir, roots]) => dir.status === 200 && roots.body.includes('BEGIN CERTIFICATE'))
      .catch(() => false)
    if (ready) return pebble
    if (Date.now() > deadline) {
      await pebble.stop()
      throw new Error('Pebble did not start within 20 s')
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}
