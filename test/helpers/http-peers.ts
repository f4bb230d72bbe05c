/**
 * Stand-ins for what lies beyond the admin host, run inside a test's namespace:
 *   origin ADDRESS PORT   a "Debian mirror": serves /debian/<path> with bytes derived from the path
 *   proxy ADDRESS PORT    a parent proxy (like the lab's bridge to its Squid): forwards absolute-URI GETs
 * Each prints `listening` once bound, then one JSON line per request it received.
 */
import {createHash} from 'node:crypto'
import {createServer, request} from 'node:http'
import {pathToFileURL} from 'node:url'

/** What the origin serves for a path: a test computes the same bytes to compare. */
export const mirrorBytes = (path: string): Buffer => Buffer.concat(Array.from({length: 64}, (_, i) => createHash('sha256').update(`${path}#${i}`).digest()))

const log = (entry: Record<string, unknown>): void => void process.stdout.write(JSON.stringify(entry) + '\n')

const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
const [mode, address, port] = main ? process.argv.slice(2) : []

if (mode === 'origin') {
  createServer((req, res) => {
    log({method: req.method, url: req.url, from: req.socket.remoteAddress})
    if (!req.url?.startsWith('/debian/')) {
      res.statusCode = 404
      res.end('not a mirror path\n')
      return
    }
    res.setHeader('content-type', 'application/octet-stream')
    res.end(mirrorBytes(req.url))
  }).listen(Number(port), address, () => log({listening: true}))
} else if (mode === 'proxy') {
  createServer((client, reply) => {
    log({method: client.method, url: client.url, from: client.socket.remoteAddress})
    const target = new URL(client.url ?? '')
    const upstream = request({host: target.hostname, port: target.port || 80, path: target.pathname + target.search, method: client.method, headers: client.headers}, (res) => {
      reply.writeHead(res.statusCode ?? 502, res.headers)
      res.pipe(reply)
    })
    upstream.on('error', () => {
      reply.statusCode = 502
      reply.end()
    })
    client.pipe(upstream)
  }).listen(Number(port), address, () => log({listening: true}))
}
