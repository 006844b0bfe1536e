import t from 'tap'
import { activeFreeze, parseFreezeWindows } from '../../console/freeze.ts'
import { parseConfig } from '../../proxy/config.ts'

t.test('freeze windows follow the wall clock of their zone, daylight saving included', async (t) => {
  const { windows, problems } = parseFreezeWindows('Mon-Fri 08:15-09:45 Europe/London; 2026-06-10 Europe/London; Sat 22:00-02:00 UTC')
  t.same(problems, [])
  // 1 Dec 2026 is a Tuesday; London is on UTC in winter and UTC+1 in summer.
  t.equal(activeFreeze(windows, new Date('2026-12-01T08:15:00Z'))?.text, 'Mon-Fri 08:15-09:45 Europe/London', 'winter: 08:15 London is 08:15 UTC')
  t.equal(activeFreeze(windows, new Date('2026-12-01T09:45:00Z')), undefined, 'the end is not inside')
  t.equal(activeFreeze(windows, new Date('2026-12-01T08:14:59Z')), undefined)
  t.equal(activeFreeze(windows, new Date('2026-07-07T07:20:00Z'))?.text, 'Mon-Fri 08:15-09:45 Europe/London', 'summer: 08:20 London is 07:20 UTC')
  t.equal(activeFreeze(windows, new Date('2026-07-07T08:50:00Z')), undefined, 'summer: 09:50 London is outside')
  t.equal(activeFreeze(windows, new Date('2026-12-05T08:30:00Z')), undefined, 'not on a Saturday morning')
  t.equal(activeFreeze(windows, new Date('2026-06-10T17:00:00Z'))?.text, '2026-06-10 Europe/London', 'the exam day is frozen all day')
  t.equal(activeFreeze(windows, new Date('2026-06-10T23:30:00Z')), undefined, 'and not after midnight London time')
  t.equal(activeFreeze(windows, new Date('2026-12-05T23:00:00Z'))?.text, 'Sat 22:00-02:00 UTC', 'a window past midnight: the evening')
  t.equal(activeFreeze(windows, new Date('2026-12-06T01:59:00Z'))?.text, 'Sat 22:00-02:00 UTC', 'and the morning after')
  t.equal(activeFreeze(windows, new Date('2026-12-07T01:00:00Z')), undefined, 'but not the next night')
})

t.test('a bad FREEZE_WINDOWS stops startup with a message naming it', async (t) => {
  for (const bad of ['Mon-Fri 08:15-09:45', 'Mon-Fri 8:15-9:45 Europe/London', 'Funday 08:00-09:00 UTC', 'Mon-Fri 08:00-09:00 Mars/Olympus']) {
    t.throws(() => parseConfig({ FREEZE_WINDOWS: bad }), /FREEZE_WINDOWS: .*e\.g\. FREEZE_WINDOWS=Mon-Fri 08:15-09:45 Europe\/London/, bad)
  }
  t.throws(() => parseConfig({ CONSOLE_USERS: 'alice:secret' }), /CONSOLE_USERS must list name:hash pairs/, 'a plain password is refused')
  t.throws(() => parseConfig({ UNLEASH_ADMIN_URL: 'http://unleash:4242' }), /UNLEASH_ADMIN_TOKEN is required with UNLEASH_ADMIN_URL/)
})
