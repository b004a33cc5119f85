import t from 'tap'
import { parseIPv4 } from '../../../core/bytes.js'
import { ManualClock } from '../../../core/clock.js'
import { Msg } from '../../../core/msg.js'
import { Path, type EndTarget } from '../../../core/path.js'
import { Random, testSeed } from '../../../core/random.js'
import { Scheduler } from '../../../core/scheduler.js'
import { seqAdd } from '../../../core/seq.js'
import { Dir, type Stage } from '../../../core/stage.js'
import { emitIpv4 } from '../../../stages/ip/header.js'
import { emitTcp, TcpFlag, type TcpRepr } from '../../../stages/tcp/segment.js'
import { FwdDirection, IpFwdStage, TsMode, type FwdDirectionConfig, type FwdEnd } from '../../../stages/fwd/index.js'
import { FwdTable, ROW_WORDS, scratchDirection } from '../../../stages/fwd/shared-table.js'
import { SharedIpFwdStage } from '../../../stages/fwd/shared.js'

const seed = testSeed()
t.comment(`seed ${seed} (replay: PATHSPLICE_SEED=${seed})`)

// ------------------------------------------------------------------ the table

/** A random connection's two directions (the ab incoming key is derived from ba's outgoing tuple). */
function randomPair(r: Random): [FwdDirection, FwdDirection] {
  const d = (o: Partial<FwdDirectionConfig>): FwdDirection => new FwdDirection({
    outSrcIp: r.nextU32(), outDstIp: r.nextU32(), outSrcPort: r.int(1, 65535), outDstPort: r.int(1, 65535),
    seqOffset: r.nextU32(), ackOffset: r.nextU32(), inShift: r.int(0, 14), outShift: r.int(0, 14), tsMode: r.int(0, 2) as TsMode,
    tsvalOffset: r.nextU32(), tsecrOffset: r.nextU32(), sack: r.chance(0.5), base: r.nextU32(), highSeq: r.nextU32(),
    window: r.int(0, 0xffff << 14), lastAck: r.nextU32(), tsLastIn: r.nextU32(), outMss: r.int(0, 65535),
    ...(r.chance(0.3) ? { finSeq: r.nextU32() } : {}), ...o,
  })
  const ab = d({})
  const ba = d({})
  ab.segments = r.int(0, 1e6)
  ab.bytes = r.int(0, 2 ** 40)
  ab.chopped = r.int(0, 1e6)
  ba.maxWindow = r.int(ba.window, 0xffff << 14)
  return [ab, ba]
}

const FIELDS = ['outSrcIp', 'outDstIp', 'outSrcPort', 'outDstPort', 'seqOffset', 'ackOffset', 'inShift', 'outShift', 'tsMode', 'tsvalOffset', 'tsecrOffset',
  'sack', 'base', 'highSeq', 'lastAck', 'tsLastIn', 'window', 'maxWindow', 'finSeq', 'finSeen', 'segments', 'bytes', 'chopped', 'outMss'] as const

function fields(d: FwdDirection): Record<string, unknown> {
  const o: Record<string, unknown> = {}
  for (const k of FIELDS) o[k] = d[k]
  return o
}

/** The incoming key of direction `dir` (0: from A's peer), as the classifier reads it from a segment. */
function keyOf(ab: FwdDirection, ba: FwdDirection, dir: 0 | 1): [number, number, number] {
  const o = dir === 0 ? ba : ab
  return [o.outDstIp, o.outSrcIp, ((o.outDstPort << 16) | o.outSrcPort) >>> 0]
}

t.test(`table: random inserts, lookups, deletes, reuse and growth agree with a Map (seed ${seed})`, async t => {
  const r = new Random(seed)
  const table = new FwdTable()
  const model = new Map<number, [FwdDirection, FwdDirection]>()
  let grew = 0
  let reused = 0
  const freed = new Set<number>()
  const d = scratchDirection()
  for (let op = 0; op < 20_000; op++) {
    const p = r.next()
    if (p < 0.55 || model.size === 0) {
      const [ab, ba] = randomPair(r)
      const cap = table.capacity
      const row = table.insert(ab, ba, r.nextU32(), r.nextU32(), 0, op)
      if (table.capacity > cap) grew++
      if (freed.delete(row)) reused++
      if (model.has(row)) return t.fail(`row ${row} handed out twice`)
      model.set(row, [ab, ba])
    } else if (p < 0.85) {
      const rows = [...model.keys()]
      const row = rows[r.int(0, rows.length - 1)]!
      table.delete(row)
      model.delete(row)
      freed.add(row)
    } else {
      // A key nobody inserted.
      if (table.lookup(r.nextU32(), r.nextU32(), r.nextU32()) !== -1) return t.fail('a random key matched')
    }
    if (op % 997 === 0 || op === 19_999) {
      for (const [row, [ab, ba]] of model) {
        for (const dir of [0, 1] as const) {
          const [s, dd, ports] = keyOf(ab, ba, dir)
          if (table.lookup(s, dd, ports) !== ((row << 1) | dir)) return t.fail(`op ${op}: row ${row} dir ${dir} not found`)
          table.load(row, dir, d)
          const want = fields(dir === 0 ? ab : ba)
          if (JSON.stringify(fields(d)) !== JSON.stringify(want)) return t.same(fields(d), want, `op ${op}: row ${row} dir ${dir} round trip`)
        }
      }
      for (const row of freed) if (table.isLive(row)) return t.fail(`freed row ${row} is live`)
    }
  }
  t.equal(table.size, model.size, 'size matches')
  t.ok(grew >= 3, `grew by doubling ${grew} times (capacity ${table.capacity})`)
  t.ok(reused > 100, `freed rows were reused (${reused} times)`)
  t.ok(table.capacity >= table.size && (table.capacity & (table.capacity - 1)) === 0, 'capacity is a power of two')
  t.equal(table.i32.length, table.capacity * ROW_WORDS)
  return undefined
})

t.test('table: a duplicate key is refused; store/load keeps u32 values across the int32 words', async t => {
  const table = new FwdTable()
  const [ab, ba] = randomPair(new Random(seed ^ 0x55))
  ab.highSeq = 0xffffffff
  ab.seqOffset = 0x80000000
  const row = table.insert(ab, ba, 0xfffffffe, 1, 0, 7)
  t.throws(() => table.insert(ab, ba, 0, 0, 0, 8), /already in the table/)
  const d = scratchDirection()
  table.load(row, 0, d)
  t.equal(d.highSeq, 0xffffffff)
  t.equal(d.seqOffset, 0x80000000)
  t.equal(table.size, 1)
  table.delete(row)
  table.delete(row)
  t.equal(table.size, 0, 'deleting twice is harmless')
})

// ------------------------------------------------------------------ the stage against IpFwdStage

const CLIENT = parseIPv4('10.0.1.2')
const PROXY_A = parseIPv4('10.0.1.1')
const PROXY_B = parseIPv4('10.0.2.1')
const SERVER = parseIPv4('10.0.2.2')

class Sink implements EndTarget {
  readonly name = 'sink'
  readonly got: Msg[] = []
  send(batch: Msg[], n: number): void {
    for (let i = 0; i < n; i++) this.got.push(batch[i]!)
  }
}

/** A one-stage path with sinks at both ends; `push` runs a message through and returns what left (and where). */
function rig(stage: Stage) {
  const p = new Path([stage])
  const s0 = new Sink()
  const s1 = new Sink()
  p.connect(0, s0).connect(1, s1)
  return {
    push(m: Msg, dir: 0 | 1): { out: Msg | null; nextHop: number } {
      s0.got.length = 0
      s1.got.length = 0
      p.ends[dir === Dir.Forward ? 0 : 1].enqueue(m)
      p.run()
      p.flush()
      const out = (dir === Dir.Forward ? s1.got : s0.got)[0] ?? null
      return { out, nextHop: out?.nextHop ?? -1 }
    },
  }
}

/** One connection: client port `cport` <-> proxy 1080 (A), proxy `pport` <-> server 80 (B). */
interface Conn {
  cport: number
  pport: number
  cfg: { ab: FwdDirectionConfig; ba: FwdDirectionConfig }
  ref: IpFwdStage
  refRig: ReturnType<typeof rig>
  refEnd: FwdEnd | null
  sharedEnd: FwdEnd | null
  row: number
}

function randomConfig(r: Random, cport: number, pport: number): { ab: FwdDirectionConfig; ba: FwdDirectionConfig } {
  const abOff = r.nextU32()
  const baOff = r.nextU32()
  const ts = r.int(0, 2) as TsMode
  const sack = r.chance(0.6)
  const tsA = r.nextU32()
  const tsB = r.nextU32()
  const aHigh = r.nextU32()
  const bHigh = r.nextU32()
  const inA = r.int(0, 14)
  const inB = r.int(0, 14)
  return {
    ab: { outSrcIp: PROXY_B, outDstIp: SERVER, outSrcPort: pport, outDstPort: 80, seqOffset: abOff, ackOffset: baOff, inShift: inA, outShift: inB, tsMode: ts, tsvalOffset: tsA, tsecrOffset: tsB, sack, base: aHigh, highSeq: aHigh, window: r.int(1000, 65535) << inA, lastAck: seqAdd(bHigh, baOff) },
    ba: { outSrcIp: PROXY_A, outDstIp: CLIENT, outSrcPort: 1080, outDstPort: cport, seqOffset: baOff, ackOffset: abOff, inShift: inB, outShift: inA, tsMode: ts, tsvalOffset: tsB, tsecrOffset: tsA, sack, base: bHigh, highSeq: bHigh, window: r.int(1000, 65535) << inB, lastAck: seqAdd(aHigh, abOff) },
  }
}

/** A random datagram from A's peer (dir 0) or B's peer (dir 1) of `c`, mostly plausible, sometimes not. */
function randomDatagram(r: Random, c: Conn, dir: 0 | 1, highs: { a: number; b: number }): Uint8Array {
  const d = dir === 0 ? c.cfg.ab : c.cfg.ba
  const o = dir === 0 ? c.cfg.ba : c.cfg.ab
  const [src, dst, sp, dp] = dir === 0 ? [CLIENT, PROXY_A, c.cport, 1080] : [SERVER, PROXY_B, 80, c.pport]
  const high = dir === 0 ? highs.a : highs.b
  const otherHigh = dir === 0 ? highs.b : highs.a
  const len = r.chance(0.3) ? 0 : r.int(1, 1400)
  let seq = seqAdd(high, r.int(-3000, 2000))
  if (r.chance(0.03)) seq = seqAdd(high, r.chance(0.5) ? 1e9 : -1e9)
  if (r.chance(0.05)) seq = seqAdd(d.base, -r.int(1, 200))
  let flags: number = TcpFlag.ACK
  if (r.chance(0.1)) flags |= TcpFlag.PSH
  if (r.chance(0.004)) flags |= TcpFlag.FIN
  if (r.chance(0.0015)) flags |= TcpFlag.RST
  if (r.chance(0.02)) flags |= TcpFlag.SYN
  if (r.chance(0.02)) flags &= ~TcpFlag.ACK
  const sent = seqAdd(otherHigh, o.seqOffset)
  let ack = seqAdd(sent, -r.int(0, 3000))
  if (r.chance(0.02)) ack = seqAdd(sent, 2e9)
  const options: TcpRepr['options'] = {}
  if (d.tsMode !== TsMode.None || r.chance(0.2)) options.ts = [r.nextU32(), r.chance(0.1) ? 0 : r.nextU32()]
  if (r.chance(0.3)) options.sack = [[seqAdd(ack, 100), seqAdd(ack, 600)], ...(r.chance(0.5) ? [[seqAdd(ack, 900), seqAdd(ack, 1300)] as [number, number]] : [])]
  const payload = new Random(r.nextU32()).bytes(new Uint8Array(len))
  const tcp = emitTcp({ srcPort: sp, dstPort: dp, seq, ack, flags, window: r.int(0, 65535), payload, options }, src, dst)
  // A bad checksum (or worse); not in the ports: a segment with other ports belongs to another connection (or none).
  if (r.chance(0.02)) tcp[r.int(4, tcp.length - 1)]! ^= 1 << r.int(0, 7)
  const frag = r.chance(0.02)
  const ip = emitIpv4({ src, dst, protocol: 6, payload: tcp, ttl: r.int(1, 255), id: r.int(0, 65535), df: !frag && r.chance(0.5), mf: frag })
  if (r.chance(0.01)) ip[10]! ^= 0x40 // bad IP checksum
  return ip
}

function copy(b: Uint8Array): Msg {
  const m = Msg.from(b)
  m.l3 = m.off
  return m
}

function bytesOf(m: Msg | null): string {
  return m === null ? 'dropped' : Buffer.from(m.buf.subarray(m.off, m.end)).toString('hex')
}

t.test(`stage: every datagram comes out byte for byte as IpFwdStage's, with the same drops and ends (seed ${seed})`, async t => {
  const r = new Random(seed ^ 0x1234)
  const clock = new ManualClock()
  const sched = new Scheduler({ clock })
  const conns: Conn[] = []
  const byOwner = new Map<number, Conn>()
  const shared = new SharedIpFwdStage({ scheduler: sched, onEnd: (owner, why) => { byOwner.get(owner)!.sharedEnd = why } })
  const sharedRig = rig(shared)
  const N = 12
  for (let i = 0; i < N; i++) {
    const cport = 40000 + i
    const pport = 50000 + i
    const cfg = randomConfig(r, cport, pport)
    const abHop = r.nextU32()
    const baHop = r.nextU32()
    const c: Conn = { cport, pport, cfg, ref: null as unknown as IpFwdStage, refRig: null as unknown as ReturnType<typeof rig>, refEnd: null, sharedEnd: null, row: -1 }
    c.ref = new IpFwdStage({ ab: cfg.ab, ba: cfg.ba, abNextHop: abHop, baNextHop: baHop, onEnd: why => { c.refEnd = why } })
    c.refRig = rig(c.ref)
    c.row = shared.add(new FwdDirection(cfg.ab), new FwdDirection(cfg.ba), abHop, baHop, i)
    byOwner.set(i, c)
    conns.push(c)
  }
  let compared = 0
  let forwarded = 0
  const reasons = new Set<string>()
  let prev: Conn | null = null
  for (let k = 0; k < 6000; k++) {
    // Runs of one connection (the stage skips reloading a row it holds) and switches.
    const c: Conn = prev !== null && r.chance(0.6) ? prev : conns[r.int(0, N - 1)]!
    prev = c
    const dir = r.chance(0.5) ? 0 : 1
    const highs = { a: c.ref.ab.highSeq, b: c.ref.ba.highSeq }
    const dg = randomDatagram(r, c, dir, highs)
    const before = { ...c.ref.drops }
    const sharedBefore = { ...shared.drops }
    const want = c.refRig.push(copy(dg), dir)
    const got = sharedRig.push(copy(dg), dir)
    compared++
    if (bytesOf(got.out) !== bytesOf(want.out)) return t.equal(bytesOf(got.out), bytesOf(want.out), `datagram ${k}: same output`)
    if (want.out !== null) {
      forwarded++
      if (got.nextHop !== want.nextHop) return t.equal(got.nextHop, want.nextHop, `datagram ${k}: same next hop`)
    } else {
      const refReason = Object.keys(c.ref.drops).find(x => c.ref.drops[x] !== before[x])!
      const sharedReason = Object.keys(shared.drops).find(x => shared.drops[x] !== sharedBefore[x])!
      reasons.add(refReason)
      if (refReason !== sharedReason) return t.equal(sharedReason, refReason, `datagram ${k}: same drop reason`)
    }
    if (c.sharedEnd !== c.refEnd) return t.equal(c.sharedEnd, c.refEnd, `datagram ${k}: same end`)
    if (c.refEnd === null) {
      const st = shared.rowState(c.row)!
      const ref = c.ref.state()
      if (JSON.stringify(st.ab) !== JSON.stringify(ref.ab) || JSON.stringify(st.ba) !== JSON.stringify(ref.ba)) return t.same(st, { ...ref, ended: false }, `datagram ${k}: same state`)
    }
  }
  t.ok(forwarded > 800, `${forwarded} of ${compared} datagrams forwarded identically`)
  t.ok(reasons.size >= 5, `drop reasons exercised: ${[...reasons].join(', ')}`)
  const ended = conns.filter(c => c.refEnd !== null).length
  t.ok(ended > 0, `${ended} connections ended (RST or FINs) the same way in both`)
  t.equal(shared.rows, N - ended, 'ended rows were freed')
  t.equal(shared.stats().extra.rowsEnded, ended)
  return undefined
})

/** A fixed connection for the scenario tests. */
function fixed(lingerMs = 0, idleMs = 0) {
  const clock = new ManualClock()
  const sched = new Scheduler({ clock })
  const ends: [number, FwdEnd][] = []
  const shared = new SharedIpFwdStage({ scheduler: sched, lingerMs, idleMs, onEnd: (owner, why) => ends.push([owner, why]) })
  const R = rig(shared)
  const cfgs = [0, 1, 2].map(i => ({
    ab: { outSrcIp: PROXY_B, outDstIp: SERVER, outSrcPort: 50000 + i, outDstPort: 80, seqOffset: 0x1000_0000, ackOffset: 0xf000_0010, inShift: 0, outShift: 0, tsMode: TsMode.None, tsvalOffset: 0, tsecrOffset: 0, sack: false, base: 1000, highSeq: 1000, window: 65535, lastAck: 5000 },
    ba: { outSrcIp: PROXY_A, outDstIp: CLIENT, outSrcPort: 1080, outDstPort: 40000 + i, seqOffset: 0xf000_0010, ackOffset: 0x1000_0000, inShift: 0, outShift: 0, tsMode: TsMode.None, tsvalOffset: 0, tsecrOffset: 0, sack: false, base: (5000 - 0xf000_0010) >>> 0, highSeq: (5000 - 0xf000_0010) >>> 0, window: 65535, lastAck: (1000 + 0x1000_0000) >>> 0 },
  }))
  const rows = cfgs.map((c, i) => shared.add(new FwdDirection(c.ab), new FwdDirection(c.ba), SERVER, CLIENT, i))
  const S_B = (5000 - 0xf000_0010) >>> 0
  /** A segment of connection i from A (client) or B (server). */
  const seg = (i: number, from: 'A' | 'B', r: Partial<TcpRepr>, ip: { mf?: boolean; protocol?: number } = {}): Msg => {
    const [src, dst, sp, dp] = from === 'A' ? [CLIENT, PROXY_A, 40000 + i, 1080] : [SERVER, PROXY_B, 80, 50000 + i]
    const tcp = emitTcp({ srcPort: sp, dstPort: dp, seq: from === 'A' ? 1000 : S_B, ack: from === 'A' ? 5000 : (1000 + 0x1000_0000) >>> 0, flags: TcpFlag.ACK, window: 1000, ...r }, src, dst)
    return copy(emitIpv4({ src, dst, protocol: ip.protocol ?? 6, payload: tcp, mf: ip.mf ?? false }))
  }
  return { sched, clock, shared, R, rows, ends, seg, S_B }
}

t.test('stage: drops per reason, counted on the shared stage', async t => {
  const { shared, R, seg } = fixed()
  const payload = new Uint8Array(100)
  t.equal(R.push(seg(0, 'A', { flags: TcpFlag.SYN }), 0).out, null)
  t.equal(R.push(seg(0, 'A', { seq: 1000 + 1e9 }), 0).out, null)
  t.equal(R.push(seg(0, 'A', { seq: 900, payload, flags: 0 }), 0).out, null)
  t.equal(R.push(seg(0, 'A', { payload }, { mf: true }), 0).out, null)
  t.equal(R.push(seg(0, 'A', { payload }, { protocol: 17 }), 0).out, null)
  const bad = seg(0, 'A', { payload })
  bad.buf[bad.end - 1]! ^= 0xff
  t.equal(R.push(bad, 0).out, null)
  const badIp = seg(0, 'A', { payload })
  badIp.buf[badIp.off + 8]! ^= 1
  t.equal(R.push(badIp, 0).out, null)
  t.equal(R.push(seg(7, 'A', { payload }), 0).out, null, 'a tuple with no row')
  t.same(shared.drops, {
    'syn-on-spliced': 1, 'blind-injection': 1, 'below-splice-base': 1, fragment: 1, 'not-tcp': 1, 'bad-checksum': 1, 'bad-ip-checksum': 1, closed: 1,
  })
  const ok = R.push(seg(0, 'A', { payload }), 0)
  t.not(ok.out, null, 'a good segment still passes')
  t.equal(ok.nextHop, SERVER)
  t.equal(shared.stats().extra.segmentsAB, 1)
  t.equal(shared.stats().extra.bytesAB, 100)
})

t.test('stage: FIN both ways acked ends the row (no linger); RST ends another; the third keeps forwarding', async t => {
  const { shared, R, seg, ends, S_B } = fixed()
  R.push(seg(0, 'A', { flags: TcpFlag.ACK | TcpFlag.FIN }), 0)
  R.push(seg(0, 'B', { flags: TcpFlag.ACK | TcpFlag.FIN, ack: (1001 + 0x1000_0000) >>> 0 }), 1)
  t.same(ends, [], 'not before the second FIN is acked')
  R.push(seg(0, 'A', { seq: 1001, ack: 5001 }), 0)
  t.same(ends, [[0, 'fin']])
  t.equal(R.push(seg(0, 'A', { seq: 1001, ack: 5001 }), 0).out, null, 'the row is gone: later segments are closed')
  R.push(seg(1, 'B', { flags: TcpFlag.RST, seq: S_B }), 1)
  t.same(ends, [[0, 'fin'], [1, 'rst']])
  t.not(R.push(seg(2, 'A', {}), 0).out, null)
  t.equal(shared.rows, 1)
  t.same({ fin: shared.stats().extra.endedFin, rst: shared.stats().extra.endedRst }, { fin: 1, rst: 1 })
})

t.test('stage: linger keeps forwarding after both FINs, then the sweep ends the row; a RST while lingering ends it as fin', async t => {
  const { shared, R, seg, ends, sched } = fixed(200)
  for (const i of [0, 1]) {
    R.push(seg(i, 'A', { flags: TcpFlag.ACK | TcpFlag.FIN }), 0)
    R.push(seg(i, 'B', { flags: TcpFlag.ACK | TcpFlag.FIN, ack: (1001 + 0x1000_0000) >>> 0 }), 1)
    R.push(seg(i, 'A', { seq: 1001, ack: 5001 }), 0)
  }
  t.same(ends, [], 'lingering')
  t.equal(shared.stats().extra.lingering, 2)
  t.not(R.push(seg(0, 'B', { flags: TcpFlag.ACK | TcpFlag.FIN, ack: (1001 + 0x1000_0000) >>> 0 }), 1).out, null, 'a late FIN retransmission is forwarded')
  R.push(seg(1, 'B', { flags: TcpFlag.RST, seq: (5001 - 0xf000_0010) >>> 0 }), 1)
  t.same(ends, [[1, 'fin']], 'a RST after both FINs ends it as fin')
  sched.runFor(150)
  t.same(ends, [[1, 'fin']], 'not before lingerMs')
  sched.runFor(200)
  t.same(ends, [[1, 'fin'], [0, 'fin']], 'the sweep ended the linger')
  t.equal(shared.rows, 1)
})

t.test('stage: the idle sweep ends rows without segments for idleMs, not the busy one', async t => {
  const { shared, R, seg, ends, sched } = fixed(0, 100)
  for (let k = 0; k < 6; k++) {
    sched.runFor(40)
    R.push(seg(2, 'A', {}), 0)
  }
  t.same(ends.map(e => e[0]).sort(), [0, 1], 'the two silent rows ended')
  t.ok(ends.every(e => e[1] === 'idle'))
  t.equal(shared.rows, 1, 'the busy row lives')
  sched.runFor(1000)
  t.same(ends.map(e => e[0]).sort(), [0, 1, 2], 'and ends once silent')
  t.equal(shared.rows, 0)
  t.equal(shared.stats().extra.endedIdle, 3)
})
