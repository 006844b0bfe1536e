// The keyed breaker (safety/breaker.ts) on an injected clock: trips per key on the error rate
// of its window, lets one probe through after the cool-down, and stays within its memory bound.
import t from 'tap'
import type { BreakerTransition } from '../../core/safety-events.ts'
import { KeyedBreaker } from '../../safety/breaker.ts'

function breaker (overrides: Partial<ConstructorParameters<typeof KeyedBreaker>[0]> = {}): { breaker: KeyedBreaker, clock: { now: number }, transitions: BreakerTransition[] } {
  const clock = { now: 1_000_000 }
  const transitions: BreakerTransition[] = []
  return {
    clock,
    transitions,
    breaker: new KeyedBreaker({ windowMs: 10_000, minRequests: 4, errorRate: 0.5, coolDownMs: 1_000, maxSchools: 100, now: () => clock.now, onTransition: (x) => transitions.push(x), ...overrides })
  }
}

t.test('below the minimum number of requests it never trips', async (t) => {
  const { breaker: b } = breaker()
  for (let i = 0; i < 3; i++) b.record('school-b', true)
  t.equal(b.state('school-b'), 'closed')
  t.equal(b.allow('school-b'), true)
})

t.test('the error rate of the window trips only that key', async (t) => {
  const { breaker: b, transitions } = breaker()
  b.record('school-b', false)
  b.record('school-b', false)
  b.record('school-b', true)
  t.equal(b.state('school-b'), 'closed', '1 of 3')
  b.record('school-b', true)
  t.equal(b.state('school-b'), 'open', '2 of 4 = 0.5')
  t.equal(b.allow('school-b'), false)
  t.equal(b.allow('school-a'), true, 'another key is untouched')
  t.same(transitions, [{ key: 'school-b', from: 'closed', to: 'open', requests: 4, failures: 2 }])
  t.equal(b.openCount, 1)
})

t.test('failures older than the window are forgotten', async (t) => {
  const { breaker: b, clock } = breaker()
  b.record('k', true)
  b.record('k', true)
  b.record('k', true)
  clock.now += 11_000
  b.record('k', true)
  t.equal(b.state('k'), 'closed', 'only one failure in the window now')
})

t.test('after the cool-down exactly one probe goes through; its outcome decides', async (t) => {
  const { breaker: b, clock, transitions } = breaker()
  for (let i = 0; i < 4; i++) b.record('k', true)
  t.equal(b.allow('k'), false)
  clock.now += 1_001
  t.equal(b.allow('k'), true, 'the probe')
  t.equal(b.state('k'), 'half-open')
  t.equal(b.allow('k'), false, 'no second request while the probe is out')
  b.record('k', true)
  t.equal(b.state('k'), 'open', 'a failed probe opens again')
  clock.now += 1_001
  t.equal(b.allow('k'), true)
  b.record('k', false)
  t.equal(b.state('k'), 'closed', 'a good probe closes')
  t.equal(b.allow('k'), true)
  t.same(transitions.map((x) => `${x.from}->${x.to}`), ['closed->open', 'open->half-open', 'half-open->open', 'open->half-open', 'half-open->closed'])
  b.record('k', true)
  t.equal(b.state('k'), 'closed', 'the window starts empty after closing')
})

t.test('a probe that never reports back is replaced after another cool-down', async (t) => {
  const { breaker: b, clock } = breaker()
  for (let i = 0; i < 4; i++) b.record('k', true)
  clock.now += 1_001
  t.equal(b.allow('k'), true)
  t.equal(b.allow('k'), false)
  clock.now += 1_001
  t.equal(b.allow('k'), true, 'a new probe')
})

t.test('memory is bounded: the least recently seen closed keys are forgotten first', async (t) => {
  const { breaker: b } = breaker({ maxSchools: 3 })
  for (let i = 0; i < 4; i++) b.record('open-one', true)
  b.record('x', true)
  b.record('y', true)
  for (let i = 0; i < 1_000; i++) b.record(`school-${i}`, true)
  t.equal(b.trackedCount, 3)
  t.equal(b.state('open-one'), 'open', 'an open key is kept while closed ones can go')
  t.equal(b.openCount, 1)
  t.equal(b.allow('never-seen'), true)
  t.equal(b.trackedCount, 3, 'asking about a key records nothing')
})
