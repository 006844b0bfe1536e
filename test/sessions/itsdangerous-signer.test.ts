// Signed session ids interoperate with Flask-Session's SESSION_USE_SIGNER (its own signer, run in
// Python), and anything but an exact signature is refused.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import t from 'tap'
import { ItsdangerousSigner } from '../../sessions/signer.ts'
import { FLASK_FIXTURE_DIR, SYSTEM_PYTHON } from '../helpers/flask-app.ts'

const run = promisify(execFile)
const SECRET = 'the-flask-secret-ü'

async function python (...args: string[]): Promise<string> {
  return (await run(SYSTEM_PYTHON, [FLASK_FIXTURE_DIR + 'pickle_tool.py', ...args], { timeout: 15_000 })).stdout.trim()
}

t.test('verifies ids that Flask-Session signed, and Flask-Session verifies ours', async (t) => {
  const signer = new ItsdangerousSigner({ secret: SECRET })
  const id = randomUUID()
  const signedByPython = await python('sign', SECRET, id)
  t.equal(signer.sign(id), signedByPython, 'same bytes as Python')
  t.equal(signer.unsign(signedByPython), id)
  t.equal(await python('unsign', SECRET, signer.sign(id)), id)
})

t.test('tampered, unsigned or foreign-key values are no session id', async (t) => {
  const signer = new ItsdangerousSigner({ secret: SECRET })
  const id = randomUUID()
  const signed = signer.sign(id)
  const signature = signed.slice(id.length + 1)
  const flip = (s: string, i: number): string => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)
  const cases: Record<string, string> = {
    'unsigned id': id,
    'id changed': flip(id, 0) + '.' + signature,
    'signature changed': id + '.' + flip(signature, 3),
    'signature truncated': signed.slice(0, -1),
    'signature padded': signed + '=',
    'signature empty': id + '.',
    'other secret': new ItsdangerousSigner({ secret: 'another-secret' }).sign(id),
    'other salt': new ItsdangerousSigner({ secret: SECRET, salt: 'itsdangerous.Signer' }).sign(id),
    'only a signature': '.' + signature,
    'empty': ''
  }
  for (const [name, value] of Object.entries(cases)) t.equal(signer.unsign(value), undefined, name)
  t.equal(await python('unsign', SECRET, cases['id changed'] ?? ''), 'BAD', 'Python refuses the tampered id too')
})

t.test('a value whose signature is made for another id is refused', async (t) => {
  const signer = new ItsdangerousSigner({ secret: SECRET })
  const a = signer.sign('id-a')
  const b = signer.sign('id-b')
  t.equal(signer.unsign('id-a.' + b.slice(5)), undefined)
  t.equal(signer.unsign(a), 'id-a')
})

t.test('needs a secret', async (t) => {
  t.throws(() => new ItsdangerousSigner({ secret: '' }), TypeError)
})
