// The attendance register, migrated: read a class's register for a day, and mark pupils present,
// absent or late. Reads and writes the school's own database (`request.tenant.db`); every write
// is audited in the same transaction, naming the teacher signed in on the legacy's session.
// Guarded by the `attendance-register` flag.
import { signedInUser } from '../../access/index.ts'
import type { UserRule } from '../../core/access-rule.ts'
import { migratedRoute } from '../../core/route.ts'
import type { MigratedRoute } from '../../core/route.ts'
import { auditedWrite } from '../../tenant-db/audit.ts'
import type { AuditChange } from '../../tenant-db/audit.ts'
import { tenantDatabase } from '../../tenant-db/tenant-registry.ts'
import { AttendanceErrors } from './errors.ts'
import { currentMarks, lockClass, MARKS_TABLE, pupilsInClass, readRegister, writeMarks } from './queries.ts'
import { markBodySchema, registerParamsSchema, registerQuerySchema } from './schemas.ts'
import type { MarkBody, Register, RegisterParams, RegisterQuery } from './schemas.ts'

export const ATTENDANCE_REGISTER_FLAG = 'attendance-register'

/** Who may read and mark a class's register: a teacher, as on the legacy's register page. */
export const REGISTER_ACCESS: UserRule = Object.freeze({ roles: Object.freeze(['teacher']) })

export interface MarkResponse extends Register {
  /** Marks that differed from what was stored and were written (and audited). */
  readonly changed: number
}

export function createAttendanceRegisterRoutes (): MigratedRoute[] {
  const getRegister = migratedRoute<{ Params: RegisterParams, Querystring: RegisterQuery }>({
    name: 'attendance.register.read',
    method: 'GET',
    url: '/attendance/:classId',
    flag: ATTENDANCE_REGISTER_FLAG,
    access: REGISTER_ACCESS,
    schema: { params: registerParamsSchema, querystring: registerQuerySchema },
    handler: async (request) => {
      const { classId } = request.params
      const register = await readRegister(tenantDatabase(request.tenant), classId, request.query.date)
      if (register === undefined) throw AttendanceErrors.FICUS_ERR_ATTENDANCE_CLASS_UNKNOWN(classId)
      return register
    }
  })

  const markRegister = migratedRoute<{ Params: RegisterParams, Body: MarkBody }>({
    name: 'attendance.register.mark',
    method: 'POST',
    url: '/attendance/:classId',
    flag: ATTENDANCE_REGISTER_FLAG,
    access: REGISTER_ACCESS,
    schema: { params: registerParamsSchema, body: markBodySchema },
    handler: async (request): Promise<MarkResponse> => {
      const { classId } = request.params
      const { date, marks } = request.body
      const seen = new Set<string>()
      marks.forEach((mark, i) => {
        if (seen.has(mark.pupilId)) throw AttendanceErrors.FICUS_ERR_ATTENDANCE_INVALID(`body/marks/${i}/pupilId ${mark.pupilId} is marked twice`)
        seen.add(mark.pupilId)
      })
      const pupilIds = [...seen]
      const userId = signedInUser(request).id
      const db = tenantDatabase(request.tenant)

      return auditedWrite(db, { userId, requestId: request.id }, async (tx) => {
        if (!await lockClass(tx, classId)) throw AttendanceErrors.FICUS_ERR_ATTENDANCE_CLASS_UNKNOWN(classId)
        const inClass = await pupilsInClass(tx, classId, pupilIds)
        const stranger = marks.findIndex((mark) => !inClass.has(mark.pupilId))
        if (stranger !== -1) {
          throw AttendanceErrors.FICUS_ERR_ATTENDANCE_INVALID(`body/marks/${stranger}/pupilId ${marks[stranger]?.pupilId ?? ''} is not a pupil of class ${classId}`)
        }
        const before = await currentMarks(tx, date, pupilIds)
        const written = await writeMarks(tx, classId, date, marks, userId)
        await tx.record(written.map((after): AuditChange => ({
          table: MARKS_TABLE,
          key: { pupilId: after.pupil_id, day: date },
          before: before.get(after.pupil_id) ?? null,
          after
        })))
        const register = await readRegister(tx, classId, date)
        if (register === undefined) throw AttendanceErrors.FICUS_ERR_ATTENDANCE_CLASS_UNKNOWN(classId)
        return { ...register, changed: written.length }
      })
    }
  })

  return [getRegister, markRegister]
}

export const attendanceRegisterRoutes: MigratedRoute[] = createAttendanceRegisterRoutes()
