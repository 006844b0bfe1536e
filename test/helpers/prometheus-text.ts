// A strict parser of the Prometheus text exposition format (version 0.0.4), for tests: it throws
// on anything a Prometheus server would reject or misread (bad names, bad escapes, a TYPE after
// samples, a family split in two, duplicate series, histogram buckets that are not cumulative or
// disagree with _count), and returns the families with their samples.

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface Family {
  readonly name: string
  type: string
  help: string | undefined
  readonly samples: Sample[]
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

export function parsePrometheusText (text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const closed = new Set<string>()
  const seenSeries = new Set<string>()
  let current: string | undefined
  const lines = text.split('\n')
  if (lines[lines.length - 1] !== '') throw new Error('the exposition must end with a newline')
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`
    if (line === '') return
    if (line.startsWith('#')) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
      if (match === null) return
      const [, keyword, name = '', rest = ''] = match
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in ${where}`)
      const family = open(name, where)
      if (keyword === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`unknown type in ${where}`)
        if (family.samples.length > 0 || family.type !== 'untyped-implicit') throw new Error(`TYPE after samples or repeated in ${where}`)
        family.type = rest
      } else {
        if (family.help !== undefined) throw new Error(`HELP repeated in ${where}`)
        family.help = unescapeHelp(rest, where)
      }
      return
    }
    const sample = parseSample(line, where)
    const familyName = familyOf(sample.name, families)
    const family = open(familyName, where)
    const key = `${sample.name}{${Object.entries(sample.labels).sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`
    if (seenSeries.has(key)) throw new Error(`duplicate series ${key} in ${where}`)
    seenSeries.add(key)
    family.samples.push(sample)
  })
  for (const family of families.values()) {
    if (family.type === 'untyped-implicit') family.type = 'untyped'
    if (family.type === 'histogram') checkHistogram(family)
  }
  return families

  function open (name: string, where: string): Family {
    if (current !== name) {
      if (closed.has(name)) throw new Error(`family ${name} split in two (${where})`)
      if (current !== undefined) closed.add(current)
      current = name
    }
    let family = families.get(name)
    if (family === undefined) {
      family = { name, type: 'untyped-implicit', help: undefined, samples: [] }
      families.set(name, family)
    }
    return family
  }
}

/** `x_bucket`, `x_sum`, `x_count` belong to histogram `x` when `x` was declared one. */
function familyOf (name: string, families: Map<string, Family>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue
    const base = name.slice(0, -suffix.length)
    const type = families.get(base)?.type
    if (type === 'histogram' || (type === 'summary' && suffix !== '_bucket')) return base
  }
  return name
}

function parseSample (line: string, where: string): Sample {
  const nameEnd = line.search(/[{ ]/)
  if (nameEnd <= 0) throw new Error(`no metric name in ${where}`)
  const name = line.slice(0, nameEnd)
  if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in ${where}`)
  const labels: Record<string, string> = {}
  let at = nameEnd
  if (line[at] === '{') {
    at++
    while (line[at] !== '}') {
      const eq = line.indexOf('=', at)
      if (eq === -1) throw new Error(`bad label in ${where}`)
      const label = line.slice(at, eq)
      if (!LABEL_NAME.test(label)) throw new Error(`bad label name "${label}" in ${where}`)
      if (label in labels) throw new Error(`label ${label} repeated in ${where}`)
      if (line[eq + 1] !== '"') throw new Error(`label value not quoted in ${where}`)
      let value = ''
      let i = eq + 2
      for (;;) {
        const c = line[i]
        if (c === undefined) throw new Error(`unterminated label value in ${where}`)
        if (c === '"') break
        if (c === '\\') {
          const next = line[i + 1]
          if (next === '\\') value += '\\'
          else if (next === '"') value += '"'
          else if (next === 'n') value += '\n'
          else throw new Error(`bad escape in ${where}`)
          i += 2
          continue
        }
        value += c
        i++
      }
      labels[label] = value
      at = i + 1
      if (line[at] === ',') at++
      else if (line[at] !== '}') throw new Error(`expected , or } in ${where}`)
    }
    at++
  }
  if (line[at] !== ' ') throw new Error(`expected a space before the value in ${where}`)
  const parts = line.slice(at + 1).split(' ')
  if (parts.length < 1 || parts.length > 2) throw new Error(`expected a value and an optional timestamp in ${where}`)
  const value = parseValue(parts[0] ?? '', where)
  if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`bad timestamp in ${where}`)
  return { name, labels, value }
}

function parseValue (text: string, where: string): number {
  if (text === 'NaN') return Number.NaN
  if (text === '+Inf') return Number.POSITIVE_INFINITY
  if (text === '-Inf') return Number.NEGATIVE_INFINITY
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value "${text}" in ${where}`)
  return Number(text)
}

function unescapeHelp (text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_all, next: string) => {
    if (next === '\\') return '\\'
    if (next === 'n') return '\n'
    throw new Error(`bad escape in HELP, ${where}`)
  })
}

/** Buckets cumulative, ending with +Inf equal to _count, per label set. */
function checkHistogram (family: Family): void {
  const series = new Map<string, { buckets: Array<[number, number]>, count?: number, sum?: number }>()
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    let entry = series.get(key)
    if (entry === undefined) {
      entry = { buckets: [] }
      series.set(key, entry)
    }
    if (sample.name === `${family.name}_bucket`) {
      if (le === undefined) throw new Error(`${family.name}_bucket without le`)
      entry.buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), sample.value])
    } else if (sample.name === `${family.name}_count`) entry.count = sample.value
    else if (sample.name === `${family.name}_sum`) entry.sum = sample.value
    else throw new Error(`sample ${sample.name} does not belong to histogram ${family.name}`)
  }
  for (const [key, entry] of series) {
    if (entry.count === undefined || entry.sum === undefined) throw new Error(`histogram ${family.name}${key} lacks _count or _sum`)
    const last = entry.buckets[entry.buckets.length - 1]
    if (last === undefined || last[0] !== Number.POSITIVE_INFINITY) throw new Error(`histogram ${family.name}${key} lacks the +Inf bucket`)
    if (last[1] !== entry.count) throw new Error(`histogram ${family.name}${key}: +Inf bucket ${last[1]} differs from _count ${entry.count}`)
    for (let i = 1; i < entry.buckets.length; i++) {
      const [le, value] = entry.buckets[i] as [number, number]
      const [prevLe, prevValue] = entry.buckets[i - 1] as [number, number]
      if (!(le > prevLe) || value < prevValue) throw new Error(`histogram ${family.name}${key}: buckets not increasing at le=${le}`)
    }
  }
}

/** The value of the one sample of `name` whose labels include `labels`; undefined when none. */
export function sampleValue (families: Map<string, Family>, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue
      if (Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) return sample.value
    }
  }
  return undefined
}

/** Sum of every sample of `name` whose labels include `labels`. */
export function sampleSum (families: Map<string, Family>, name: string, labels: Readonly<Record<string, string>> = {}): number {
  let sum = 0
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) sum += sample.value
    }
  }
  return sum
}
