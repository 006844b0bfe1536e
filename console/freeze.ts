// School-day freeze windows: `Mon-Fri 08:15-09:45 Europe/London`, or a dated exception such as an
// exam day, `2026-06-10 Europe/London` (the whole day) or `2026-06-10 08:00-12:00 Europe/London`.
// Entries are separated by `;`. Times are wall-clock times in the named zone, so a window follows
// daylight saving; a window whose end is before its start runs past midnight.

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const
const MINUTES_PER_DAY = 24 * 60

export interface FreezeWindow {
  /** As written, for messages. */
  readonly text: string
  /** Weekdays (0 = Sunday) or one date (YYYY-MM-DD). */
  readonly days: ReadonlySet<number> | string
  readonly fromMinute: number
  readonly toMinute: number
  readonly timeZone: string
}

export function parseFreezeWindows (value: string): { windows: FreezeWindow[], problems: string[] } {
  const windows: FreezeWindow[] = []
  const problems: string[] = []
  for (const entry of value.split(';').map((part) => part.trim()).filter((part) => part !== '')) {
    const parsed = parseOne(entry)
    if (typeof parsed === 'string') problems.push(`${parsed} (in "${entry}")`)
    else windows.push(parsed)
  }
  return { windows, problems }
}

function parseOne (text: string): FreezeWindow | string {
  const parts = text.split(/\s+/)
  const timeZone = parts.pop() ?? ''
  if (!validZone(timeZone)) return `"${timeZone}" is not a time zone such as Europe/London`
  const [daysText = '', timesText = '00:00-24:00', extra] = parts
  if (extra !== undefined) return 'expected days, then times, then a time zone'
  const times = /^(\d\d):(\d\d)-(\d\d):(\d\d)$/.exec(timesText)
  if (times === null) return `"${timesText}" is not a time range such as 08:15-09:45`
  const [fromH, fromM, toH, toM] = times.slice(1).map(Number) as [number, number, number, number]
  if (fromH > 23 || fromM > 59 || toH > 24 || toM > 59 || (toH === 24 && toM !== 0)) return `"${timesText}" is not a time range such as 08:15-09:45`
  const fromMinute = fromH * 60 + fromM
  const toMinute = toH * 60 + toM
  if (/^\d{4}-\d\d-\d\d$/.test(daysText)) {
    if (Number.isNaN(Date.parse(`${daysText}T00:00:00Z`))) return `"${daysText}" is not a date`
    return { text, days: daysText, fromMinute, toMinute, timeZone }
  }
  const days = new Set<number>()
  for (const item of daysText.split(',')) {
    const range = /^([A-Z][a-z]{2})(?:-([A-Z][a-z]{2}))?$/.exec(item)
    const first = range === null ? -1 : DAYS.indexOf(range[1] as typeof DAYS[number])
    const last = range?.[2] === undefined ? first : DAYS.indexOf(range[2] as typeof DAYS[number])
    if (first < 0 || last < 0) return `"${item}" is not a day or day range such as Mon-Fri or a date such as 2026-06-10`
    for (let day = first; ; day = (day + 1) % 7) {
      days.add(day)
      if (day === last) break
    }
  }
  return { text, days, fromMinute, toMinute, timeZone }
}

function validZone (zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: zone })
    return zone.includes('/') || zone === 'UTC'
  } catch {
    return false
  }
}

/** The window `at` falls in, if any. */
export function activeFreeze (windows: readonly FreezeWindow[], at: Date): FreezeWindow | undefined {
  return windows.find((window) => {
    const local = wallClock(at, window.timeZone)
    const inside = (day: number, date: string, minute: number): boolean =>
      typeof window.days === 'string' ? window.days === date : window.days.has(day)
    if (window.fromMinute <= window.toMinute) {
      return inside(local.day, local.date, local.minute) && local.minute >= window.fromMinute && local.minute < window.toMinute
    }
    // Past midnight: the evening part belongs to the named day, the morning part to the day after.
    const yesterday = wallClock(new Date(at.getTime() - MINUTES_PER_DAY * 60_000), window.timeZone)
    return (inside(local.day, local.date, local.minute) && local.minute >= window.fromMinute) ||
      (inside(yesterday.day, yesterday.date, 0) && local.minute < window.toMinute)
  })
}

function wallClock (at: Date, timeZone: string): { day: number, date: string, minute: number } {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone, weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23'
  }).formatToParts(at).map((part) => [part.type, part.value]))
  return {
    day: DAYS.indexOf(parts.weekday as typeof DAYS[number]),
    date: `${parts.year}-${parts.month}-${parts.day}`,
    minute: Number(parts.hour) * 60 + Number(parts.minute)
  }
}
