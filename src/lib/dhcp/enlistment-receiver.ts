import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'

import type {EtcdStore, Transaction} from '../etcd/store.js'
import {EnlistmentRefused, recordEnlistment} from '../nodes/enlistment.js'
import {settings} from '../settings.js'
import type {CanServe} from './server.js'

export interface EnlistmentReceiverOptions {
  store: EtcdStore
  /** This DHCP server's address on the served LAN (its server identifier): nodes report to it. */
  address: string
  port?: number
  /** Only the DHCP leader takes reports: they are written under its fencing token. */
  canServe: CanServe
  fence: (txn: Transaction, token: string | undefined) => void
  log: (event: string, details: Record<string, unknown>) => void
}

/**
 * The DHCP leader's side of enlistment: `POST /enlist` with the node's host public keys as the
 * body (plain text), answered with one line saying what happened. The sender's address is what
 * identifies it (src/lib/nodes/enlistment.ts). Plain HTTP on purpose: the report carries public
 * keys only, and what vouches for it is the lease, not the channel.
 */
export class EnlistmentReceiver {
  private server?: Server

  constructor(private readonly options: EnlistmentReceiverOptions) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res))
    server.requestTimeout = settings.enlistment.requestTimeoutMs
    server.headersTimeout = settings.enlistment.requestTimeoutMs
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.options.port ?? settings.enlistment.port, this.options.address, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.server = server
  }

  /** The port it listens on (the one asked for, or the kernel's pick for 0). */
  get port(): number | undefined {
    const address = this.server?.address()
    return address && typeof address === 'object' ? address.port : undefined
  }

  async stop(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (!server) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const sourceIp = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '')
    const answer = (status: number, text: string) => {
      res.writeHead(status, {'content-type': 'text/plain; charset=utf-8', connection: 'close'})
      res.end(`${text}\n`)
    }
    try {
      if (req.url !== settings.enlistment.path) throw new EnlistmentRefused(404, `nothing here: report to ${settings.enlistment.path}`)
      if (req.method !== 'POST') throw new EnlistmentRefused(405, `send the report with POST ${settings.enlistment.path}`)
      const body = await readBody(req, settings.enlistment.maxReportBytes)
      const leading = await this.options.canServe()
      if (!leading.ok) throw new EnlistmentRefused(503, 'this server is not the DHCP leader now: report to the server your lease came from')
      const outcome = await recordEnlistment(this.options.store, {sourceIp, body, receivedBy: this.options.address}, (txn) => this.options.fence(txn, leading.token))
      const fingerprints = outcome.record.hostKeys.map((k) => k.fingerprint)
      this.options.log(outcome.kind === 'recorded' ? 'enlisted' : 'enlisted-again', {mac: outcome.record.mac, ip: sourceIp, fingerprints})
      answer(outcome.kind === 'recorded' ? 201 : 200, `${outcome.kind === 'recorded' ? 'enlisted' : 'already enlisted'} ${outcome.record.mac}: ${fingerprints.join(' ')}`)
    } catch (err) {
      if (err instanceof EnlistmentRefused) {
        this.options.log('enlistment-refused', {ip: sourceIp, status: err.status, reason: err.message})
        answer(err.status, `refused: ${err.message}`)
      } else {
        this.options.log('enlistment-failed', {ip: sourceIp, error: String((err as Error)?.message ?? err)})
        answer(503, 'refused: the report could not be stored now: send it again')
      }
    }
  }
}

/** The request body, refused (413) past `limit` bytes without reading the rest. */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        // Refused unread: the rest is drained and dropped until the answer closes the connection.
        req.removeAllListeners('data')
        req.resume()
        reject(new EnlistmentRefused(413, `the report is larger than ${limit} bytes`))
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}
