/**
 * DHCP capacity for fresh leases: full DORA exchanges per second measured by perfdhcp (Debian
 * kea-admin) against `xcluster serve --dhcp` (every lease written to etcd, fsync'd) and against
 * dnsmasq, in the same namespaces and the same run. perfdhcp works only in relay mode here, so
 * requests arrive with giaddr set and replies go back to the relay's port 67.
 *
 *   sudo npx tsx bench/dhcp.ts [seconds=4] [rates=250,500,...] [repeats=3]
 *
 * For each server, a sweep of offered rates: every step starts the server on an empty lease
 * table and runs `perfdhcp -r RATE -R RATE*seconds -p seconds`, so every exchange is a new MAC
 * and a new lease (for xcluster, a new etcd transaction). An exchange is lost when perfdhcp
 * gets no OFFER or no ACK within its drop time of 1 s (a NAK counts as lost). The sweep stops at the second step in
 * a row with >= 1 % lost. Then a step at twice the best rate shows what overload does to
 * goodput (completed DORA/s): a server that sheds load well keeps about its capacity. Every
 * step runs `repeats` times and counts the run with the median goodput: on a shared machine
 * one run can land on a burst of someone else's load.
 *
 * Printed: per step the offered rate, goodput and loss; then for both servers the highest rate
 * with < 1 % lost and the goodput at 2x that rate.
 *
 * Needs root (namespaces) and a build (`npm run build`). Installs kea-admin and dnsmasq-base
 * with apt when missing. Touches nothing outside its own namespaces xcb-dhcp-srv/xcb-dhcp-cli.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {existsSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {loadavg, tmpdir} from 'node:os'
import {join} from 'node:path'

const root = join(import.meta.dirname, '..')
const seconds = Number(process.argv[2] ?? 4)
const RATES = (process.argv[3] ?? '100,250,500,750,1000,1250,1500,1750,2000,2500,3000,4000').split(',').map(Number)
const repeats = Number(process.argv[4] ?? 3)
/** The loss a step may have and still count as served. */
const MAX_LOSS = 0.01
const SRV = 'xcb-dhcp-srv'
const CLI = 'xcb-dhcp-cli'
const SERVER_IP = '10.68.0.1'
/** perfdhcp's own address: the relay address (giaddr) of every request. */
const RELAY_IP = '10.68.255.253'
const ETCD = 'http://127.0.0.1:2379'
/** The discovery range below: a step must not run out of addresses (rate x seconds leases). */
const RANGE_SIZE = (254 - 16 + 1) * 256 - 6

function run(argv: string[], options: {quiet?: boolean} = {}): string {
  const r = spawnSync(argv[0], argv.slice(1), {encoding: 'utf8'})
  if (r.status !== 0 && !options.quiet) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}`)
  return r.stdout
}
const inNs = (ns: string, argv: string[]): string[] => ['ip', 'netns', 'exec', ns, ...argv]

function ensurePackages(): void {
  const missing = [
    ['perfdhcp', 'kea-admin'],
    ['dnsmasq', 'dnsmasq-base'],
    ['etcd', 'etcd-server'],
  ].filter(([tool]) => spawnSync('bash', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool}`]).status !== 0)
  if (missing.length === 0) return
  console.log(`installing ${missing.map(([, p]) => p).join(' ')}...`)
  run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...missing.map(([, p]) => p)])
}

function cleanup(): void {
  for (const ns of [SRV, CLI]) run(['ip', 'netns', 'del', ns], {quiet: true})
}

function network(): void {
  cleanup()
  run(['ip', 'netns', 'add', SRV])
  run(['ip', 'netns', 'add', CLI])
  run(inNs(SRV, ['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', CLI]))
  run(inNs(SRV, ['ip', 'addr', 'add', `${SERVER_IP}/16`, 'dev', 'eth0']))
  run(inNs(CLI, ['ip', 'addr', 'add', `${RELAY_IP}/16`, 'dev', 'eth0']))
  for (const ns of [SRV, CLI]) {
    run(inNs(ns, ['ip', 'link', 'set', 'lo', 'up']))
    run(inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']))
  }
}

const SPEC = `cluster: xcluster
network:
  subnet: 10.68.0.0/16
  gateway: 10.68.0.1
  dns: [10.68.0.1]
  domain: xcluster.lan
  adminVip: 10.68.0.254
  ranges:
    core: 10.68.0.2-10.68.0.10
    storage: 10.68.0.11-10.68.0.30
    compute: 10.68.0.51-10.68.0.70
    frontend: 10.68.0.71-10.68.0.80
    discovery: 10.68.16.1-10.68.254.250
ssh: {user: root, key: ~/.ssh/id_ed25519}
nodes:
  - {name: s1, mac: "02:58:43:00:01:01", ip: 10.68.0.2}
  - {name: s2, mac: "02:58:43:00:01:02", ip: 10.68.0.3}
  - {name: s3, mac: "02:58:43:00:01:03", ip: 10.68.0.4}
`

function start(argv: string[], ready: RegExp, what: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${out}`)), 15_000)
    const onData = (d: Buffer): void => {
      // Keep only the tail: a long run must not grow memory without bound.
      out = (out + d).slice(-8192)
      if (ready.test(out)) {
        clearTimeout(timer)
        // dnsmasq logs its range before every socket is ready, and a just-started Node process
        // is still compiling its hot paths: give both servers the same settling time.
        setTimeout(() => resolve(child), 2000)
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.on('exit', (code) => reject(new Error(`${what} exited ${code}: ${out}`)))
  })
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await exited
}

interface Step {
  offered: number
  /** ACKed exchanges per second of offered load. */
  goodput: number
  /** Exchanges started (DISCOVERs sent) that got no ACK. */
  loss: number
  started: number
  acks: number
}

/**
 * One perfdhcp run against the server in SRV. Asynchronous on purpose: the servers' log pipes
 * must keep draining while it runs, or a full pipe blocks the server under test.
 */
async function perfdhcp(label: string, offered: number): Promise<Step> {
  const clients = Math.min(RANGE_SIZE, Math.ceil(offered * seconds * 1.05))
  // -W: wait perfdhcp's drop time (1 s) after the last DISCOVER, so exchanges still in flight
  // when sending stops are not counted as lost.
  const argv = inNs(CLI, ['perfdhcp', '-4', '-l', 'eth0', '-L', '67', '-r', String(offered), '-R', String(clients), '-p', String(seconds), '-W', '1000000', SERVER_IP])
  const output = await new Promise<string>((resolve) => {
    const child = spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'pipe', 'pipe']})
    let text = ''
    child.stdout.on('data', (d) => (text += d))
    child.stderr.on('data', (d) => (text += d))
    child.on('close', () => resolve(text))
  })
  const rate = /Rate: ([\d.]+) 4-way exchanges\/second/.exec(output)
  // Per exchange type: "sent packets: N" then "received packets: N" (DISCOVER-OFFER, REQUEST-ACK).
  const sent = [...output.matchAll(/sent packets: (\d+)/g)].map((m) => Number(m[1]))
  const received = [...output.matchAll(/received packets: (\d+)/g)].map((m) => Number(m[1]))
  const naks = Number(/rejected leases: (\d+)/.exec(output.slice(output.indexOf('REQUEST-ACK')))?.[1] ?? 0)
  if (!rate || sent.length < 2 || received.length < 2) throw new Error(`${label}: unexpected perfdhcp output:\n${output}`)
  const acks = received[1] - naks
  // perfdhcp's own rate divides by the -W wait too: goodput is per second of offered load.
  return {offered, goodput: acks / seconds, started: sent[0], acks, loss: sent[0] === 0 ? 1 : 1 - acks / sent[0]}
}

interface Server {
  name: string
  /** Starts the server on an empty lease table. */
  start(): Promise<ChildProcess>
}

const fmt = (s: Step): string =>
  `  offered ${String(s.offered).padStart(5)}/s   goodput ${s.goodput.toFixed(0).padStart(5)} DORA/s   lost ${(s.loss * 100).toFixed(2).padStart(6)} %   (${s.acks} ACKs of ${s.started} started)`

/** The sweep for one server: the best rate under MAX_LOSS, then one run at twice that rate. */
async function sweep(server: Server): Promise<{best?: Step; overload?: Step}> {
  const once = async (rate: number): Promise<Step> => {
    const child = await server.start()
    try {
      return await perfdhcp(server.name, rate)
    } finally {
      await stop(child)
    }
  }
  const step = async (rate: number): Promise<Step> => {
    const runs: Step[] = []
    for (let i = 0; i < repeats; i++) runs.push(await once(rate))
    return runs.sort((a, b) => a.goodput - b.goodput)[Math.floor(runs.length / 2)]
  }
  console.log(`\n== ${server.name}: fresh leases, ${seconds} s per step, median of ${repeats}`)
  let best: Step | undefined
  let failures = 0
  for (const rate of RATES) {
    const s = await step(rate)
    console.log(fmt(s))
    if (s.loss < MAX_LOSS) {
      if (!best || s.offered > best.offered) best = s
      failures = 0
    } else if (++failures >= 2) break
  }
  if (!best) return {}
  const overload = await step(best.offered * 2)
  console.log(`${fmt(overload)}   <- 2x the best rate`)
  return {best, overload}
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces): run with sudo')
  if (!existsSync(join(root, 'dist', 'commands', 'serve.js'))) throw new Error('no build: run `npm run build` first')
  if (RATES.some((r) => !(r > 0)) || !(seconds > 0) || !(repeats >= 1)) throw new Error('usage: bench/dhcp.ts [seconds] [rate,rate,...] [repeats]')
  if (Math.max(...RATES) * 2 * seconds > RANGE_SIZE) throw new Error(`the discovery range holds ${RANGE_SIZE} addresses: lower the rates or the seconds`)
  ensurePackages()
  const dir = mkdtempSync(join(tmpdir(), 'xcb-dhcp-'))
  const children: ChildProcess[] = []
  try {
    network()
    const etcd = await start(
      inNs(SRV, [
        'etcd',
        '--name',
        'bench',
        '--data-dir',
        join(dir, 'etcd'),
        '--listen-client-urls',
        ETCD,
        '--advertise-client-urls',
        ETCD,
        '--listen-peer-urls',
        'http://127.0.0.1:2380',
        '--initial-advertise-peer-urls',
        'http://127.0.0.1:2380',
        '--initial-cluster',
        'bench=http://127.0.0.1:2380',
        '--quota-backend-bytes',
        String(8 * 1024 ** 3),
      ]),
      /ready to serve client requests|serving insecure client requests/,
      'etcd',
    )
    children.push(etcd)
    const specFile = join(dir, 'xcluster.yaml')
    writeFileSync(specFile, SPEC)
    const xc = (args: string[]): string[] => inNs(SRV, [process.execPath, join(root, 'bin', 'run.js'), ...args, '--etcd', ETCD])
    run(xc(['config', 'apply', '-f', specFile, '--yes']))

    let dnsmasqRun = 0
    const dnsmasq: Server = {
      name: 'dnsmasq',
      start: () =>
        start(
          // --no-ping: xcluster does not probe addresses either (like for like); dnsmasq's
          // default lease limit (1,000) would cap the sweep.
          inNs(SRV, [
            'dnsmasq',
            '--no-daemon',
            '--conf-file=/dev/null',
            '--port=0',
            '--interface=eth0',
            '--bind-interfaces',
            '--dhcp-range=10.68.16.1,10.68.254.250,255.255.0.0,1h',
            `--dhcp-leasefile=${join(dir, `dnsmasq-${dnsmasqRun++}.leases`)}`,
            '--dhcp-authoritative',
            '--no-ping',
            `--dhcp-lease-max=${RANGE_SIZE}`,
          ]),
          /DHCP, IP range/,
          'dnsmasq',
        ),
    }
    const xcluster: Server = {
      name: 'xcluster serve --dhcp',
      start: () => {
        // Every step from an empty lease table, and etcd compacted so history does not pile up.
        run(inNs(SRV, ['etcdctl', '--endpoints', ETCD, 'del', '--prefix', '/xcluster/xcluster/dhcp/']))
        const rev = JSON.parse(run(inNs(SRV, ['etcdctl', '--endpoints', ETCD, 'endpoint', 'status', '-w', 'json'])))[0].Status.header.revision
        run(inNs(SRV, ['etcdctl', '--endpoints', ETCD, 'compact', String(rev)]))
        return start(xc(['serve', '--dhcp', '--interface', 'eth0']), /"source":"dhcp","event":"started"/, 'xcluster serve')
      },
    }
    const results: [string, {best?: Step; overload?: Step}][] = []
    const load = (): string =>
      loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')
    // The machine may be shared: its load says how far the figures can be trusted.
    console.log(`load average at the start: ${load()}`)
    for (const server of [dnsmasq, xcluster]) results.push([server.name, await sweep(server)])
    console.log(`\nload average at the end: ${load()}`)

    console.log(`\nfresh leases, ${seconds} s per step: highest offered rate with < ${MAX_LOSS * 100} % lost, and goodput at 2x that rate`)
    for (const [name, {best, overload}] of results) {
      if (!best || !overload) console.log(`${name.padEnd(22)} no step under ${MAX_LOSS * 100} % lost`)
      else
        console.log(
          `${name.padEnd(22)} ${String(best.offered).padStart(5)}/s (${best.goodput.toFixed(0)} DORA/s)   at ${overload.offered}/s: ${overload.goodput.toFixed(0).padStart(5)} DORA/s, ${(overload.loss * 100).toFixed(1)} % lost (${((overload.goodput / best.goodput) * 100).toFixed(0)} % of capacity)`,
        )
    }
  } finally {
    for (const child of children.reverse()) await stop(child)
    cleanup()
    rmSync(dir, {recursive: true, force: true})
  }
}

await main()
