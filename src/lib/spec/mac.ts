/** MAC addresses: one canonical form (lower-case, colon-separated) used in etcd and everywhere else. */

export type MacCheck = {ok: true; mac: string} | {ok: false; kind: 'format' | 'zero' | 'multicast'; reason: string}

const MAC = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i

/**
 * Accepts `aa:bb:cc:dd:ee:ff` or `AA-BB-CC-DD-EE-FF` (one separator throughout) and returns the
 * canonical form. Multicast MACs (least significant bit of the first octet set) and the all-zero
 * MAC can never be a NIC's own address, so they are refused.
 */
export function checkMac(text: string): MacCheck {
  if (!MAC.test(text)) return {ok: false, kind: 'format', reason: 'is not a MAC address'}
  const mac = text.toLowerCase().replaceAll('-', ':')
  if (mac === '00:00:00:00:00:00') return {ok: false, kind: 'zero', reason: 'is the all-zero MAC, which no NIC has'}
  if (Number.parseInt(mac.slice(0, 2), 16) & 1) {
    return {ok: false, kind: 'multicast', reason: "is a multicast MAC (least significant bit of the first octet is set), not a NIC's address"}
  }
  return {ok: true, mac}
}

/** The canonical form of a valid MAC; throws on an invalid one (use checkMac to test). */
export function normalizeMac(text: string): string {
  const result = checkMac(text)
  if (!result.ok) throw new Error(`${JSON.stringify(text)} ${result.reason}`)
  return result.mac
}
