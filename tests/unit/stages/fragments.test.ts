import t from 'tap'
import { Msg, framePool, superFramePool } from '../../../core/msg.js'
import { Scheduler } from '../../../core/scheduler.js'
import { ManualClock } from '../../../core/clock.js'
import { parseIPv4, get16 } from '../../../core/bytes.js'
import { ConfigError } from '../../../core/errors.js'
import { Random, testSeed } from '../../../core/random.js'
import { MsgPool } from '../../../core/msg.js'
import { Reassembler, checkIpv4, copiedOptions, emitIpv4, fragmentDatagram, parseIpv4, IP } from '../../../stages/ip/index.js'

const A = parseIPv4('10.0.0.1')
const B = parseIPv4('10.0.0.2')
const seed = testSeed()
t.comment(`seed=${seed}`)
const rng = new Random(seed)

function datagram(len: number, opts: Partial<Parameters<typeof emitIpv4>[0]> = {}): Msg {
  const payload = rng.bytes(new Uint8Array(len))
  return Msg.from(emitIpv4({ src: A, dst: B, protocol: 17, id: rng.int(0, 65535), payload, ...opts }))
}

function frag(m: Msg, mtu: number): Msg[] {
  const out: Msg[] = []
  const r = fragmentDatagram(m, mtu, f => out.push(f))
  if (typeof r === 'string') throw new Error(r)
  return out
}

function add(r: Reassembler, f: Msg): ReturnType<Reassembler['add']> {
  const h = checkIpv4(f.buf, f.off, f.end)
  if (typeof h === 'string') throw new Error(h)
  return r.add(f, h)
}

function sched() {
  return new Scheduler({ clock: new ManualClock() })
}

t.test('fragmentDatagram: sizes, offsets, MF, checksums, copied options only in later fragments', async t => {
  const opts = Uint8Array.of(0x07, 7, 4, 0, 0, 0, 0, /* record route: not copied */ 0x83, 7, 4, 0, 0, 0, 0, /* LSRR: copied */ 0, 0)
  const m = datagram(3000, { options: opts })
  const hlen = 20 + 16
  const frags = frag(m, 1500)
  t.equal(frags.length, 3)
  let pos = 0
  frags.forEach((f, i) => {
    const r = parseIpv4(f.buf, f.off, f.end)
    if (typeof r === 'string') {
      t.fail(r)
      return
    }
    t.ok(f.length <= 1500)
    t.equal(r.fragOffset, pos)
    t.equal(r.mf, i < 2)
    t.equal(r.options.length, i === 0 ? 16 : 8, i === 0 ? 'all options in the first' : 'only the copied option later')
    if (i > 0) t.equal(r.options[0], 0x83)
    if (i < 2) t.equal(r.payload.length % 8, 0)
    pos += r.payload.length
  })
  t.equal(pos, 3000)
  t.equal(frags[0]!.length, 20 + 16 + Math.floor((1500 - hlen) / 8) * 8)
  const out = new Uint8Array(8)
  t.equal(copiedOptions(Uint8Array.of(0x45), 0, 20, out, 0), 0)
})

t.test('fragmentDatagram: DF refused, tiny MTU refused, re-fragmenting keeps offset and MF', async t => {
  t.equal(fragmentDatagram(datagram(2000, { df: true }), 1500, () => t.fail()), 'df-set')
  t.equal(fragmentDatagram(datagram(2000), 60, () => t.fail()), 'mtu-too-small')
  const first = frag(datagram(3000), 1500)
  const again = frag(first[1]!, 576)
  const r0 = parseIpv4(first[1]!.buf, first[1]!.off, first[1]!.end)
  const rs = again.map(f => parseIpv4(f.buf, f.off, f.end))
  if (typeof r0 === 'string' || rs.some(r => typeof r === 'string')) {
    t.fail('parse')
    return
  }
  t.equal((rs[0] as { fragOffset: number }).fragOffset, r0.fragOffset)
  t.ok(rs.every(r => (r as { mf: boolean }).mf), 'a middle fragment stays MF on every piece')
})

t.test('randomized: fragment, shuffle, duplicate, reassemble: bytes identical', async t => {
  const s = sched()
  const r = new Reassembler(s)
  let ok = 0
  for (let n = 0; n < 60; n++) {
    const len = rng.int(1, 9000)
    const m = datagram(len, { df: false })
    const want = m.bytes().slice()
    const frags = frag(m, rng.int(68, 1500))
    for (let i = frags.length - 1; i > 0; i--) {
      const j = rng.int(0, i)
      ;[frags[i], frags[j]] = [frags[j]!, frags[i]!]
    }
    if (rng.chance(0.3) && frags.length > 1) frags.splice(rng.int(0, frags.length - 1), 0, frags[0]!.clone())
    let done: Msg | null = null
    for (const f of frags) {
      const res = add(r, f)
      if (res === 'duplicate-fragment') f.free()
      else if (typeof res === 'string') t.fail(res)
      else if (res !== null) done = res
    }
    if (done === null) continue
    const got = done.bytes()
    const p = parseIpv4(got)
    const w = parseIpv4(want)
    if (typeof p !== 'string' && typeof w !== 'string' && p.payload.length === w.payload.length && p.payload.every((b, i) => b === w.payload[i]) && p.id === w.id && !p.mf && p.fragOffset === 0) ok++
    done.free()
  }
  t.equal(ok, 60)
  t.equal(r.stats().inProgress, 0)
  t.equal(r.stats().bytesHeld, 0)
  t.equal(r.stats().completed, 60)
})

t.test('an overlapping fragment discards the whole datagram (RFC 5722)', async t => {
  const r = new Reassembler(sched())
  const m = datagram(2000)
  const fs = frag(m, 1000)
  t.equal(add(r, fs[0]!), null)
  // A forged fragment overlapping the first one's data.
  const forged = Msg.from(emitIpv4({ src: A, dst: B, protocol: 17, id: get16(m.buf, m.off + IP.ID), mf: true, fragOffset: 480, payload: new Uint8Array(64) }))
  t.equal(add(r, forged), 'overlap')
  t.equal(r.stats().overlapDiscards, 1)
  t.equal(r.stats().inProgress, 0, 'datagram discarded')
  // The rest of the original no longer completes anything.
  for (const f of fs.slice(1)) t.equal(add(r, f), null)
  t.equal(r.stats().completed, 0)
})

t.test('inconsistent fragments are bad-fragment; oversize is too-big', async t => {
  const r = new Reassembler(sched())
  const id = 99
  const f = (off: number, len: number, mf: boolean) => Msg.from(emitIpv4({ src: A, dst: B, protocol: 17, id, mf, fragOffset: off, payload: new Uint8Array(len) }))
  t.equal(add(r, f(0, 12, true)), 'bad-fragment', 'non-final data not a multiple of 8')
  t.equal(add(r, f(65528, 16, false)), 'too-big')
  t.equal(add(r, f(800, 100, false)), null)
  t.equal(add(r, f(800, 108, false)), 'bad-fragment', 'a second, different last fragment')
  t.equal(add(r, f(1000, 8, true)), null)
  t.equal(add(r, f(880, 8, false)), 'bad-fragment', 'last fragment before data already held')
  t.equal(add(r, f(80, 8, false)), null, 'the bad fragment discarded the datagram: this starts a new one')
  t.equal(add(r, f(160, 8, true)), 'bad-fragment', 'data past the known end')
})

t.test('timeout discards partial datagrams', async t => {
  const s = sched()
  const r = new Reassembler(s, { timeoutMs: 1000 })
  const fs = frag(datagram(3000), 1500)
  add(r, fs[0]!)
  s.runFor(500)
  const fs2 = frag(datagram(3000), 1500)
  add(r, fs2[0]!)
  s.runFor(600)
  t.equal(r.stats().timeouts, 1)
  t.equal(r.stats().inProgress, 1)
  t.equal(add(r, fs[1]!), null, 'late fragments start over, and never complete')
  s.runFor(2000)
  t.equal(r.stats().timeouts, 3)
  t.equal(r.stats().inProgress, 0)
  t.equal(r.stats().bytesHeld, 0)
  for (const f of [...fs.slice(2), ...fs2.slice(1)]) f.free()
})

t.test('memory bound: oldest datagrams are evicted; a fragment larger than the bound is refused', async t => {
  const before = superFramePool.stats().inUse
  const r = new Reassembler(sched(), { maxDatagrams: 3, maxBytes: 4000 })
  for (let i = 0; i < 5; i++) add(r, frag(datagram(3000), 1500)[0]!)
  t.equal(r.stats().inProgress, 2, 'bytes bound: 2 x 1480 fit in 4000')
  t.equal(r.stats().evictions, 3)
  t.ok(r.stats().bytesHeld <= 4000)
  const r2 = new Reassembler(sched(), { maxDatagrams: 2 })
  for (let i = 0; i < 4; i++) add(r2, frag(datagram(3000), 1500)[0]!)
  t.equal(r2.stats().inProgress, 2, 'datagram-count bound')
  t.equal(add(r2, frag(datagram(3000), 1500)[0]!), null)
  const r3 = new Reassembler(sched(), { maxBytes: 1000 })
  const big = frag(datagram(3000), 1500)[0]!
  t.equal(add(r3, big), 'reassembly-full')
  big.free()
  r.clear()
  r2.clear()
  r3.clear()
  t.equal(superFramePool.stats().inUse, before, 'every reassembly buffer returned to its pool')
  t.throws(() => new Reassembler(sched(), { timeoutMs: 0 }), ConfigError)
  t.throws(() => new Reassembler(sched(), { pool: new MsgPool(2048) }), ConfigError)
  t.ok(framePool.stats().inUse >= 0)
})
