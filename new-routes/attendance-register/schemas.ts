// JSON schemas of the attendance register routes, checked by fastify before the handler runs
// (a failure is answered 422 by the edge, naming the field, e.g. `body/marks/0/status`).

export const ATTENDANCE_STATUSES = ['present', 'absent', 'late'] as const
export type AttendanceStatus = typeof ATTENDANCE_STATUSES[number]
export const MAX_MARKS_PER_REQUEST = 200
export const MAX_NOTE_LENGTH = 500

const id = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$' } as const
const day = { type: 'string', format: 'date' } as const

export const registerParamsSchema = {
  type: 'object',
  required: ['classId'],
  properties: { classId: id }
} as const

export const registerQuerySchema = {
  type: 'object',
  required: ['date'],
  properties: { date: day }
} as const

export const markBodySchema = {
  type: 'object',
  required: ['date', 'marks'],
  additionalProperties: false,
  properties: {
    date: day,
    marks: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_MARKS_PER_REQUEST,
      items: {
        type: 'object',
        required: ['pupilId', 'status'],
        additionalProperties: false,
        properties: {
          pupilId: id,
          status: { type: 'string', enum: ATTENDANCE_STATUSES },
          note: { type: ['string', 'null'], maxLength: MAX_NOTE_LENGTH }
        }
      }
    }
  }
} as const

export interface RegisterParams { classId: string }
export interface RegisterQuery { date: string }
export interface MarkInput { pupilId: string, status: AttendanceStatus, note?: string | null }
export interface MarkBody { date: string, marks: MarkInput[] }

export interface RegisterPupil {
  readonly pupilId: string
  readonly name: string
  /** null: not marked yet that day. */
  readonly status: AttendanceStatus | null
  readonly note: string | null
  readonly markedBy: string | null
  readonly markedAt: string | null
}

export interface Register {
  readonly classId: string
  readonly className: string
  readonly date: string
  readonly pupils: readonly RegisterPupil[]
}
