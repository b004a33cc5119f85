import t from 'tap'
import { ManualClock } from '../../../core/clock.js'
import { Random, testSeed } from '../../../core/random.js'
import { TimerQueue, type Timer } from '../../../core/timers.js'
import { Scheduler } from '../../../core/scheduler.js'

t.test('timers fire in deadline order, FIFO among equals, and can be re-armed or cancelled', async t => {
  const clock = new ManualClock()
  const q = new TimerQueue(clock)
  const fired: string[] = []
  const a = q.timer(() => fired.push('a'))
  const b = q.timer(() => fired.push('b'))
  const c = q.timer(() => fired.push('c'))
  const d = q.timer(() => fired.push('d'))
  a.set(10)
  b.set(5)
  c.set(5)
  d.set(1)
  d.cancel()
  t.notOk(d.armed)
  a.set(3) // re-arm earlier
  t.equal(q.size, 3)
  t.equal(q.nextDeadline(), 3)
  t.equal(q.runDue(4), 1)
  t.equal(q.runDue(5), 2)
  t.same(fired, ['a', 'b', 'c'])
  t.equal(q.nextDeadline(), Infinity)
})

t.test('a callback re-arming for a past deadline fires again in the same run', async t => {
  const q = new TimerQueue(new ManualClock())
  let n = 0
  const tm: Timer = q.timer(() => {
    if (++n < 3) tm.setAt(0)
  })
  tm.setAt(0)
  t.equal(q.runDue(0), 3)
})

t.test('100k timers: random arm/re-arm/cancel keeps heap order', async t => {
  const seed = testSeed()
  t.comment(`seed=${seed}`)
  const rng = new Random(seed)
  const q = new TimerQueue(new ManualClock())
  const firedAt: number[] = []
  const timers = Array.from({ length: 100_000 }, (_, i) => q.timer(now => firedAt.push(now + i * 0)))
  const deadlines = new Map<Timer, number>()
  for (const tm of timers) {
    const d = rng.int(0, 1_000_000)
    tm.setAt(d)
    deadlines.set(tm, d)
  }
  for (let i = 0; i < 50_000; i++) {
    const tm = timers[rng.int(0, timers.length - 1)]!
    if (rng.chance(0.3)) {
      tm.cancel()
      deadlines.delete(tm)
    } else {
      const d = rng.int(0, 1_000_000)
      tm.setAt(d)
      deadlines.set(tm, d)
    }
  }
  t.equal(q.size, deadlines.size)
  let last = -1
  let ok = true
  let count = 0
  while (q.size > 0) {
    const next = q.nextDeadline()
    if (next < last) ok = false
    last = next
    count += q.runDue(next)
  }
  t.ok(ok, 'deadlines never went backwards')
  t.equal(count, deadlines.size)
})

t.test('scheduler in real time fires timers and runs turns', async t => {
  const s = new Scheduler()
  s.start()
  t.teardown(() => s.stop())
  const t0 = s.now()
  const fired = await new Promise<number>(resolve => s.timer(now => resolve(now)).set(20))
  t.ok(fired - t0 >= 19, `fired after ${(fired - t0).toFixed(1)} ms`)
  t.equal(s.stats().timersFired, 1)
  await s.idle()
  t.throws(() => s.runFor(1), /ManualClock/)
  t.throws(() => new Scheduler({ clock: new ManualClock() }).start(), /real clock/)
})

t.test('virtual time jumps from deadline to deadline', async t => {
  const clock = new ManualClock()
  const s = new Scheduler({ clock })
  const seen: number[] = []
  const tm = s.timer(now => {
    seen.push(now)
    if (seen.length < 5) tm.set(1000)
  })
  tm.set(1000)
  t.equal(s.runFor(3500), 3500)
  t.same(seen, [1000, 2000, 3000])
  t.ok(s.runUntil(() => seen.length === 5))
  t.equal(clock.now(), 5000)
  t.notOk(s.runUntil(() => false, 6000))
  t.throws(() => clock.set(1), RangeError)
})
