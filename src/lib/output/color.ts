import {Chalk, type ChalkInstance} from 'chalk'

/**
 * chalk 5 ignores NO_COLOR, so colour is decided here once: off for NO_COLOR, --no-color,
 * or a non-TTY stdout.
 */
export function makeColor(enabled: boolean): ChalkInstance {
  const wanted = enabled && !('NO_COLOR' in process.env) && Boolean(process.stdout.isTTY)
  return new Chalk({level: wanted ? 1 : 0})
}
