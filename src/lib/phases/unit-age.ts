import {shellQuote, type SshHost} from '../ssh/index.js'

/**
 * Which of the units' main processes started before `path` last changed (the link itself for a
 * symlink): they still run with what it held before, and want a restart. A unit not running is
 * not listed. Both ages are measured on the node to the kernel's tick (the process's start from
 * /proc, the file's nanosecond mtime), so a restart right after a write counts as after it.
 */
export async function unitsStartedBefore(ssh: SshHost, path: string, units: string[]): Promise<string[]> {
  const script = units
    .map(
      (u) =>
        `pid=$(systemctl show -p MainPID --value ${shellQuote(u)}); if [ "\${pid:-0}" -gt 0 ]; then ` +
        `awk -v up="$(cut -d' ' -f1 /proc/uptime)" -v hz="$(getconf CLK_TCK)" -v now="$(date +%s.%N)" -v mtime="$(stat -c %.9Y ${shellQuote(path)})" ` +
        // /proc/PID/stat: field 22 is the start in ticks since boot; count after "(comm) ", which may hold spaces.
        `-v start="$(sed 's/.*) //' /proc/$pid/stat | cut -d' ' -f20)" -v unit=${shellQuote(u)} 'BEGIN { if (up - start / hz > now - mtime) print unit }'; fi`,
    )
    .join('; ')
  const res = await ssh.exec(script, {sudo: true})
  return res.stdout.split('\n').filter((u) => units.includes(u))
}
