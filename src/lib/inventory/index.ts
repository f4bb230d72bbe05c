/** Ansible from etcd (issue 12): the dynamic inventory, and the files that let Ansible use it with the pinned host keys. */
export {
  buildInventory,
  INVENTORY_STATES,
  inventoryHost,
  stateGroup,
  type AnsibleGroup,
  type AnsibleInventory,
  type AnsibleMeta,
  type InventoryAccess,
  type InventoryHostVars,
  type InventorySource,
} from './inventory.js'
export {readInventory, type InventoryRead} from './read.js'
export {parseKeyscanOutput, pinnedKnownHosts, sshKeyscan, type HostKeyScanner, type KnownHostEntry, type KnownHostStatus, type KnownHostTarget, type PresentedHostKey} from './known-hosts.js'
export {
  checkExportDir,
  EXPORT_FILES,
  EXPORT_MARKER,
  planExportFiles,
  planInventoryExport,
  renderExportFiles,
  writeInventoryExport,
  type ExportFile,
  type ExportFileAction,
  type ExportInput,
  type ExportOptions,
  type InventoryExport,
} from './export.js'
