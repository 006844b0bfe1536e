// Reading one cookie out of a Cookie header without parsing the rest, and removing it while
// leaving every other byte of the header as it came. Finding is allocation-free because it runs
// on every legacy-bound request.

const SPACE = 0x20
const TAB = 0x09
const EQUALS = 0x3d
const QUOTE = 0x22

function isBlank (code: number): boolean {
  return code === SPACE || code === TAB
}

/**
 * Where the value of the next cookie called `name` starts in `header`, searching pairs that begin
 * at or after `from`; -1 when there is none.
 */
export function cookieValueStart (header: string, name: string, from = 0): number {
  const length = header.length
  let i = from
  while (i < length) {
    while (i < length && isBlank(header.charCodeAt(i))) i++
    if (header.startsWith(name, i)) {
      let j = i + name.length
      while (j < length && isBlank(header.charCodeAt(j))) j++
      if (header.charCodeAt(j) === EQUALS) return j + 1
    }
    const semicolon = header.indexOf(';', i)
    if (semicolon === -1) return -1
    i = semicolon + 1
  }
  return -1
}

/** Where the pair whose value starts at `start` ends (its `;` or the end of the header). */
export function cookieValueEnd (header: string, start: number): number {
  const semicolon = header.indexOf(';', start)
  return semicolon === -1 ? header.length : semicolon
}

/** The value starting at `start`, without surrounding blanks or the double quotes some servers add. */
export function cookieValueAt (header: string, start: number): string {
  let from = start
  let to = cookieValueEnd(header, start)
  while (from < to && isBlank(header.charCodeAt(from))) from++
  while (to > from && isBlank(header.charCodeAt(to - 1))) to--
  if (to - from >= 2 && header.charCodeAt(from) === QUOTE && header.charCodeAt(to - 1) === QUOTE) {
    from++
    to--
  }
  return header.slice(from, to)
}

/** The first cookie called `name`, as browsers order them (the one servers such as werkzeug use). */
export function readCookie (header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  const start = cookieValueStart(header, name)
  return start === -1 ? undefined : cookieValueAt(header, start)
}

/**
 * The header without any pair called `name`; undefined when nothing is left. The other pairs and
 * their separators are kept byte for byte (only the blank that followed a removed leading pair goes).
 */
export function removeCookie (header: string, name: string): string | undefined {
  if (cookieValueStart(header, name) === -1) return header
  const kept: string[] = []
  for (const pair of header.split(';')) {
    // A pair holds no `;`, so the finder only looks at its own name.
    if (cookieValueStart(pair, name) === -1) kept.push(pair)
  }
  const joined = kept.join(';')
  let from = 0
  while (from < joined.length && isBlank(joined.charCodeAt(from))) from++
  const result = from === 0 ? joined : joined.slice(from)
  return result.length === 0 ? undefined : result
}
