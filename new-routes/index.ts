// Every migrated route, in one list the edge registers. Adding a feature = adding its routes here.
import type { MigratedRoute } from '../core/route.ts'
import { attendancePage } from './attendance-page/index.ts'
import { timetablePage } from './timetable-page/index.ts'
import { me, updatePreferences } from './me/index.ts'
import { createAttendanceRegisterRoutes } from './attendance-register/index.ts'

export const migratedRoutes: readonly MigratedRoute[] = [
  attendancePage,
  timetablePage,
  me,
  updatePreferences,
  ...createAttendanceRegisterRoutes()
]
