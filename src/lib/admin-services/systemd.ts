import {spawnSync} from 'node:child_process'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitStatus, XclusterError} from '../errors.js'
import {renderTemplate} from '../render/template.js'
import {settings} from '../settings.js'
import type {ServiceManager, ServiceRecord} from './native.js'
import {resolvedArgv, waitForPorts} from './native.js'
import type {AdminService, AdminServiceName} from './render.js'

/** systemd is PID 1 here (sd_booted(3): /run/systemd/system exists). */
export const systemdRunning = (): boolean => existsSync('/run/systemd/system')

export const adminUnitName = (service: AdminServiceName): string => `${settings.adminServices.unitPrefix}${service}.service`

/** A persistent unit for a service: the same command --native runs, enabled so a reboot brings it back. */
export function renderAdminUnit(service: AdminService, cluster: string, root: string): string {
  return renderTemplate('admin/service.unit', {
    title: service.title,
    cluster,
    root,
    exec: resolvedArgv(service.argv).join(' '),
    prepare: service.prepare ? resolvedArgv(service.prepare).join(' ') : undefined,
    restartSeconds: settings.adminServices.unitRestartSeconds,
    stopSeconds: Math.ceil(settings.adminServices.stopTimeoutMs / 1000),
  })
}

function systemctl(...args: string[]): string {
  const res = spawnSync('systemctl', args, {encoding: 'utf8'})
  if (res.status !== 0) {
    throw new XclusterError(`\`systemctl ${args.join(' ')}\` failed: ${(res.stderr || res.stdout).trim()}`, {
      code: 'ADMIN_SYSTEMCTL_FAILED',
      exit: ExitStatus.failure,
      suggestion: `Look at: journalctl -u ${args.at(-1)}`,
    })
  }
  return res.stdout
}

const activeState = (unit: string): string => spawnSync('systemctl', ['is-active', unit], {encoding: 'utf8'}).stdout.trim()

/** Units under systemd: it supervises, restarts on failure and starts them at boot. */
export function systemdManager(stateDir: string): ServiceManager {
  const unitPath = (unit: string): string => join(settings.adminServices.unitDir, unit)
  const running = (record: ServiceRecord): boolean => record.unit !== undefined && activeState(record.unit) === 'active'
  const manager: ServiceManager = {
    kind: 'systemd',
    running,
    // Every process of a unit is in its cgroup, whatever it forks.
    owns: (record, holder) => {
      try {
        return record.unit !== undefined && readFileSync(`/proc/${holder.pid}/cgroup`, 'utf8').includes(`/${record.unit}\n`)
      } catch {
        return false
      }
    },
    async start(service, bundle, fingerprint) {
      const unit = adminUnitName(service.name)
      const text = renderAdminUnit(service, bundle.cluster, stateDir)
      const current = existsSync(unitPath(unit)) ? readFileSync(unitPath(unit), 'utf8') : undefined
      if (current !== text) {
        writeFileSync(unitPath(unit), text, {mode: 0o644})
        systemctl('daemon-reload')
      }
      systemctl('enable', unit)
      systemctl('restart', unit)
      const record: ServiceRecord = {service: service.name, manager: 'systemd', unit, fingerprint, ports: service.ports, startedAt: new Date().toISOString()}
      await waitForPorts(service, record, manager, `journalctl -u ${unit}`)
      return record
    },
    async stop(record) {
      if (!record.unit) return
      systemctl('disable', '--now', record.unit)
    },
  }
  return manager
}
