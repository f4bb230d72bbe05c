/**
 * The HTTP-01 answerer (RFC 8555 section 8.3): GET /.well-known/acme-challenge/<token> answers
 * the key authorization `cert acme issue` put in etcd for that token, and 404 for any other.
 * It reads etcd on every request, keeping nothing: each frontend's nginx proxies the challenge
 * path to the serve beside it, so whichever frontend the CA reaches answers the same, and a
 * challenge is answerable as soon as its write is committed. Requests are rare (a few per order),
 * so a read each costs nothing worth a cache or a watch.
 */
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {isIP} from 'node:net'

import {XclusterError} from '../errors.js'
import {ACME_TOKEN} from '../etcd/keys.js'
import type {EtcdStore} from '../etcd/store.js'
import type {ListenAddress} from '../health/http-api.js'
import {settings} from '../settings.js'

export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/'

/** A challenge as `cert acme issue` stores it, under its lease. */
export interface StoredAcmeChallenge {
  domain: string
  keyAuthorization: string
  createdAt: string
}

export interface AcmeResponder {
  port: number
  url: string
  close(): Promise<void>
}

export interface AcmeResponderOptions {
  address: ListenAddress
  store: EtcdStore
  log?: (event: string, details: Record<string, unknown>) => void
}

interface Answer {
  status: number
  body: string
}

export async function startAcmeResponder(options: AcmeResponderOptions): Promise<AcmeResponder> {
  const {store} = options
  const log = options.log ?? (() => {})

  async function answer(req: IncomingMessage): Promise<Answer> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return {status: 405, body: 'Only GET and HEAD are answered here.\n'}
    const path = (req.url ?? '/').split('?')[0]!
    const token = path.startsWith(ACME_CHALLENGE_PATH) ? path.slice(ACME_CHALLENGE_PATH.length) : undefined
    // Checked before it becomes part of a key: nothing but a token's characters reaches etcd.
    if (token === undefined || !ACME_TOKEN.test(token)) return {status: 404, body: 'Not found.\n'}
    const stored = await withTimeout(store.getJson<StoredAcmeChallenge>(store.keys.acmeChallenge(token)), settings.certs.acme.responderTimeoutMs)
    if (!stored) {
      log('acme-challenge-unknown', {token})
      return {status: 404, body: 'No such challenge.\n'}
    }
    log('acme-challenge-answered', {token, domain: stored.value.domain, from: req.socket.remoteAddress})
    return {status: 200, body: stored.value.keyAuthorization}
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    void answer(req)
      .catch((err: unknown) => {
        log('acme-read-failed', {error: String((err as Error)?.message ?? err)})
        // 503: the CA retries; a 404 would fail the validation for good.
        return {status: 503, body: 'The challenge could not be read from etcd.\n'}
      })
      .then((a) => {
        res.writeHead(a.status, {'content-type': a.status === 200 ? 'application/octet-stream' : 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(a.body), 'cache-control': 'no-store'})
        res.end(a.body)
      })
  }

  const server: Server = createServer(handle)
  server.requestTimeout = settings.health.http.requestTimeoutMs
  server.headersTimeout = settings.health.http.requestTimeoutMs
  const {host, port: wanted} = options.address
  await new Promise<void>((resolve, reject) => {
    const refused = (err: NodeJS.ErrnoException) =>
      reject(
        new XclusterError(`The ACME challenge responder cannot listen on ${host || '*'}:${wanted}: ${err.code ?? err.message}.`, {
          code: 'HTTP_LISTEN_FAILED',
          suggestion: err.code === 'EADDRINUSE' ? `Something listens there already (ss -ltnp 'sport = :${wanted}'): choose another --acme-http address.` : 'Give --acme-http an address of this host.',
          cause: err,
        }),
      )
    server.once('error', refused)
    server.listen(wanted, host || undefined, () => {
      server.off('error', refused)
      resolve()
    })
  })
  const bound = server.address()
  const port = bound && typeof bound === 'object' ? bound.port : wanted
  const shown = host === '' ? 'localhost' : isIP(host) === 6 ? `[${host}]` : host
  const url = `http://${shown}:${port}`
  log('acme-http-listening', {address: host || '*', port, url})
  return {
    port,
    url,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from etcd in ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
