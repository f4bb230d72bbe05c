// The InstanceMonitor's ears, in a process of its own: it accepts the instances' connections and
// dates each one's close the moment the kernel delivers it. A test's own event loop can be busy
// for a long while (proxies, chaos, etcd clients), and a death dated there would come late and
// read as an overlap that never happened. Prints one JSON line per event on stdout:
//   {"listening": ADDRESS}                    once, first
//   {"id": N, "line": TEXT}                   a line instance N sent
//   {"id": N, "closedAt": MS}                 instance N's connection closed (CLOCK_MONOTONIC ms)
//
//   node instance-recorder.mjs SOCKET_PATH | tcp://HOST
import {rmSync} from 'node:fs'
import {createServer} from 'node:net'
import {createInterface} from 'node:readline'

const [where] = process.argv.slice(2)
const monoMs = () => Number(process.hrtime.bigint()) / 1e6
const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`)
let next = 0
const server = createServer((socket) => {
  const id = next++
  createInterface({input: socket}).on('line', (line) => emit({id, line}))
  socket.on('close', () => emit({id, closedAt: monoMs()}))
  socket.on('error', () => undefined)
})
const tcp = /^tcp:\/\/(.+)$/.exec(where)
if (tcp) {
  server.listen(0, tcp[1], () => emit({listening: `tcp://${tcp[1]}:${server.address().port}`}))
} else {
  rmSync(where, {force: true})
  server.listen(where, () => emit({listening: where}))
}
// The test going away (its end of stdin closing) ends this process, and every instance with it.
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
