// How a shadow answer is compared with legacy's: status first, then the body. JSON compares as
// structure (key order never matters; per-route rules ignore noisy fields and arrays whose order
// means nothing), HTML and text as normalised lines. The result carries a diff a person can read.

/** Per-route comparison rules, declared with the route (`shadow: { ignore, unordered }`). */
export interface ShadowRules {
  /**
   * JSON paths never compared: `generatedAt`, `classes[].id` (every element of an array),
   * `*.updatedAt` (any key at that level).
   */
  readonly ignore?: readonly string[]
  /** JSON paths of arrays compared as multisets (element order ignored), e.g. `classes`. */
  readonly unordered?: readonly string[]
}

export interface ComparedResponse {
  readonly status: number
  readonly contentType: string | undefined
  readonly body: Buffer
}

export interface Comparison {
  readonly match: boolean
  /** Empty when they match. */
  readonly diff: string
}

const MAX_DIFFERENCES = 20
const MAX_DIFF_CHARS = 4_096
const MAX_LCS_LINES = 2_000
const CONTEXT_LINES = 2
const MAX_VALUE_CHARS = 120
const ARRAY = '[]'

/** Rules compiled once per route. */
export class CompiledRules {
  readonly #ignore: ReadonlyArray<readonly string[]>
  readonly #unordered: ReadonlyArray<readonly string[]>

  constructor (rules: ShadowRules = {}) {
    this.#ignore = (rules.ignore ?? []).map(parsePath)
    this.#unordered = (rules.unordered ?? []).map(parsePath)
  }

  ignores (path: readonly string[]): boolean {
    return this.#ignore.some((pattern) => matches(pattern, path))
  }

  unordered (path: readonly string[]): boolean {
    return this.#unordered.some((pattern) => matches(pattern, path))
  }
}

/** `classes[].id` -> ['classes', '[]', 'id']; a leading `$.` is allowed. */
function parsePath (path: string): readonly string[] {
  const segments: string[] = []
  for (const part of path.replace(/^\$\.?/, '').split('.')) {
    if (part === '') continue
    let name = part
    let arrays = 0
    while (name.endsWith(ARRAY)) {
      name = name.slice(0, -ARRAY.length)
      arrays++
    }
    if (name !== '') segments.push(name)
    for (let i = 0; i < arrays; i++) segments.push(ARRAY)
  }
  return segments
}

function matches (pattern: readonly string[], path: readonly string[]): boolean {
  if (pattern.length !== path.length) return false
  for (let i = 0; i < pattern.length; i++) {
    const want = pattern[i]
    const have = path[i]
    if (want === have) continue
    if (want === '*' && have !== ARRAY) continue
    return false
  }
  return true
}

export function compareResponses (legacy: ComparedResponse, candidate: ComparedResponse, rules: CompiledRules): Comparison {
  const lines: string[] = []
  if (legacy.status !== candidate.status) lines.push(`status: legacy ${legacy.status}, new ${candidate.status}`)
  const kind = bodyKind(legacy.contentType)
  if (kind === 'json') {
    const left = parseJson(legacy.body)
    const right = parseJson(candidate.body)
    if (left.ok && right.ok) lines.push(...compareJson(left.value, right.value, rules))
    else if (left.ok !== right.ok) lines.push(`body: ${left.ok ? 'legacy is JSON, new is not' : 'new is JSON, legacy is not'}`)
    else if (!legacy.body.equals(candidate.body)) lines.push(...diffLines(normaliseText(legacy.body.toString('utf8')), normaliseText(candidate.body.toString('utf8'))))
  } else if (kind === 'html' || kind === 'text') {
    const left = kind === 'html' ? normaliseHtml(legacy.body.toString('utf8')) : normaliseText(legacy.body.toString('utf8'))
    const right = kind === 'html' ? normaliseHtml(candidate.body.toString('utf8')) : normaliseText(candidate.body.toString('utf8'))
    lines.push(...diffLines(left, right))
  } else if (!legacy.body.equals(candidate.body)) {
    lines.push(`body: ${legacy.body.length} bytes from legacy, ${candidate.body.length} from new, not equal`)
  }
  return { match: lines.length === 0, diff: truncate(lines.join('\n'), MAX_DIFF_CHARS) }
}

function bodyKind (contentType: string | undefined): 'json' | 'html' | 'text' | 'other' {
  const type = (contentType ?? '').toLowerCase()
  if (type.includes('json')) return 'json'
  if (type.includes('html')) return 'html'
  if (type.startsWith('text/') || type.includes('xml') || type === '') return 'text'
  return 'other'
}

function parseJson (body: Buffer): { ok: true, value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) as unknown }
  } catch {
    return { ok: false }
  }
}

/** Differences between two JSON values, one line each (at most MAX_DIFFERENCES). */
export function compareJson (legacy: unknown, candidate: unknown, rules: CompiledRules): string[] {
  const found: string[] = []
  walk(legacy, candidate, [], '$', rules, found)
  if (found.length > MAX_DIFFERENCES) return [...found.slice(0, MAX_DIFFERENCES), `... and ${found.length - MAX_DIFFERENCES} more differences`]
  return found
}

function walk (a: unknown, b: unknown, path: string[], display: string, rules: CompiledRules, found: string[]): void {
  if (found.length > MAX_DIFFERENCES) return
  if (path.length > 0 && rules.ignores(path)) return
  if (Array.isArray(a) && Array.isArray(b)) {
    path.push(ARRAY)
    if (rules.unordered(path.slice(0, -1))) compareUnordered(a, b, path, display, rules, found)
    else {
      if (a.length !== b.length) found.push(`${display}: legacy has ${a.length} elements, new has ${b.length}`)
      for (let i = 0; i < Math.min(a.length, b.length); i++) walk(a[i], b[i], path, `${display}[${i}]`, rules, found)
    }
    path.pop()
    return
  }
  if (isObject(a) && isObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)])
    for (const key of keys) {
      path.push(key)
      const where = `${display}.${key}`
      if (!rules.ignores(path)) {
        if (!(key in b)) found.push(`${where}: only in legacy (${show(a[key])})`)
        else if (!(key in a)) found.push(`${where}: only in new (${show(b[key])})`)
        else walk(a[key], b[key], path, where, rules, found)
      }
      path.pop()
    }
    return
  }
  if (!Object.is(a, b)) found.push(`${display}: legacy ${show(a)}, new ${show(b)}`)
}

function compareUnordered (a: unknown[], b: unknown[], path: string[], display: string, rules: CompiledRules, found: string[]): void {
  const left = a.map((value) => canonical(value, path, rules))
  const right = b.map((value) => canonical(value, path, rules))
  const remaining = new Map<string, number>()
  for (const key of right) remaining.set(key, (remaining.get(key) ?? 0) + 1)
  const onlyLegacy: string[] = []
  for (const key of left) {
    const count = remaining.get(key) ?? 0
    if (count > 0) remaining.set(key, count - 1)
    else onlyLegacy.push(key)
  }
  const onlyNew: string[] = []
  for (const [key, count] of remaining) for (let i = 0; i < count; i++) onlyNew.push(key)
  for (const key of onlyLegacy) found.push(`${display}[*]: only in legacy ${truncate(key, MAX_VALUE_CHARS)}`)
  for (const key of onlyNew) found.push(`${display}[*]: only in new ${truncate(key, MAX_VALUE_CHARS)}`)
}

/** JSON text with sorted keys, ignored paths left out and unordered arrays sorted. */
function canonical (value: unknown, path: string[], rules: CompiledRules): string {
  if (Array.isArray(value)) {
    path.push(ARRAY)
    const items = value.map((item) => canonical(item, path, rules))
    path.pop()
    if (rules.unordered(path)) items.sort()
    return `[${items.join(',')}]`
  }
  if (isObject(value)) {
    const parts: string[] = []
    for (const key of Object.keys(value).sort()) {
      path.push(key)
      if (!rules.ignores(path)) parts.push(`${JSON.stringify(key)}:${canonical(value[key], path, rules)}`)
      path.pop()
    }
    return `{${parts.join(',')}}`
  }
  return JSON.stringify(value) ?? 'undefined'
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function show (value: unknown): string {
  return truncate(JSON.stringify(value) ?? 'undefined', MAX_VALUE_CHARS)
}

function truncate (text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}...`
}

/** One tag or text run per line, whitespace collapsed, comments dropped. */
export function normaliseHtml (html: string): string[] {
  return normaliseText(html.replace(/<!--[\s\S]*?-->/g, '').replace(/>\s*</g, '>\n<'))
}

export function normaliseText (text: string): string[] {
  const lines: string[] = []
  for (const line of text.split(/\r?\n/)) {
    const trimmed = line.replace(/\s+/g, ' ').trim()
    if (trimmed !== '') lines.push(trimmed)
  }
  return lines
}

/** A unified-style diff (`- legacy`, `+ new`, two lines of context), empty when equal. */
export function diffLines (legacy: readonly string[], candidate: readonly string[]): string[] {
  if (legacy.length === candidate.length && legacy.every((line, i) => line === candidate[i])) return []
  if (legacy.length > MAX_LCS_LINES || candidate.length > MAX_LCS_LINES) {
    let i = 0
    while (i < legacy.length && legacy[i] === candidate[i]) i++
    return [`@@ line ${i + 1} (documents too long for a full diff)`, `- ${legacy[i] ?? '(end)'}`, `+ ${candidate[i] ?? '(end)'}`]
  }
  const ops = editScript(legacy, candidate)
  // Hunks: every changed line with CONTEXT_LINES around it, overlapping ones merged.
  const hunks: Array<[number, number]> = []
  for (let k = 0; k < ops.length; k++) {
    if ((ops[k] as Op).kind === ' ') continue
    const from = Math.max(0, k - CONTEXT_LINES)
    const to = Math.min(ops.length - 1, k + CONTEXT_LINES)
    const last = hunks[hunks.length - 1]
    if (last !== undefined && from <= last[1] + 1) last[1] = to
    else hunks.push([from, to])
  }
  const out: string[] = []
  for (const [from, to] of hunks) {
    out.push('@@')
    for (let k = from; k <= to; k++) {
      const op = ops[k] as Op
      out.push(`${op.kind} ${op.line}`)
    }
    if (out.length > MAX_DIFFERENCES * 3) {
      out.push('...')
      break
    }
  }
  return out
}

interface Op { readonly kind: ' ' | '-' | '+', readonly line: string }

function editScript (a: readonly string[], b: readonly string[]): Op[] {
  const n = a.length
  const m = b.length
  // Longest common subsequence lengths of the suffixes, row by row.
  const table = new Uint32Array((n + 1) * (m + 1))
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i * (m + 1) + j] = a[i] === b[j]
        ? (table[(i + 1) * (m + 1) + j + 1] ?? 0) + 1
        : Math.max(table[(i + 1) * (m + 1) + j] ?? 0, table[i * (m + 1) + j + 1] ?? 0)
    }
  }
  const ops: Op[] = []
  let i = 0
  let j = 0
  while (i < n && j < m) {
    if (a[i] === b[j]) { ops.push({ kind: ' ', line: a[i] as string }); i++; j++ } else if ((table[(i + 1) * (m + 1) + j] ?? 0) >= (table[i * (m + 1) + j + 1] ?? 0)) ops.push({ kind: '-', line: a[i++] as string })
    else ops.push({ kind: '+', line: b[j++] as string })
  }
  while (i < n) ops.push({ kind: '-', line: a[i++] as string })
  while (j < m) ops.push({ kind: '+', line: b[j++] as string })
  return ops
}
