// The new timetable page, rendered by ficus instead of legacy.
import { migratedRoute } from '../../core/route.ts'
import { page } from '../page.ts'

const LESSONS = [['09:00', 'Maths'], ['10:00', 'English'], ['11:15', 'Science'], ['13:30', 'Art']]

export const timetablePage = migratedRoute({
  name: 'timetable.page',
  method: 'GET',
  url: '/timetable',
  flag: 'timetable-page',
  // The school's lesson times, shown to anyone as on the legacy page.
  access: 'public',
  handler: async (request, reply) => {
    const rows = LESSONS.map(([time, subject]) => `<li><strong>${time}</strong><span>${subject}</span></li>`).join('')
    return reply.type('text/html; charset=utf-8').send(page(request, 'Timetable', `<ul class="cards">${rows}</ul>`))
  }
})
