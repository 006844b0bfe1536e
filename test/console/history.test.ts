// The embedded change log reads only what was appended since its last read: proved to see every
// change another process appends, a line written in two parts once it is whole, and a replaced
// file afresh.
import t from 'tap'
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileChangeLog, type NewChange } from '../../console/history.ts'

const STATE = { enabled: true, strategies: [] }
const change = (what: string): NewChange => ({ who: 'po', route: 'attendance.page', flag: 'attendance', what, before: STATE, after: STATE, schools: ['school-b'] })

t.test('a change log sees what another process appends, a half-written line once whole, and a replaced file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ficus-history-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'history.jsonl')
  const here = new FileChangeLog(path)
  const there = new FileChangeLog(path)
  t.strictSame(await here.list(), [], 'no file yet: no changes')
  await here.record(change('first'))
  t.strictSame((await there.list()).map((c) => c.what), ['first'])
  await there.record(change('second'))
  t.strictSame((await here.list()).map((c) => c.what), ['second', 'first'], 'newest first, the other process\'s included')
  const third = JSON.stringify({ id: 'c3', at: new Date().toISOString(), ...change('third') })
  appendFileSync(path, third.slice(0, 20))
  t.strictSame((await here.list()).map((c) => c.what), ['second', 'first'], 'a line being written is not read yet')
  appendFileSync(path, `${third.slice(20)}\n`)
  t.strictSame((await here.list()).map((c) => c.what), ['third', 'second', 'first'], 'and is once whole')
  t.equal((await here.get('c3'))?.what, 'third')
  writeFileSync(path, `${JSON.stringify({ id: 'c9', at: new Date().toISOString(), ...change('only') })}\n`)
  t.strictSame((await here.list()).map((c) => c.what), ['only'], 'a shorter file is read from the start')
})
