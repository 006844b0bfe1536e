import { test } from 'tap'
import { REQUEST_ID_SYNTAX, RequestIds } from '../../proxy/request-id.ts'

test('request ids made up by ficus are distinct and in the accepted syntax', async (t) => {
  const ids = new RequestIds()
  const seen = new Set<string>()
  for (let i = 0; i < 100_000; i++) seen.add(ids.next())
  t.equal(seen.size, 100_000)
  for (const id of [...seen].slice(-3)) t.match(id, REQUEST_ID_SYNTAX)
})

test('two processes draw different prefixes, so their ids never meet', async (t) => {
  const a = new RequestIds()
  const b = new RequestIds()
  t.not(a.next(), b.next())
})

test('a prefix outside the accepted syntax is refused', async (t) => {
  t.throws(() => new RequestIds('bad prefix'), /request id prefix must match/)
})
