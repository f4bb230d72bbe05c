/**
 * A process that outlives its SIGKILL for as long as a test wants: a cgroup v1 freezer holds it
 * in the kernel, where a fatal signal stays pending until it is thawed, as a process on a busy
 * host (or stuck in the kernel) dies only when it next runs.
 */
import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

/**
 * Where the cgroup v1 freezer hierarchy is mounted in this mount namespace. `ip netns exec` (the
 * suite runs in the lab's admin namespace) remounts /sys without the cgroup mounts: there the
 * same hierarchy is mounted again, on a directory of its own (it lives as long as the namespace).
 */
export function freezerRoot(): string {
  // mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - TYPE SOURCE SUPEROPTIONS"
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [mount, fs = ''] = line.split(' - ')
    const [type, , superOptions = ''] = fs.split(' ')
    if (type === 'cgroup' && superOptions.split(',').includes('freezer')) return mount?.split(' ')[4] as string
  }
  const dir = mkdtempSync(join(tmpdir(), 'xct-freezer-'))
  execFileSync('mount', ['-t', 'cgroup', '-o', 'freezer', 'xct-freezer', dir])
  return dir
}

/** Freezes `pid` (all its threads) in a freezer cgroup of that name; thaw() lets it run and removes the group. */
export function freeze(pid: number, name: string): {thaw(): void} {
  const root = freezerRoot()
  const cgroup = `${root}/${name}`
  mkdirSync(cgroup)
  writeFileSync(`${cgroup}/cgroup.procs`, String(pid))
  writeFileSync(`${cgroup}/freezer.state`, 'FROZEN')
  const thaw = () => {
    if (!existsSync(cgroup)) return
    writeFileSync(`${cgroup}/freezer.state`, 'THAWED')
    // The group can go once it is empty: a live process goes back to the root, a dying one ends.
    for (let tries = 0; ; tries++) {
      for (const p of readFileSync(`${cgroup}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(`${root}/cgroup.procs`, p)
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
