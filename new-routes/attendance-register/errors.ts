import { defineErrors } from '../../errors/index.ts'

export const AttendanceErrors = defineErrors({
  FICUS_ERR_ATTENDANCE_CLASS_UNKNOWN: { statusCode: 404, message: 'No such class' },
  FICUS_ERR_ATTENDANCE_INVALID: { statusCode: 422, message: 'Invalid attendance marks' }
})
