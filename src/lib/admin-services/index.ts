/**
 * The admin host's bootstrap services (issue 8, point 1): NTP, DNS/TFTP with the iPXE binaries,
 * HTTP for boot scripts and install media, the package cache and Ansible, rendered from the spec
 * and run either as a Docker Compose bundle or natively on the admin host.
 */
export {adminLayout, type AdminLayout} from './layout.js'
export {writeComposeBundle, type ComposeBundleResult} from './compose.js'
export {
  nativeServicesStatus,
  startNativeServices,
  stopNativeServices,
  type NativeAction,
  type NativeOptions,
  type NativeStartResult,
  type NativeStopResult,
  type ServiceRecord,
  type ServiceStatus,
} from './native.js'
export {adminCacheUrl, packageSettings, type PackageSettings} from './packages.js'
export {preflightAdminServices, type PortConflict} from './preflight.js'
export {
  ADMIN_SERVICE_NAMES,
  renderAdminServices,
  type AdminCopy,
  type AdminDirectory,
  type AdminFile,
  type AdminPort,
  type AdminService,
  type AdminServiceName,
  type AdminServicesBundle,
  type RenderAdminOptions,
} from './render.js'
export {adminUnitName, renderAdminUnit, systemdRunning} from './systemd.js'
