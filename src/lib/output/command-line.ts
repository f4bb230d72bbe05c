const SAFE_WORD = /^[\w@%+=:,./-]+$/

/** `xcluster ARGS...`, each argument quoted for a POSIX shell where it needs it: a suggestion runs as printed. */
export function commandLine(args: readonly string[]): string {
  return ['xcluster', ...args.map((a) => (SAFE_WORD.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`))].join(' ')
}

/**
 * The command that resumes a run: the action and the arguments it was started with (its node
 * names are required arguments), any earlier --resume replaced by this run's id.
 */
export function resumeCommand(action: string, args: readonly string[], runId: string): string {
  const kept: string[] = []
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--resume') i++
    else if (!args[i].startsWith('--resume=')) kept.push(args[i])
  }
  return commandLine([...action.split(' '), ...kept, '--resume', runId])
}
