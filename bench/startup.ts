/**
 * Startup time of `xcluster --help` (with the oclif manifest) beside `etcdctl version`, both
 * spawned the same way, in the same run. Prints median and p90 over N runs.
 *
 *   npx tsx bench/startup.ts [runs]
 */
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {join} from 'node:path'

const root = join(import.meta.dirname, '..')
const runs = Number(process.argv[2] ?? 20)

if (!existsSync(join(root, 'oclif.manifest.json'))) {
  console.error('oclif.manifest.json is missing: run `npm run build` first')
  process.exit(2)
}

function measure(cmd: string, args: string[]): {median: number; p90: number; min: number} {
  spawnSync(cmd, args, {stdio: 'ignore'}) // warm the page cache
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint()
    const r = spawnSync(cmd, args, {stdio: 'ignore', env: {...process.env, NO_COLOR: '1'}})
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`)
    times.push(ms)
  }
  times.sort((a, b) => a - b)
  return {median: times[Math.floor(times.length / 2)], p90: times[Math.floor(times.length * 0.9)], min: times[0]}
}

const xc = measure(process.execPath, [join(root, 'bin', 'run.js'), '--help'])
const etcdctl = measure('etcdctl', ['version'])
const row = (name: string, m: {median: number; p90: number; min: number}) =>
  `${name.padEnd(22)} median ${m.median.toFixed(0).padStart(5)} ms   p90 ${m.p90.toFixed(0).padStart(5)} ms   min ${m.min.toFixed(0).padStart(5)} ms`
console.log(`startup over ${runs} runs each`)
console.log(row('xcluster --help', xc))
console.log(row('etcdctl version', etcdctl))
console.log(`ratio xcluster/etcdctl (median): ${(xc.median / etcdctl.median).toFixed(1)}x   goal: xcluster --help < 300 ms -> ${xc.median < 300 ? 'met' : 'NOT met'}`)
