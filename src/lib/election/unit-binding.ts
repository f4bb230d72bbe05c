import {execFile} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {promisify} from 'node:util'

import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'

/** The systemd unit this process runs in (from its cgroup), when systemd started it. */
export function ownUnit(cgroupFile = '/proc/self/cgroup'): string | undefined {
  if (!process.env.INVOCATION_ID || !existsSync('/run/systemd/system')) return undefined
  try {
    const text = readFileSync(cgroupFile, 'utf8')
    return text.match(/\/([^/\s]+\.service)\s*$/m)?.[1]
  } catch {
    return undefined
  }
}

/**
 * Binds each `unit:` service to the serve unit this process runs in, with a runtime drop-in
 * (BindsTo= and After=): when serve stops or dies, systemd stops the service too, whatever state
 * serve was in. The guardian covers a serve that lives on but stalls. Does nothing outside
 * systemd (there the guardian alone answers for the instance). Returns the units bound.
 */
export async function bindUnitsToServe(units: string[], dropInRoot = '/run/systemd/system'): Promise<string[]> {
  const serveUnit = ownUnit()
  if (!serveUnit || units.length === 0) return []
  let changed = false
  for (const unit of units) {
    const dir = join(dropInRoot, `${unit.endsWith('.service') ? unit : `${unit}.service`}.d`)
    const file = join(dir, settings.election.bindingDropIn)
    const content = renderTemplate('node/serve-binding.conf', {serveUnit})
    if (existsSync(file) && readFileSync(file, 'utf8') === content) continue
    mkdirSync(dir, {recursive: true})
    writeFileSync(file, content)
    changed = true
  }
  if (changed) await promisify(execFile)('systemctl', ['daemon-reload'], {timeout: settings.election.stopTimeoutMs})
  return units
}
