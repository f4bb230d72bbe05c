/**
 * DHCP throughput: full DORA exchanges per second measured by perfdhcp (Debian kea-admin)
 * against `xcluster serve --dhcp` (every lease written to etcd, fsync'd) and against dnsmasq,
 * in the same namespaces and the same run. perfdhcp works only in relay mode here, so requests
 * arrive with giaddr set and replies go back to the relay's port 67.
 *
 *   sudo npx tsx bench/dhcp.ts [rate=3000] [seconds=5] [clients=1000]
 *
 * Two scenarios, each against both servers from an empty lease table:
 * - repeat: `clients` MACs cycling through DORA again and again (a boot storm with
 *   retransmissions): xcluster ACKs a lease younger than settings.dhcp.leaseCacheThreshold from
 *   its cache, as Kea does, so most exchanges need no write;
 * - fresh: one DORA per MAC (-R 3000 at up to 600/s, for as long as the pool lasts): every
 *   exchange writes a new lease to etcd.
 *
 * Needs root (namespaces) and a build (`npm run build`). Installs kea-admin and dnsmasq-base
 * with apt when missing. Touches nothing outside its own namespaces xcb-dhcp-srv/xcb-dhcp-cli.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {existsSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

const root = join(import.meta.dirname, '..')
const [rate, seconds, clients] = [Number(process.argv[2] ?? 3000), Number(process.argv[3] ?? 5), Number(process.argv[4] ?? 1000)]
/** The discovery range below holds 3,066 addresses: a fresh run must not exhaust it. */
const FRESH_CLIENTS = 3000
const SRV = 'xcb-dhcp-srv'
const CLI = 'xcb-dhcp-cli'
const SERVER_IP = '10.68.0.1'
const ETCD = 'http://127.0.0.1:2379'

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
  run(inNs(SRV, ['ip', 'addr', 'add', `${SERVER_IP}/20`, 'dev', 'eth0']))
  run(inNs(CLI, ['ip', 'addr', 'add', '10.68.15.253/20', 'dev', 'eth0']))
  for (const ns of [SRV, CLI]) {
    run(inNs(ns, ['ip', 'link', 'set', 'lo', 'up']))
    run(inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']))
  }
}

const SPEC = `cluster: xcluster
network:
  subnet: 10.68.0.0/20
  gateway: 10.68.0.1
  dns: [10.68.0.1]
  domain: xcluster.lan
  adminVip: 10.68.0.254
  ranges:
    core: 10.68.0.2-10.68.0.10
    storage: 10.68.0.11-10.68.0.30
    compute: 10.68.0.51-10.68.0.70
    frontend: 10.68.0.71-10.68.0.80
    discovery: 10.68.4.1-10.68.15.250
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
      out += d
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
    // Keep only the tail of the output: a long run must not grow memory without bound.
    child.stderr?.on('data', () => (out = out.slice(-4096)))
  })
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await exited
}

/**
 * One perfdhcp run against the server in SRV; returns completed DORA exchanges per second.
 * Asynchronous on purpose: the servers' log pipes must keep draining while it runs, or a full
 * pipe blocks the server under test.
 */
interface Scenario {
  name: string
  rate: number
  clients: number
  seconds: number
}

async function perfdhcp(label: string, sc: Scenario): Promise<{rate: number; output: string}> {
  const argv = inNs(CLI, ['perfdhcp', '-4', '-l', 'eth0', '-L', '67', '-r', String(sc.rate), '-R', String(sc.clients), '-p', String(sc.seconds), SERVER_IP])
  const output = await new Promise<string>((resolve) => {
    const child = spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'pipe', 'pipe']})
    let text = ''
    child.stdout.on('data', (d) => (text += d))
    child.stderr.on('data', (d) => (text += d))
    child.on('close', () => resolve(text))
  })
  const match = /Rate: ([\d.]+) 4-way exchanges\/second/.exec(output)
  if (!match) throw new Error(`${label}: no rate in perfdhcp output:\n${output}`)
  return {rate: Number(match[1]), output}
}

const summary = (output: string): string =>
  output
    .split('\n')
    .filter((l) => /sent packets|received packets|drops|min delay|avg delay|max delay/.test(l))
    .map((l) => `    ${l.trim()}`)
    .join('\n')

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces): run with sudo')
  if (!existsSync(join(root, 'dist', 'commands', 'serve.js'))) throw new Error('no build: run `npm run build` first')
  ensurePackages()
  const dir = mkdtempSync(join(tmpdir(), 'xcb-dhcp-'))
  const children: ChildProcess[] = []
  try {
    network()
    const etcd = await start(
      inNs(SRV, ['etcd', '--name', 'bench', '--data-dir', join(dir, 'etcd'), '--listen-client-urls', ETCD, '--advertise-client-urls', ETCD, '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380', '--initial-cluster', 'bench=http://127.0.0.1:2380']),
      /ready to serve client requests|serving insecure client requests/,
      'etcd',
    )
    children.push(etcd)
    const specFile = join(dir, 'xcluster.yaml')
    writeFileSync(specFile, SPEC)
    const xc = (args: string[]): string[] => inNs(SRV, [process.execPath, join(root, 'bin', 'run.js'), ...args, '--etcd', ETCD])
    run(xc(['config', 'apply', '-f', specFile, '--yes']))

    const freshRate = Math.min(rate, 600)
    const scenarios: Scenario[] = [
      {name: 'repeat', rate, clients, seconds},
      {name: 'fresh', rate: freshRate, clients: FRESH_CLIENTS, seconds: Math.max(1, Math.floor(FRESH_CLIENTS / freshRate) - 1)},
    ]
    const results: string[] = []
    for (const sc of scenarios) {
      console.log(`\n== ${sc.name}: perfdhcp -r ${sc.rate} -R ${sc.clients} -p ${sc.seconds} (relay mode), server ${SERVER_IP}`)
      run(inNs(SRV, ['etcdctl', '--endpoints', ETCD, 'del', '--prefix', '/xcluster/xcluster/dhcp/']))
      const leaseFile = join(dir, `dnsmasq-${sc.name}.leases`)
      const dnsmasq = await start(
        // --no-ping: xcluster does not probe addresses either (like for like); dnsmasq's default
        // lease limit (1,000) would cap the fresh run.
        inNs(SRV, ['dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0', '--interface=eth0', '--bind-interfaces', '--dhcp-range=10.68.4.1,10.68.15.250,255.255.240.0,1h', `--dhcp-leasefile=${leaseFile}`, '--dhcp-authoritative', '--no-ping', '--dhcp-lease-max=4096']),
        /DHCP, IP range/,
        'dnsmasq',
      )
      children.push(dnsmasq)
      const reference = await perfdhcp('dnsmasq', sc)
      await stop(dnsmasq)
      console.log(`dnsmasq:               ${reference.rate.toFixed(1)} DORA/s\n${summary(reference.output)}`)
      const serve = await start(xc(['serve', '--dhcp', '--interface', 'eth0']), /serving DHCP/, 'xcluster serve')
      children.push(serve)
      const xcluster = await perfdhcp('xcluster', sc)
      await stop(serve)
      const leases = JSON.parse(run(xc(['dhcp', 'leases', '--json']))).length
      console.log(`xcluster serve --dhcp: ${xcluster.rate.toFixed(1)} DORA/s (${leases} leases in etcd afterwards)\n${summary(xcluster.output)}`)
      const ratio = xcluster.rate / reference.rate
      results.push(`${sc.name.padEnd(7)} xcluster ${xcluster.rate.toFixed(0).padStart(6)} DORA/s   dnsmasq ${reference.rate.toFixed(0).padStart(6)} DORA/s   ratio ${ratio.toFixed(2)}   goal >= 1.00: ${ratio >= 1 ? 'met' : 'NOT met'}`)
    }
    console.log(`\n${results.join('\n')}`)
  } finally {
    for (const child of children.reverse()) await stop(child)
    cleanup()
    rmSync(dir, {recursive: true, force: true})
  }
}

await main()
