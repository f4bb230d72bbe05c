import {settings} from '../settings.js'
import type {ClusterSpec} from '../spec/types.js'
import {userClasses} from './packet.js'

/** PXE settings with every default filled in. */
export interface PxeSettings {
  tftpServer: string
  httpBootUrl: string
  biosBootFile: string
  uefiBootFile: string
}

/** What a PXE client is told: where to fetch what (DHCP siaddr / option 66, file / option 67). */
export interface BootAnswer {
  nextServer: string
  bootfile: string
}

/** RFC 4578 option 93 values. */
export const ClientArch = {bios: 0, efiIa32: 6, efiBc: 7, efiX64: 9} as const
const UEFI_X64 = new Set<number>([ClientArch.efiBc, ClientArch.efiX64])

/** The spec's pxe: section, defaults from the gateway (the admin host serves TFTP and HTTP). */
export function pxeSettings(spec: ClusterSpec): PxeSettings {
  const gateway = spec.network.gateway
  return {
    tftpServer: spec.pxe?.tftpServer ?? gateway,
    httpBootUrl: spec.pxe?.httpBootUrl ?? `http://${gateway}${settings.dhcp.pxe.httpBootPath}`,
    biosBootFile: spec.pxe?.biosBootFile ?? settings.dhcp.pxe.biosBootFile,
    uefiBootFile: spec.pxe?.uefiBootFile ?? settings.dhcp.pxe.uefiBootFile,
  }
}

/**
 * The boot answer for a client, or undefined for one that is not network booting. iPXE (user
 * class "iPXE") already runs, so it gets the boot script over HTTP; a firmware PXE ROM gets the
 * iPXE binary for its architecture over TFTP (chainloading).
 */
export function bootAnswer(pxe: PxeSettings, client: {clientArch?: number[]; vendorClass?: string; userClass?: Buffer}): BootAnswer | undefined {
  if (userClasses(client.userClass).includes('iPXE')) return {nextServer: pxe.tftpServer, bootfile: pxe.httpBootUrl}
  const arch = client.clientArch?.[0]
  const pxeClient = arch !== undefined || client.vendorClass?.startsWith('PXEClient')
  if (!pxeClient) return undefined
  if (arch === undefined || arch === ClientArch.bios) return {nextServer: pxe.tftpServer, bootfile: pxe.biosBootFile}
  if (UEFI_X64.has(arch)) return {nextServer: pxe.tftpServer, bootfile: pxe.uefiBootFile}
  return undefined // an architecture we have no loader for
}
