/**
 * A process that outlives its SIGKILL for as long as a test wants: a cgroup v1 freezer holds it
 * in the kernel, where a fatal signal stays pending until it is thawed, as a process on a busy
 * host (or stuck in the kernel) dies only when it next runs.
 */
import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync} from 'node:fs'

const FREEZER = '/sys/fs/cgroup/freezer'

/** Freezes `pid` (all its threads) in a freezer cgroup of that name; thaw() lets it run and removes the group. */
export function freeze(pid: number, name: string): {thaw(): void} {
  const cgroup = `${FREEZER}/${name}`
  mkdirSync(cgroup, {recursive: true})
  writeFileSync(`${cgroup}/cgroup.procs`, String(pid))
  writeFileSync(`${cgroup}/freezer.state`, 'FROZEN')
  const thaw = () => {
    if (!existsSync(cgroup)) return
    writeFileSync(`${cgroup}/freezer.state`, 'THAWED')
    // The group can go once it is empty: a live process goes back to the root, a dying one ends.
    for (let tries = 0; ; tries++) {
      for (const p of readFileSync(`${cgroup}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(`${FREEZER}/cgroup.procs`, p)
        } catch {
          // exiting: it leaves the group by itself
        }
      }
      try {
        rmdirSync(cgroup)
        return
      } catch (err) {
        if (tries > 500) throw err
        execFileSync('sleep', ['0.01'])
      }
    }
  }
  return {thaw}
}

/** Whether a SIGKILL is pending for `pid` (its shared pending signals, /proc/PID/status ShdPnd). */
export function killPending(pid: number): boolean {
  const line = /^ShdPnd:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return line !== null && (BigInt(`0x${line[1]}`) & (1n << 8n)) !== 0n
}
