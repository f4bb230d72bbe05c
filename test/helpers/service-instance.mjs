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
// the start command: XCT_EXCLUSIVE.
const startedNs = process.hrtime.bigint()

import {writeFileSync} from 'node:fs'
import {connect} from 'node:net'

const [socketPath, pidFile, writesPrefix, leaderKey] = process.argv.slice(2)
const {XCLUSTER_SERVICE: service, XCLUSTER_NODE: node, XCLUSTER_TOKEN: token, XCLUSTER_ETCD: etcd} = process.env

writeFileSync(pidFile, `${process.pid}\n`)
const tcp = /^tcp:\/\/([^:]+):(\d+)$/.exec(socketPath)
const socket = tcp ? connect(Number(tcp[2]), tcp[1]) : connect(socketPath)
const send = (message) => socket.write(`${JSON.stringify(message)}\n`)
// XCT_EXCLUSIVE: whether the start command got the service's lock (flock, held by this process
// until the kernel closes its files at its death); unset where instances share no filesystem.
const exclusive = process.env.XCT_EXCLUSIVE === undefined ? undefined : process.env.XCT_EXCLUSIVE === '1'
send({hello: {service, node, token, pid: process.pid, startedNs: String(startedNs), exclusive}})
// The monitor going away ends the test, and this instance with it.
socket.on('error', () => process.exit(0))
socket.on('close', () => process.exit(0))
// The bye must reach the monitor before the exit (a write still queued would be dropped);
// a monitor that does not take it within 200 ms is gone anyway.
process.on('SIGTERM', () => {
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
