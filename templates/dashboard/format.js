// How times, sizes and ages read on the page: local time, and how long ago.

const sameDay = (a, b) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate()

/** "14:03:22" today, "Mar 3 14:03" before; "–" for nothing or nonsense. */
export function clock(iso) {
  const d = new Date(iso ?? '')
  if (Number.isNaN(d.getTime())) return '–'
  const now = new Date()
  return sameDay(d, now)
    ? d.toLocaleTimeString([], {hour12: false})
    : `${d.toLocaleDateString([], {month: 'short', day: 'numeric'})} ${d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', hour12: false})}`
}

/** "12 s", "4 min", "3 h", "2 d": how long ago `iso` was. */
export function age(iso, now = Date.now()) {
  const t = Date.parse(iso ?? '')
  if (Number.isNaN(t)) return ''
  const s = Math.max(0, Math.round((now - t) / 1000))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min`
  if (s < 86_400) return `${Math.floor(s / 3600)} h`
  return `${Math.floor(s / 86_400)} d`
}

export function bytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`
}

export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`
