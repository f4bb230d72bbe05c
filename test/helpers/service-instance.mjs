// A guarded service instance for tests: a real, long-running process, started by `xcluster
// serve` through the service's start command on the node that leads. It reports its own start
// (its first instant, on CLOCK_MONOTONIC, which every process on the host shares) to the test's
// InstanceMonitor over a Unix socket; its death is what the monitor sees when the kernel closes
// that socket, however it dies. Until then it writes to etcd every few milliseconds, each write
// guarded by its fencing token, and reports whether etcd applied it.
//
//   node service-instance.mjs MONITOR PID_FILE [WRITES_PREFIX LEADER_KEY]
// MONITOR is a Unix socket path, or tcp://HOST:PORT (an instance on a lab node reports to the
// test on the admin host).
// Environment (from serve): XCLUSTER_SERVICE, XCLUSTER_NODE, XCLUSTER_TOKEN, XCLUSTER_ETCD; from
// the start command (instance-start.sh): XCT_EXCLUSIVE, XCT_LOCK_HOLDER.
const startedNs = process.hrtime.bigint()

import {writeFileSync} from 'node:fs'
import {connect} from 'node:net'

const [socketPath, pidFile, writesPrefix, leaderKey] = process.argv.slice(2)
const {XCLUSTER_SERVICE: service, XCLUSTER_NODE: node, XCLUSTER_TOKEN: token, XCLUSTER_ETCD: etcd} = process.env

writeFileSync(pidFile, `${process.pid}\n`)
const tcp = /^tcp:\/\/([^:]+):(\d+)$/.exec(socketPath)
// XCT_EXCLUSIVE: whether the start command got the service's lock (flock, held by this process
// until the kernel closes its files at its death); unset where instances share no filesystem.
const exclusive = process.env.XCT_EXCLUSIVE === undefined ? undefined : process.env.XCT_EXCLUSIVE === '1'
const lockHolder = process.env.XCT_LOCK_HOLDER
const hello = {hello: {service, node, token, pid: process.pid, startedNs: String(startedNs), exclusive, lockHolder}}

// Connects to the monitor, again and again for up to 10 s when it refuses (a busy host's listen
// backlog can be full): an instance the monitor never heard of would look like no instance at all.
// Each failure is printed, so the test's diagnostics can tell it from a start that never ran.
function connectMonitor(deadline) {
  const s = tcp ? connect(Number(tcp[2]), tcp[1]) : connect(socketPath)
  let connected = false
  let failed = false
  s.once('connect', () => (connected = true))
  s.on('error', (err) => {
    // Once connected, the monitor going away ends the test, and this instance with it.
    if (connected) process.exit(0)
    if (failed) return
    failed = true
    console.error(`service-instance ${service}/${node}: cannot reach the monitor at ${socketPath}: ${err.message}`)
    if (Date.now() > deadline) process.exit(1)
    setTimeout(() => (socket = connectMonitor(deadline)), 50)
  })
  s.on('close', () => connected && process.exit(0))
  s.write(`${JSON.stringify(hello)}\n`)
  return s
}
let socket = connectMonitor(Date.now() + 10_000)
const send = (message) => socket.write(`${JSON.stringify(message)}\n`)
// The bye must reach the monitor before the exit (a write still queued would be dropped);
// a monitor that does not take it within 200 ms is gone anyway.
process.on('SIGTERM', () => {
  console.error(`service-instance ${service}/${node}: SIGTERM at ${new Date().toISOString()}`)
  socket.write(`${JSON.stringify({bye: {reason: 'SIGTERM'}})}\n`, () => process.exit(0))
  setTimeout(() => process.exit(0), 200)
})

if (writesPrefix && leaderKey && etcd) {
  const {Etcd3} = await import('etcd3')
  const client = new Etcd3({hosts: etcd.split(','), dialTimeout: 1000})
  let seq = 0
  for (;;) {
    seq++
    try {
      const res = await client
        .if(leaderKey, 'Create', '==', token)
        .then(client.put(`${writesPrefix}${node}`).value(JSON.stringify({token, seq})))
        .commit()
      send({write: {seq, applied: Boolean(res.succeeded), revision: String(res.header.revision)}})
    } catch {
      // etcd unreachable: nothing was written; try again
    }
    await new Promise((r) => setTimeout(r, 25))
  }
}
