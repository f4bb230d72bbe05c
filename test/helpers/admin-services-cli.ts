/**
 * Runs the admin-services API in the network namespace it is started in (tests start it with
 * `ip netns exec NS`), as the bootstrap command will: `start SPEC_FILE STATE_DIR [--dry-run]`,
 * `status STATE_DIR`, `stop STATE_DIR`. Prints the typed result as JSON; an XclusterError as
 * JSON on stderr with its exit status.
 */
import {readFileSync} from 'node:fs'

import {nativeServicesStatus, startNativeServices, stopNativeServices} from '../../src/lib/admin-services/index.js'
import {XclusterError} from '../../src/lib/errors.js'
import {parseSpec} from '../../src/lib/spec/parse.js'

const [op, ...args] = process.argv.slice(2)
try {
  let result: unknown
  if (op === 'start') result = await startNativeServices(parseSpec(readFileSync(args[0], 'utf8'), args[0]), {stateDir: args[1], dryRun: args.includes('--dry-run')})
  else if (op === 'status') result = nativeServicesStatus({stateDir: args[0]})
  else if (op === 'stop') result = await stopNativeServices({stateDir: args[0]})
  else throw new Error(`unknown op ${op}`)
  process.stdout.write(JSON.stringify(result) + '\n')
} catch (err) {
  if (err instanceof XclusterError) {
    process.stderr.write(JSON.stringify(err.toJSON()) + '\n')
    process.exit(err.exit)
  }
  throw err
}
