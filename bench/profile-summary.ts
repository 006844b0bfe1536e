// Where a .cpuprofile (node --cpu-prof) spends its time: top functions by self time, the same
// grouped by area (ficus folder, npm package, Node internals, GC), the inclusive time of the
// functions on ficus's own hot path, and ficus's own work once traffic began (below).
//   node bench/profile-summary.ts <file.cpuprofile> [--top=25]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: readonly number[]
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[]
  readonly startTime: number
  readonly endTime: number
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

export interface Cost {
  readonly name: string
  readonly ms: number
  readonly percent: number
}

export interface ProfileSummary {
  readonly sampledMs: number
  /** Sampled time minus (idle): what the process spent on the CPU, roughly. */
  readonly busyMs: number
  readonly topSelf: readonly Cost[]
  readonly byArea: readonly Cost[]
  readonly ficusInclusive: readonly Cost[]
  readonly ownWork: OwnWork
}

/**
 * ficus's own work on the request path, everything but the forwarding: the samples, from the
 * first request served on, whose innermost ficus frame is outside the forwarder (a sample with no
 * ficus frame is fastify, Node, undici or the collector; one whose innermost ficus frame is the
 * forwarder is the forwarding, undici's work included). What a ficus function calls in a library
 * (a flag look-up, a pino child) counts as ficus's work.
 */
export interface OwnWork {
  readonly ms: number
  /** Of the busy time since the first request. */
  readonly percent: number
  readonly busySinceTrafficMs: number
  /** By innermost ficus function. */
  readonly byFunction: readonly Cost[]
}

// The forwarding itself, whose cost is what the hand-written proxy pays too.
const FORWARDER = /(^|\/)legacy-adapter\/forwarder\.[jt]s$/

const PROJECT_ROOT = fileURLToPath(new URL('../', import.meta.url))
// Where bench/run.ts compiles ficus and the bench before running them.
const BUILD_ROOT = PROJECT_ROOT + 'bench/results/build/'

function projectPath (path: string): string | undefined {
  if (path.startsWith(BUILD_ROOT)) return path.slice(BUILD_ROOT.length)
  return path.startsWith(PROJECT_ROOT) ? path.slice(PROJECT_ROOT.length) : undefined
}
const DEFAULT_TOP = 25

/** `fastify`, `@fastify/reply-from`, `node:_http_server`, `ficus legacy-adapter/` ... */
export function areaOf (frame: CallFrame): string {
  const url = frame.url
  if (url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)'
  if (url.startsWith('node:')) return url
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  const modules = path.lastIndexOf('/node_modules/')
  if (modules !== -1) {
    const parts = path.slice(modules + '/node_modules/'.length).split('/')
    return parts[0]?.startsWith('@') === true ? `${parts[0]}/${parts[1] ?? ''}` : parts[0] ?? path
  }
  const relative = projectPath(path)
  if (relative !== undefined) {
    const slash = relative.indexOf('/')
    return `ficus ${slash === -1 ? relative : relative.slice(0, slash + 1)}`
  }
  return path
}

function nameOf (frame: CallFrame): string {
  const fn = frame.functionName === '' ? '(anonymous)' : frame.functionName
  if (frame.url === '') return fn
  const path = frame.url.startsWith('file://') ? fileURLToPath(frame.url) : frame.url
  const modules = path.lastIndexOf('/node_modules/')
  const short = modules !== -1 ? path.slice(modules + '/node_modules/'.length) : projectPath(path) ?? path
  return `${fn} ${short}:${frame.lineNumber + 1}`
}

function ranked (totals: Map<string, number>, wholeMs: number, top: number): Cost[] {
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, ms: us / 1_000, percent: wholeMs === 0 ? 0 : (us / 1_000) / wholeMs * 100 }))
}

/**
 * `skipTrafficMs`: the own work is counted from this long after the first request on (a warm-up's
 * length), so that it is the steady state's: the flag decisions remembered, the code optimised.
 */
export function summariseProfile (profile: CpuProfile, top = DEFAULT_TOP, skipTrafficMs = 0): ProfileSummary {
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node.id)
  }
  const selfByName = new Map<string, number>()
  const selfByArea = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const own = new Map<string, number>()
  let sampledUs = 0
  let idleUs = 0
  let traffic = false
  // Microseconds of profile since the first request, and whether the skipped part is over.
  let sinceTrafficUs = 0
  let counting = false
  let busySinceTrafficUs = 0
  let ownUs = 0
  for (let i = 0; i < profile.samples.length; i++) {
    // A sample stands for the time until the next one.
    const us = profile.timeDeltas[i + 1] ?? 0
    const node = byId.get(profile.samples[i] ?? -1)
    if (node === undefined) continue
    sampledUs += us
    if (traffic) {
      sinceTrafficUs += us
      counting ||= sinceTrafficUs >= skipTrafficMs * 1_000
    }
    if (node.callFrame.functionName === '(idle)') { idleUs += us; continue }
    if (counting) busySinceTrafficUs += us
    let innermost: CallFrame | undefined
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame
      if (frame === undefined) continue
      if (!traffic && frame.url === 'node:_http_server' && frame.functionName === 'parserOnIncoming') {
        traffic = true
        counting = skipTrafficMs <= 0
        if (counting) busySinceTrafficUs += us
      }
      if (innermost === undefined && areaOf(frame).startsWith('ficus ')) innermost = frame
    }
    if (counting && innermost !== undefined && !FORWARDER.test(projectPath(innermost.url.startsWith('file://') ? fileURLToPath(innermost.url) : innermost.url) ?? '')) {
      ownUs += us
      const key = nameOf(innermost)
      own.set(key, (own.get(key) ?? 0) + us)
    }
    const name = nameOf(node.callFrame)
    selfByName.set(name, (selfByName.get(name) ?? 0) + us)
    const area = areaOf(node.callFrame)
    selfByArea.set(area, (selfByArea.get(area) ?? 0) + us)
    // Inclusive time of ficus's own functions, each counted once per sample however deep it recurses.
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame
      if (frame === undefined || !areaOf(frame).startsWith('ficus ')) continue
      const key = nameOf(frame)
      if (seen.has(key)) continue
      seen.add(key)
      inclusive.set(key, (inclusive.get(key) ?? 0) + us)
    }
  }
  const busyMs = (sampledUs - idleUs) / 1_000
  return {
    sampledMs: sampledUs / 1_000,
    busyMs,
    topSelf: ranked(selfByName, busyMs, top),
    byArea: ranked(selfByArea, busyMs, top),
    ficusInclusive: ranked(inclusive, busyMs, top),
    ownWork: {
      ms: ownUs / 1_000,
      percent: busySinceTrafficUs === 0 ? 0 : ownUs / busySinceTrafficUs * 100,
      busySinceTrafficMs: busySinceTrafficUs / 1_000,
      byFunction: ranked(own, busySinceTrafficUs / 1_000, top)
    }
  }
}

export function formatSummary (summary: ProfileSummary): string {
  const rows = (costs: readonly Cost[]): string => costs.map((c) => `  ${c.percent.toFixed(1).padStart(5)}%  ${c.ms.toFixed(0).padStart(7)} ms  ${c.name}`).join('\n')
  return [
    `busy ${summary.busyMs.toFixed(0)} ms of ${summary.sampledMs.toFixed(0)} ms sampled (percentages are of busy time)`,
    'self time by area:', rows(summary.byArea.slice(0, 15)),
    'top functions by self time:', rows(summary.topSelf),
    'ficus functions, inclusive time:', rows(summary.ficusInclusive.slice(0, 15)),
    `ficus's own work (everything but the forwarding) since the first request: ${summary.ownWork.percent.toFixed(1)}% of ${summary.ownWork.busySinceTrafficMs.toFixed(0)} ms busy, by innermost ficus function:`,
    rows(summary.ownWork.byFunction.slice(0, 15))
  ].join('\n')
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: String(DEFAULT_TOP) } } })
  const file = positionals[0]
  if (file === undefined) throw new Error('usage: node bench/profile-summary.ts <file.cpuprofile> [--top=25]')
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  process.stdout.write(formatSummary(summariseProfile(profile, Number(values.top))) + '\n')
}
