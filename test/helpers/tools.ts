import {execFileSync} from 'node:child_process'

/**
 * Finds a tool a test needs. A missing tool is a loud failure, never a silent skip:
 * `npm test` installs every one of them (test/packages.ts).
 */
export function requireTool(name: string, debianPackage: string): string {
  try {
    return execFileSync('bash', ['-c', `command -v ${name} || ls /usr/sbin/${name} /usr/bin/${name} 2>/dev/null | head -1`], {encoding: 'utf8'}).trim() || fail()
  } catch {
    return fail()
  }

  function fail(): never {
    throw new Error(`this test needs \`${name}\` (Debian package ${debianPackage}); install it, or run npm test, which installs test/packages.ts`)
  }
}
