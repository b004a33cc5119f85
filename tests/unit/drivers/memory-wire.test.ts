import t from 'tap'
import { ManualClock } from '../../../core/clock.js'
import { ConfigError } from '../../../core/errors.js'
import { framePool, type Msg } from '../../../core/msg.js'
import { Scheduler } from '../../../core/scheduler.js'
import { get32, set32 } from '../../../core/bytes.js'
import { MemoryWire, type Impairments } from '../../../drivers/memory/wire.js'

function setup(impair: Impairments, seed = 42) {
  const s = new Scheduler({ clock: new ManualClock() })
  const w = new MemoryWire(s, { impair, seed })
  const got: { seq: number; at: number; bytes: Uint8Array }[] = []
  w.b.onReceive((batch: Msg[], n: number) => {
    for (let i = 0; i < n; i++) {
      const m = batch[i]!
      got.push({ seq: get32(m.buf, m.off), at: s.now(), bytes: m.bytes().slice() })
      m.free()
    }
  })
  const send = (seq: number, len = 100): void => {
    const m = framePool.alloc()
    m.buf.fill(0xab, m.off, m.off + len)
    set32(m.buf, m.off, seq)
    m.end = m.off + len
    w.a.send([m], 1)
  }
  return { s, w, got, send }
}

const N = 20_000

t.test('no impairment: every frame once, in order, on the next turn', async t => {
  const { s, w, got, send } = setup({})
  for (let i = 0; i < 100; i++) send(i)
  t.equal(got.length, 0, 'never delivered inside send')
  s.runFor(1)
  t.same(got.map(g => g.seq), Array.from({ length: 100 }, (_, i) => i))
  t.equal(w.stats().aToB.delivered, 100)
  t.equal(w.a.stats().txFrames, 100)
  t.equal(w.b.stats().rxBytes, 100 * 100)
})

t.test('loss, duplication, reordering and corruption rates match the configuration (seed 42)', async t => {
  const { s, w, got, send } = setup({ loss: 0.1, duplicate: 0.05, reorder: 0.08, corrupt: 0.03, delayMs: 2 })
  for (let i = 0; i < N; i++) {
    send(i)
    if (i % 50 === 0) s.runFor(0.5)
  }
  s.runFor(100)
  const st = w.stats().aToB
  const near = (name: string, count: number, p: number, base: number): void => {
    const rate = count / base
    t.ok(Math.abs(rate - p) < p * 0.15, `${name}: ${rate.toFixed(4)} vs ${p}`)
  }
  near('loss', st.lost, 0.1, N)
  near('duplicate', st.duplicated, 0.05, N - st.lost)
  const delivered = N - st.lost + st.duplicated
  near('reorder', st.reordered, 0.08, delivered)
  near('corrupt', st.corrupted, 0.03, delivered)
  t.equal(got.length, delivered, 'delivered = sent - lost + duplicated')
  t.equal(st.delivered, delivered)
  let inversions = 0
  for (let i = 1; i < got.length; i++) if (got[i]!.seq < got[i - 1]!.seq) inversions++
  t.ok(inversions > 0, `${inversions} reorderings observed`)
  let flipped = 0
  for (const g of got) {
    let diff = 0
    for (let i = 4; i < g.bytes.length; i++) if (g.bytes[i] !== 0xab) diff++
    if (diff > 0) flipped++
  }
  t.ok(flipped <= st.corrupted && flipped >= st.corrupted * 0.9, `${flipped} frames with a flipped payload bit of ${st.corrupted} corrupted`)
})

t.test('delay, jitter and rate limit shape delivery times; the queue tail-drops', async t => {
  const { s, w, got, send } = setup({ delayMs: 10, jitterMs: 4, rateBps: 8_000_000, queueLimit: 50 })
  for (let i = 0; i < 100; i++) send(i, 1000) // 1000 B at 8 Mbit/s = 1 ms each
  s.runFor(200)
  t.equal(w.stats().aToB.queueDrops, 50, 'the 50 frames beyond the queue limit dropped')
  t.equal(got.length, 50)
  t.ok(got[0]!.at >= 11 && got[0]!.at <= 15, `first at ${got[0]!.at.toFixed(2)} ms`)
  const last = got[got.length - 1]!.at
  t.ok(last >= 60 && last <= 64, `last at ${last.toFixed(2)} ms (50 ms of serialization + 10 ms delay + jitter)`)
  t.same(got.map(g => g.seq), Array.from({ length: 50 }, (_, i) => i), 'jitter keeps order')
})

t.test('same seed, same result', async t => {
  const run = (): number[] => {
    const { s, got, send } = setup({ loss: 0.2, reorder: 0.2 }, 7)
    for (let i = 0; i < 500; i++) send(i)
    s.runFor(10)
    return got.map(g => g.seq)
  }
  t.same(run(), run())
})

t.test('bad configuration fails with a clear message', async t => {
  const s = new Scheduler({ clock: new ManualClock() })
  t.throws(() => new MemoryWire(s, { impair: { loss: 1.5 } }), ConfigError)
  t.throws(() => new MemoryWire(s, { impair: { delayMs: -1 } }), /'delayMs' must be a finite number >= 0, got -1/)
})

t.test('oversize frames, closed devices and missing handlers are counted drops', async t => {
  const s = new Scheduler({ clock: new ManualClock() })
  const w = new MemoryWire(s, { a: { mtu: 100 } })
  const m = framePool.alloc()
  m.end = m.off + 500
  w.a.send([m], 1)
  t.equal(w.a.stats().drops.oversize, 1)
  const m2 = framePool.alloc()
  m2.end = m2.off + 60
  w.a.send([m2], 1)
  s.runFor(1)
  t.equal(w.b.stats().drops['no-handler'], 1)
  await w.close()
  const m3 = framePool.alloc()
  m3.end = m3.off + 60
  w.a.send([m3], 1)
  t.equal(w.a.stats().drops.closed, 1)
})
