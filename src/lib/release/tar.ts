/**
 * A minimal, deterministic POSIX tar writer (ustar headers, pax records for long names): every
 * entry is owned by 0:0 with one fixed mtime, so the archive's bytes depend only on the paths,
 * modes and contents given, in the order given. GNU tar on a node extracts it as it is.
 */

export type TarEntry = {type: 'dir'; path: string; mode: number} | {type: 'file'; path: string; mode: number; size: number} | {type: 'symlink'; path: string; target: string}

const BLOCK = 512
/** 2000-01-01T00:00:00Z: any fixed time; GNU tar warns about dates near the epoch. */
export const TAR_MTIME = 946_684_800

/** The header block(s) of one entry: a pax record first when a name does not fit ustar. */
export function tarHeader(entry: TarEntry): Buffer {
  const name = entry.type === 'dir' ? `${entry.path}/` : entry.path
  const target = entry.type === 'symlink' ? entry.target : ''
  const split = splitName(name)
  const pax: string[] = []
  if (!split) pax.push(paxRecord('path', name))
  if (Buffer.byteLength(target) > 100) pax.push(paxRecord('linkpath', target))
  const blocks: Buffer[] = []
  if (pax.length > 0) {
    const body = Buffer.from(pax.join(''), 'utf8')
    blocks.push(ustarHeader({name: 'PaxHeader', prefix: '', mode: 0o644, size: body.length, type: 'x', link: ''}), pad(body))
  }
  const {prefix, base} = split ?? {prefix: '', base: truncate(name, 100)}
  const mode = entry.type === 'symlink' ? 0o777 : entry.mode
  const size = entry.type === 'file' ? entry.size : 0
  const type = entry.type === 'file' ? '0' : entry.type === 'dir' ? '5' : '2'
  blocks.push(ustarHeader({name: base, prefix, mode, size, type, link: truncate(target, 100)}))
  return Buffer.concat(blocks)
}

/** Zero bytes that pad `size` bytes of content to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK)
}

/** The end of an archive: two zero blocks. */
export const TAR_END = Buffer.alloc(2 * BLOCK)

interface Header {
  name: string
  prefix: string
  mode: number
  size: number
  type: string
  link: string
}

function ustarHeader(h: Header): Buffer {
  const block = Buffer.alloc(BLOCK)
  block.write(h.name, 0, 100, 'utf8')
  octal(block, 100, 8, h.mode)
  octal(block, 108, 8, 0)
  octal(block, 116, 8, 0)
  octal(block, 124, 12, h.size)
  octal(block, 136, 12, TAR_MTIME)
  block.fill(0x20, 148, 156)
  block.write(h.type, 156, 1, 'ascii')
  block.write(h.link, 157, 100, 'utf8')
  block.write('ustar\u000000', 257, 8, 'ascii')
  block.write('root', 265, 32, 'ascii')
  block.write('root', 297, 32, 'ascii')
  octal(block, 329, 8, 0)
  octal(block, 337, 8, 0)
  block.write(h.prefix, 345, 155, 'utf8')
  let sum = 0
  for (const byte of block) sum += byte
  block.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii')
  return block
}

function octal(block: Buffer, offset: number, length: number, value: number): void {
  const text = value.toString(8).padStart(length - 1, '0')
  if (text.length > length - 1) throw new Error(`tar: ${value} does not fit a ${length}-byte field`)
  block.write(`${text}\u0000`, offset, length, 'ascii')
}

/** ustar keeps a name of up to 100 bytes, or a prefix of up to 155 and a base of up to 100 split at a '/'. */
function splitName(name: string): {prefix: string; base: string} | undefined {
  if (Buffer.byteLength(name) <= 100) return {prefix: '', base: name}
  const trailing = name.endsWith('/') ? 1 : 0
  for (let i = name.lastIndexOf('/', name.length - 1 - trailing); i > 0; i = name.lastIndexOf('/', i - 1)) {
    const prefix = name.slice(0, i)
    const base = name.slice(i + 1)
    if (Buffer.byteLength(base) > 100) return undefined
    if (Buffer.byteLength(prefix) <= 155) return {prefix, base}
  }
  return undefined
}

/** A pax record: "<length> <key>=<value>\n", where the length counts itself. */
function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`
  let length = Buffer.byteLength(rest) + 1
  while (String(length).length + Buffer.byteLength(rest) !== length) length = String(length).length + Buffer.byteLength(rest)
  return `${length}${rest}`
}

/** The ustar field keeps what fits; a pax record carries the full value. */
function truncate(text: string, bytes: number): string {
  const buffer = Buffer.from(text, 'utf8')
  return buffer.length <= bytes ? text : buffer.subarray(0, bytes).toString('utf8')
}

function pad(body: Buffer): Buffer {
  return Buffer.concat([body, tarPadding(body.length)])
}
