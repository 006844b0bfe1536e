// Every migrated route, in one list the edge registers. Adding a feature = adding its routes here.
import type { MigratedRoute } from './route.ts'
import { attendancePage } from './attendance-page/index.ts'
import { timetablePage } from './timetable-page/index.ts'
import { me, updatePreferences, USER_KEY } from './me/index.ts'
import { createAttendanceRegisterRoutes } from './attendance-register/index.ts'

export const migratedRoutes: readonly MigratedRoute[] = [
  attendancePage,
  timetablePage,
  me,
  updatePreferences,
  // Writes are audited with the user signed in on the shared session, when there is one.
  ...createAttendanceRegisterRoutes({
    userOf: async (request) => (await request.session.load())?.getString(USER_KEY) ?? null
  })
]
