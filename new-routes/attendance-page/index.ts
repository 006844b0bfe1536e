// The new attendance page: today's register at a glance, rendered by ficus instead of legacy.
import { migratedRoute } from '../../core/route.ts'
import { page } from '../page.ts'

export const attendancePage = migratedRoute({
  name: 'attendance.page',
  method: 'GET',
  url: '/attendance',
  flag: 'attendance-page',
  // As the legacy page: for teachers.
  access: { roles: ['teacher'] },
  handler: async (request, reply) => {
    const today = new Date().toISOString().slice(0, 10)
    return reply.type('text/html; charset=utf-8').send(page(request, 'Attendance', `
      <p class="lead">Today's registers for ${today}</p>
      <ul class="cards">
        <li><strong>Class 3B</strong><span>register open</span></li>
        <li><strong>Class 4A</strong><span>register open</span></li>
      </ul>`))
  }
})
