import t from 'tap'
import { FlowTable } from '../../../core/flow-table.js'
import { Ring } from '../../../core/ring.js'
import { Msg, MsgPool, allocMsg } from '../../../core/msg.js'
import { Random, testSeed } from '../../../core/random.js'
import { seqAdd, seqDiff, seqGe, seqGt, seqInWindow, seqLe, seqLt, seqMax, seqMin } from '../../../core/seq.js'

t.test('flow table matches a Map under random inserts and deletes', async t => {
  const seed = testSeed()
  t.comment(`seed=${seed}`)
  const rng = new Random(seed)
  const ft = new FlowTable<number>(4)
  const ref = new Map<string, number>()
  const keys: [number, number, number][] = Array.from({ length: 3000 }, () => [rng.nextU32(), rng.nextU32() & 0xff, rng.nextU32() & 0xffff])
  let deleteMismatches = 0
  for (let i = 0; i < 40_000; i++) {
    const k = keys[rng.int(0, keys.length - 1)]!
    const ks = k.join()
    if (rng.chance(0.4)) {
      if (ft.delete(...k) !== ref.delete(ks)) deleteMismatches++
    } else {
      ft.set(...k, i)
      ref.set(ks, i)
    }
  }
  t.equal(deleteMismatches, 0, 'delete reports presence like Map')
  t.equal(ft.size, ref.size)
  let same = true
  for (const k of keys) if (ft.get(...k) !== ref.get(k.join())) same = false
  t.ok(same, 'every lookup agrees')
  let n = 0
  ft.forEach((v, a, b, c) => {
    if (ref.get([a, b, c].join()) !== v) same = false
    n++
  })
  t.equal(n, ref.size)
  t.ok(same)
})

t.test('ring is FIFO across growth', async t => {
  const r = new Ring<number>(2)
  for (let i = 0; i < 5; i++) r.push(i)
  t.equal(r.shift(), 0)
  for (let i = 5; i < 40; i++) r.push(i)
  t.equal(r.size, 39)
  t.equal(r.peek(), 1)
  t.equal(r.at(2), 3)
  t.equal(r.at(99), undefined)
  const out: number[] = []
  r.clear(x => out.push(x))
  t.same(out, Array.from({ length: 39 }, (_, i) => i + 1))
  t.equal(r.shift(), undefined)
  t.equal(r.peek(), undefined)
})

t.test('msg push/pop move the offset without copying; pools recycle', async t => {
  const pool = new MsgPool(256, 32, 4)
  const m = pool.alloc()
  t.equal(m.off, 32)
  m.append(Uint8Array.of(1, 2, 3))
  const at = m.push(2)
  m.buf[at] = 9
  t.same([...m.bytes()], [9, 0, 1, 2, 3])
  t.equal(m.pop(2), 30)
  t.same([...m.bytes()], [1, 2, 3])
  t.throws(() => m.pop(4), RangeError)
  t.throws(() => m.push(1000), RangeError)
  t.throws(() => m.trim(9), RangeError)
  t.throws(() => m.append(new Uint8Array(1000)), RangeError)
  t.throws(() => m.setRange(250, 10), RangeError)
  m.trim(1)
  t.equal(m.length, 2)
  t.equal(m.tailroom, 256 - m.end)
  t.equal(m.headroom, m.off)
  const c = m.clone()
  t.same([...c.bytes()], [1, 2])
  t.equal(pool.stats().inUse, 2)
  m.free()
  t.throws(() => m.free(), /freed twice/)
  c.free()
  t.same(pool.stats(), { bufSize: 256, inUse: 0, free: 4, created: 4 })
  for (let i = 0; i < 5; i++) pool.alloc()
  t.equal(pool.stats().created, 8, 'grew by one slab')
  const s = Msg.from(Uint8Array.of(7, 8))
  t.same([...s.clone(null).bytes()], [7, 8])
  s.free()
  t.equal(allocMsg(1500).buf.length, 2048)
  t.equal(allocMsg(9000).buf.length, 65536 + 256)
  t.throws(() => allocMsg(1 << 20), RangeError)
  t.throws(() => new MsgPool(64, 64), RangeError)
})

t.test('sequence arithmetic wraps at 2^32', async t => {
  const hi = 0xfffffff0
  const lo = seqAdd(hi, 0x20)
  t.equal(lo, 0x10)
  t.equal(seqDiff(lo, hi), 0x20)
  t.ok(seqLt(hi, lo))
  t.ok(seqLe(hi, hi))
  t.ok(seqGt(lo, hi))
  t.ok(seqGe(lo, lo))
  t.ok(seqInWindow(0x5, hi, 0x20))
  t.notOk(seqInWindow(0x10, hi, 0x20), 'window end is exclusive')
  t.notOk(seqInWindow(hi, hi, 0), 'empty window holds nothing')
  t.equal(seqMax(hi, lo), lo)
  t.equal(seqMin(hi, lo), hi)
})
