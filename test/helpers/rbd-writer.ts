import {execFileSync} from 'node:child_process'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ROOT} from './cli.js'

/** The librbd writer (rbd-writer.py): a stateful service's stand-in, holding the image's exclusive lock. */
export const RBD_WRITER = join(ROOT, 'test', 'helpers', 'rbd-writer.py')
/** Debian's python3, which has python3-rados and python3-rbd (not the pyenv one on PATH). */
export const SYSTEM_PYTHON = '/usr/bin/python3'

/**
 * Writes the service's start and stop scripts into `dir` for a spec entry (`sh START`, `sh STOP`):
 * start returns once the writer holds the exclusive lock; stop asks it to end (SIGTERM: it closes
 * the image, which releases the lock), or exits 1 while `dir/fail-stop` exists. Each writer's pid
 * is in `dir/writer-NODE-TOKEN.pid`.
 */
export function writeWriterScripts(dir: string, conf: string, image: string, log: string, intervalSeconds = 0.05): {start: string; stop: string} {
  const start = join(dir, 'writer-start.sh')
  const stop = join(dir, 'writer-stop.sh')
  const pidFile = `${dir}/writer-$XCLUSTER_NODE-$XCLUSTER_TOKEN.pid`
  writeFileSync(
    start,
    `${SYSTEM_PYTHON} ${RBD_WRITER} ${conf} ${image} "$XCLUSTER_NODE" "$XCLUSTER_TOKEN" ${log} ${intervalSeconds} &
pid=$!
echo $pid > ${pidFile}
until grep -q "^locked $XCLUSTER_NODE $XCLUSTER_TOKEN " ${log} 2>/dev/null; do kill -0 $pid || exit 1; sleep 0.02; done
`,
  )
  writeFileSync(
    stop,
    `[ -e ${dir}/fail-stop ] && exit 1
pid=$(cat ${pidFile})
kill -TERM $pid
while kill -0 $pid 2>/dev/null; do sleep 0.02; done
`,
  )
  return {start, stop}
}

/**
 * Start and stop scripts for a writer through the leader's mapping (XCLUSTER_RBD_DEVICE, which
 * serve sets): start returns once the writer opened the device; stop ends it with SIGTERM.
 * Each node's writer logs to a file of its own (`log(node)`): the machines' kernels each cache
 * the host's files, so two of them appending to one file overwrite each other's lines.
 * Start first logs the rbd and nbd devices the machine's kernel has mapped then (a size other
 * than 0): `devices NODE TOKEN DEVICE...`, what the machine holds as its service starts.
 */
export function writeDeviceWriterScripts(dir: string, intervalSeconds = 0.05): {start: string; stop: string; log: (node: string) => string} {
  const start = join(dir, 'device-writer-start.sh')
  const stop = join(dir, 'device-writer-stop.sh')
  const pidFile = `${dir}/writer-$XCLUSTER_NODE-$XCLUSTER_TOKEN.pid`
  const log = `${dir}/writer-$XCLUSTER_NODE.log`
  writeFileSync(
    start,
    `mapped=
for d in /sys/block/rbd* /sys/block/nbd*; do [ -e "$d/size" ] && [ "$(cat "$d/size")" != 0 ] && mapped="$mapped /dev/\${d##*/}"; done
echo "devices $XCLUSTER_NODE $XCLUSTER_TOKEN$mapped" >> ${log}
${SYSTEM_PYTHON} ${RBD_WRITER} --device "$XCLUSTER_RBD_DEVICE" "$XCLUSTER_NODE" "$XCLUSTER_TOKEN" ${log} ${intervalSeconds} &
pid=$!
echo $pid > ${pidFile}
until grep -q "^opened $XCLUSTER_NODE $XCLUSTER_TOKEN " ${log} 2>/dev/null; do kill -0 $pid || exit 1; sleep 0.02; done
`,
  )
  writeFileSync(
    stop,
    `pid=$(cat ${pidFile})
kill -TERM $pid
while kill -0 $pid 2>/dev/null; do sleep 0.02; done
`,
  )
  return {start, stop, log: (node) => join(dir, `writer-${node}.log`)}
}

export const writerPid = (dir: string, node: string, token: string): number => Number(readFileSync(join(dir, `writer-${node}-${token}.pid`), 'utf8').trim())

export const writerLines = (log: string): string[] => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [])

/** The writer that locked the image last: its node, token, client address, and how many records it wrote. */
export function latestWriter(log: string): {node: string; token: string; address: string; wrote: number} | undefined {
  const lines = writerLines(log)
  const last = lines.filter((l) => l.startsWith('locked ')).at(-1)
  if (!last) return undefined
  const [, node, token, address] = last.split(' ') as [string, string, string, string]
  return {node, token, address, wrote: lines.filter((l) => l.startsWith(`wrote ${node} ${token} `)).length}
}

/** One record read back from the image. */
export interface ImageRecord {
  slot: number
  node: string
  token: string
  seq: number
  /** Wall-clock nanoseconds when the writer made it. */
  ns: bigint
}

/** `wrap`: a command prefix to read from, e.g. `ip netns exec NS` where the cluster answers. */
export function readRecords(conf: string, image: string, wrap: string[] = []): ImageRecord[] {
  const argv = [...wrap, SYSTEM_PYTHON, RBD_WRITER, '--dump', conf, image]
  return execFileSync(argv[0] as string, argv.slice(1), {encoding: 'utf8'})
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [slot, node, token, seq, ns] = l.split(' ')
      return {slot: Number(slot), node: node as string, token: token as string, seq: Number(seq), ns: BigInt(ns as string)}
    })
}
