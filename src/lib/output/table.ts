import Table from 'cli-table3'

export interface Column<T> {
  header: string
  get: (row: T) => string | number | undefined | null
}

/** A plain, borderless table (like `kubectl get`): easy to read and to grep. */
export function renderTable<T>(columns: Column<T>[], rows: T[]): string {
  const table = new Table({
    head: columns.map((c) => c.header.toUpperCase()),
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '  ',
    },
    style: {head: [], border: [], 'padding-left': 0, 'padding-right': 0},
  })
  for (const row of rows) table.push(columns.map((c) => String(c.get(row) ?? '-')))
  return table
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')
}
