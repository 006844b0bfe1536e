// Shadow comparison (safety/compare.ts): JSON by structure with per-route ignore and unordered
// rules, HTML and text by normalised lines, and a diff a person can read.
import t from 'tap'
import { CompiledRules, compareJson, compareResponses, diffLines, normaliseHtml } from '../../safety/compare.ts'

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value))
const JSON_TYPE = 'application/json; charset=utf-8'

t.test('JSON compares by structure: key order and whitespace do not matter', async (t) => {
  const result = compareResponses(
    { status: 200, contentType: JSON_TYPE, body: Buffer.from('{"a": 1, "b": [1, 2]}') },
    { status: 200, contentType: JSON_TYPE, body: Buffer.from('{"b":[1,2],"a":1}') },
    new CompiledRules())
  t.same(result, { match: true, diff: '' })
})

t.test('one differing field is named with both values', async (t) => {
  const result = compareResponses(
    { status: 200, contentType: JSON_TYPE, body: json({ school: 'b', classes: [{ id: 1, present: 25 }] }) },
    { status: 200, contentType: JSON_TYPE, body: json({ school: 'b', classes: [{ id: 1, present: 24 }] }) },
    new CompiledRules())
  t.equal(result.match, false)
  t.equal(result.diff, '$.classes[0].present: legacy 25, new 24')
})

t.test('ignored paths: a field, every element of an array, any key at a level', async (t) => {
  const legacy = { generatedAt: 'x', classes: [{ id: 'a1', n: 1 }], meta: { one: { updatedAt: 1 }, two: { updatedAt: 2 } } }
  const candidate = { generatedAt: 'y', classes: [{ id: 'b1', n: 1 }], meta: { one: { updatedAt: 3 }, two: { updatedAt: 4 } } }
  t.not(compareJson(legacy, candidate, new CompiledRules()).length, 0, 'they differ without rules')
  t.same(compareJson(legacy, candidate, new CompiledRules({ ignore: ['generatedAt', 'classes[].id', 'meta.*.updatedAt'] })), [])
})

t.test('unordered arrays compare as multisets, with ignored fields inside', async (t) => {
  const legacy = { classes: [{ id: 1, name: 'A', at: 1 }, { id: 2, name: 'B', at: 2 }] }
  const reordered = { classes: [{ id: 2, name: 'B', at: 9 }, { id: 1, name: 'A', at: 8 }] }
  const rules = new CompiledRules({ unordered: ['classes'], ignore: ['classes[].at'] })
  t.same(compareJson(legacy, reordered, rules), [])
  t.not(compareJson(legacy, reordered, new CompiledRules({ ignore: ['classes[].at'] })).length, 0, 'order matters when not declared')
  const changed = { classes: [{ id: 2, name: 'B', at: 9 }, { id: 1, name: 'Z', at: 8 }] }
  const diff = compareJson(legacy, changed, rules)
  t.same(diff, ['$.classes[*]: only in legacy {"id":1,"name":"A"}', '$.classes[*]: only in new {"id":1,"name":"Z"}'])
})

t.test('missing keys, extra keys, lengths and status are reported', async (t) => {
  const result = compareResponses(
    { status: 200, contentType: JSON_TYPE, body: json({ a: 1, list: [1, 2] }) },
    { status: 404, contentType: JSON_TYPE, body: json({ b: 1, list: [1] }) },
    new CompiledRules())
  t.same(result.diff.split('\n'), [
    'status: legacy 200, new 404',
    '$.a: only in legacy (1)',
    '$.list: legacy has 2 elements, new has 1',
    '$.b: only in new (1)'
  ])
})

t.test('HTML compares by normalised text: layout whitespace and comments do not matter', async (t) => {
  const legacy = '<html>\n  <body>\n    <h1>Attendance</h1>\n<!-- built 12:00 -->\n    <p>25   present</p>\n  </body>\n</html>'
  const same = '<html><body><h1>Attendance</h1>\n<p>25 present</p></body></html>'
  const rules = new CompiledRules()
  t.same(compareResponses({ status: 200, contentType: 'text/html', body: Buffer.from(legacy) }, { status: 200, contentType: 'text/html', body: Buffer.from(same) }, rules), { match: true, diff: '' })
  const different = same.replace('25 present', '24 present')
  const result = compareResponses({ status: 200, contentType: 'text/html', body: Buffer.from(legacy) }, { status: 200, contentType: 'text/html', body: Buffer.from(different) }, rules)
  t.equal(result.match, false)
  t.match(result.diff, /^- <p>25 present<\/p>$/m)
  t.match(result.diff, /^\+ <p>24 present<\/p>$/m)
  t.match(result.diff, /^ {2}<h1>Attendance<\/h1>$/m, 'context line')
})

t.test('the line diff keeps the changes in order with their context', async (t) => {
  t.same(diffLines(['a', 'b', 'c'], ['a', 'b', 'c']), [])
  t.same(diffLines(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], ['a', 'x', 'c', 'd', 'e', 'f', 'g', 'y']), [
    '@@', '  a', '- b', '+ x', '  c', '  d', '@@', '  f', '  g', '- h', '+ y'
  ])
  t.same(normaliseHtml('<a>\n\n  <b> x  y </b></a>'), ['<a>', '<b> x y </b>', '</a>'])
})

t.test('a body that is not the declared JSON is compared as text', async (t) => {
  const result = compareResponses({ status: 200, contentType: JSON_TYPE, body: Buffer.from('not json') }, { status: 200, contentType: JSON_TYPE, body: json({ a: 1 }) }, new CompiledRules())
  t.same(result, { match: false, diff: 'body: new is JSON, legacy is not' })
})
