// The register's SQL, run on the school's own database (pg pool or PGlite alike).
import type { TenantQueryable } from '../../tenant-db/database.ts'
import type { AttendanceStatus, MarkInput, Register, RegisterPupil } from './schemas.ts'

export const MARKS_TABLE = 'attendance_marks'

interface RegisterRow {
  class_name: string
  pupil_id: string | null
  given_name: string | null
  family_name: string | null
  status: AttendanceStatus | null
  note: string | null
  marked_by: string | null
  marked_at: Date | null
}

// One row per active pupil (or a single row with no pupil for an empty class); none when the class does not exist.
const SELECT_REGISTER = `SELECT c.name AS class_name, p.id AS pupil_id, p.given_name, p.family_name,
  m.status, m.note, m.marked_by, m.marked_at
FROM classes c
LEFT JOIN pupils p ON p.class_id = c.id AND p.active
LEFT JOIN attendance_marks m ON m.pupil_id = p.id AND m.day = $2::date
WHERE c.id = $1
ORDER BY p.family_name, p.given_name, p.id`

export async function readRegister (db: TenantQueryable, classId: string, date: string): Promise<Register | undefined> {
  const { rows } = await db.query<RegisterRow>(SELECT_REGISTER, [classId, date])
  const first = rows[0]
  if (first === undefined) return undefined
  const pupils: RegisterPupil[] = []
  for (const row of rows) {
    if (row.pupil_id === null) continue
    pupils.push({
      pupilId: row.pupil_id,
      name: `${row.given_name ?? ''} ${row.family_name ?? ''}`.trim(),
      status: row.status,
      note: row.note,
      markedBy: row.marked_by,
      markedAt: row.marked_at === null ? null : new Date(row.marked_at).toISOString()
    })
  }
  return { classId, className: first.class_name, date, pupils }
}

/** Locks the class against concurrent markings (the same register, posted twice at once); false if unknown. */
export async function lockClass (db: TenantQueryable, classId: string): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM classes WHERE id = $1 FOR NO KEY UPDATE', [classId])
  return rows.length > 0
}

export async function pupilsInClass (db: TenantQueryable, classId: string, pupilIds: readonly string[]): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM pupils WHERE class_id = $1 AND active AND id = ANY($2::text[])', [classId, pupilIds])
  return new Set(rows.map((row) => row.id))
}

export interface MarkRow {
  readonly pupil_id: string
  readonly class_id: string
  readonly status: AttendanceStatus
  readonly note: string | null
  readonly marked_by: string | null
}

export async function currentMarks (db: TenantQueryable, date: string, pupilIds: readonly string[]): Promise<Map<string, MarkRow>> {
  const { rows } = await db.query<MarkRow>(
    `SELECT pupil_id, class_id, status, note, marked_by FROM ${MARKS_TABLE} WHERE day = $1::date AND pupil_id = ANY($2::text[])`,
    [date, pupilIds])
  return new Map(rows.map((row) => [row.pupil_id, row]))
}

// Writes only the marks that differ from what is stored, and returns those: posting the same
// register twice changes (and audits) nothing the second time.
const UPSERT_MARKS = `INSERT INTO ${MARKS_TABLE} AS m (pupil_id, day, class_id, status, note, marked_by, marked_at)
SELECT i.pupil_id, $2::date, $1, i.status, i.note, $6, now()
FROM unnest($3::text[], $4::text[], $5::text[]) AS i(pupil_id, status, note)
ON CONFLICT (pupil_id, day) DO UPDATE
  SET class_id = EXCLUDED.class_id, status = EXCLUDED.status, note = EXCLUDED.note,
      marked_by = EXCLUDED.marked_by, marked_at = EXCLUDED.marked_at
  WHERE (m.class_id, m.status, m.note) IS DISTINCT FROM (EXCLUDED.class_id, EXCLUDED.status, EXCLUDED.note)
RETURNING pupil_id, class_id, status, note, marked_by`

export async function writeMarks (db: TenantQueryable, classId: string, date: string, marks: readonly MarkInput[], userId: string | null): Promise<MarkRow[]> {
  const { rows } = await db.query<MarkRow>(UPSERT_MARKS, [
    classId,
    date,
    marks.map((mark) => mark.pupilId),
    marks.map((mark) => mark.status),
    marks.map((mark) => mark.note ?? null),
    userId
  ])
  return rows
}
