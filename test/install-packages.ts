/**
 * `npm test` runs this first (as root): installs whatever of TEST_PACKAGES is missing with
 * apt-get, as `lab up` does for the lab, so the README's `npm ci && npm test` works on a fresh
 * Debian machine. Prints what it installed.
 */
import {ensureHostPackages} from '../src/lib/lab/packages.js'
import {TEST_PACKAGES} from './packages.js'

const installed = await ensureHostPackages(TEST_PACKAGES)
process.stderr.write(installed.length > 0 ? `installed ${installed.join(' ')}\n` : `test packages present (${TEST_PACKAGES.length})\n`)
