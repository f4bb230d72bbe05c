// Building the page from data that comes from etcd: every value becomes a text node or a property,
// never markup, so a node named "<script>" is shown as those characters.

/**
 * An element: `props` sets properties (className, title, hidden…) and `data` its data-* attributes;
 * children are elements, or anything else shown as text (null/undefined skipped).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag)
  const {data, ...rest} = props
  Object.assign(el, rest)
  for (const [k, v] of Object.entries(data ?? {})) if (v !== undefined && v !== null) el.dataset[k] = String(v)
  append(el, children)
  return el
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
}

export const byId = (id) => document.getElementById(id)

/** Sets an element's text only when it differs: no layout work for what did not change. */
export function setText(el, text) {
  const value = text === undefined || text === null ? '' : String(text)
  if (el.textContent !== value) el.textContent = value
}

/** Replaces a small table's rows; shows `empty` instead when there are none. */
export function fillRows(tbody, empty, items, row) {
  tbody.replaceChildren(...items.map(row))
  if (empty) empty.hidden = items.length > 0
  tbody.closest('table').hidden = items.length === 0
}

/** A cell of `text`, with `className` and an optional tooltip. */
export const td = (text, className = '', title = '') => h('td', {className, title}, text)

/** A status word (ok, warn, fail, or another state) as a coloured badge. */
export const badge = (word, title = '') => h('span', {className: 'badge', title, data: {status: word}}, word)
