import t, { type Test } from 'tap'
import { checksum, pseudoHeaderSum } from '../../../core/checksum.js'
import { ManualClock } from '../../../core/clock.js'
import { parseIPv4 } from '../../../core/bytes.js'
import { Msg } from '../../../core/msg.js'
import { Path, type EndTarget } from '../../../core/path.js'
import { Random, testSeed } from '../../../core/random.js'
import { Scheduler } from '../../../core/scheduler.js'
import { Dir } from '../../../core/stage.js'
import { emitIpv4, parseIpv4 } from '../../../stages/ip/header.js'
import { emitTcp, parseTcp, TcpFlag, type TcpRepr } from '../../../stages/tcp/segment.js'
import { FwdStage, IpFwdStage, TsMode, type FwdConfig, type FwdDirectionConfig } from '../../../stages/fwd/index.js'

const CLIENT = parseIPv4('10.0.1.2')
const PROXY_A = parseIPv4('10.0.1.1')
const PROXY_B = parseIPv4('10.0.2.1')
const SERVER = parseIPv4('10.0.2.2')

/**
 * Connection A: client:40000 <-> proxy:1080. Connection B: proxy:50000 <-> server:80.
 * A space: the client sends from 1000, the proxy sent it up to 5000. B space: the proxy
 * sends to the server from 1000 + AB, the server sends from S_B = 5000 - BA.
 */
const AB = 0x1000_0000
const BA = 0xf000_0010
const S_B = (5000 - BA) >>> 0

function config(over: Partial<FwdDirectionConfig> = {}, overBa: Partial<FwdDirectionConfig> = {}): FwdConfig {
  const abOff = AB // snd_nxt(B) - rcv_nxt(A)
  const baOff = BA // snd_nxt(A) - rcv_nxt(B), wraps
  return {
    ab: { outSrcIp: PROXY_B, outDstIp: SERVER, outSrcPort: 50000, outDstPort: 80, seqOffset: abOff, ackOffset: baOff, inShift: 7, outShift: 2, tsMode: TsMode.Map, tsvalOffset: 1000, tsecrOffset: 7, sack: true, base: 1000, highSeq: 1000, window: 65535, ...over },
    ba: { outSrcIp: PROXY_A, outDstIp: CLIENT, outSrcPort: 1080, outDstPort: 40000, seqOffset: baOff, ackOffset: abOff, inShift: 2, outShift: 7, tsMode: TsMode.Map, tsvalOffset: 7, tsecrOffset: 1000, sack: true, base: S_B, highSeq: S_B, window: 65535, ...overBa },
  }
}

class Sink implements EndTarget {
  readonly name = 'sink'
  readonly got: Msg[] = []
  send(batch: Msg[], n: number): void {
    for (let i = 0; i < n; i++) this.got.push(batch[i]!)
  }
}

/** A datagram from the client (A side) or the server (B side), as FWD sees it: off at TCP, l3 at IP. */
function segment(from: 'A' | 'B', r: Partial<TcpRepr>, opts: { ipOnly?: boolean } = {}): Msg {
  const [src, dst] = from === 'A' ? [CLIENT, PROXY_A] : [SERVER, PROXY_B]
  const [sp, dp] = from === 'A' ? [40000, 1080] : [80, 50000]
  const tcp = emitTcp({ srcPort: sp, dstPort: dp, seq: 1000, ack: 5000, flags: TcpFlag.ACK, window: 100, ...r }, src, dst)
  const m = Msg.from(emitIpv4({ src, dst, protocol: 6, payload: tcp }))
  m.l3 = m.off
  if (!opts.ipOnly) m.off += 20
  return m
}

const harness = new WeakMap<FwdStage, { p: Path; s0: Sink; s1: Sink }>()

/** Runs one message through `stage` (in a one-stage path kept per stage); returns what came out. */
function run(stage: FwdStage, m: Msg, dir: 0 | 1): Msg | null {
  let h = harness.get(stage)
  if (h === undefined) {
    h = { p: new Path([stage]), s0: new Sink(), s1: new Sink() }
    h.p.connect(0, h.s0).connect(1, h.s1)
    harness.set(stage, h)
  }
  const { p, s0, s1 } = h
  s0.got.length = 0
  s1.got.length = 0
  p.ends[dir === Dir.Forward ? 0 : 1].enqueue(m)
  p.run()
  p.flush()
  const out = dir === Dir.Forward ? s1.got : s0.got
  return out[0] ?? null
}

function tcpOut(m: Msg, src: number, dst: number, t: Test): TcpRepr {
  const len = m.end - m.off
  t.equal(checksum(m.buf, m.off, len, pseudoHeaderSum(src, dst, 6, len)), 0, 'TCP checksum valid for the new pseudo-header')
  const r = parseTcp(m.buf, m.off, m.end)
  if (typeof r === 'string') throw new Error(r)
  return r
}

t.test('A->B: ports, seq, ack, window, timestamps, SACK and checksum', async t => {
  const f = new FwdStage(config())
  const payload = new Uint8Array(100).fill(7)
  const out = run(f, segment('A', { seq: 1000, ack: 5000, window: 100, payload, options: { ts: [200, 300], sack: [[5100, 5200]] } }), Dir.Forward)!
  const r = tcpOut(out, PROXY_B, SERVER, t)
  t.same([r.srcPort, r.dstPort], [50000, 80])
  t.equal(r.seq, (1000 + 0x1000_0000) >>> 0)
  t.equal(r.ack, S_B, 'the ack lands in B space')
  t.equal(r.window, (100 << 7) >> 2, 'window rescaled from shift 7 to shift 2')
  t.same(r.options!.ts, [1200, 293])
  t.same(r.options!.sack, [[(5100 - 0xf000_0010) >>> 0, (5200 - 0xf000_0010) >>> 0]])
  t.same([...r.payload!], [...payload])
  t.same(f.state().ab, { highSeq: 1100, lastAck: 5000, window: 100 << 7, finSeen: false, segments: 1, bytes: 100, chopped: 0, tsLastIn: 200 })
})

t.test('B->A maps back: a round trip through both directions restores the numbers', async t => {
  const f = new FwdStage(config())
  const out = run(f, segment('B', { seq: S_B, ack: (1100 + AB) >>> 0, window: 4000, options: { ts: [77, 1200] } }), Dir.Backward)!
  const r = tcpOut(out, PROXY_A, CLIENT, t)
  t.same([r.srcPort, r.dstPort], [1080, 40000])
  t.equal(r.seq, 5000, 'the server seq lands in A space')
  t.equal(r.ack, 1100, 'acks what A sent, in A space')
  t.equal(r.window, Math.min(0xffff, Math.floor((4000 << 2) / 128)))
  t.same(r.options!.ts, [84, 200], 'TSecr maps back to what A sent')
})

t.test('timestamps NOP-ed and SACK stripped when one side lacks them; window clamps at 0xffff', async t => {
  const f = new FwdStage(config({ tsMode: TsMode.Nop, sack: false, inShift: 14, outShift: 0 }))
  const out = run(f, segment('A', { window: 0xffff, options: { ts: [1, 2], sack: [[5100, 5200], [5300, 5400]] } }), Dir.Forward)!
  const r = tcpOut(out, PROXY_B, SERVER, t)
  t.equal(r.options!.ts, undefined)
  t.equal(r.options!.sack, undefined)
  t.equal(r.window, 0xffff)
})

t.test('drops: SYN, blind injection by seq and by ack, truncated, closed', async t => {
  const f = new FwdStage(config())
  t.equal(run(f, segment('A', { flags: TcpFlag.SYN | TcpFlag.ACK }), Dir.Forward), null)
  t.equal(run(f, segment('A', { seq: 1000 + 10_000_000 }), Dir.Forward), null)
  t.equal(run(f, segment('A', { ack: 5000 + 10_000_000 }), Dir.Forward), null)
  const short = segment('A', {})
  short.end = short.off + 10
  t.equal(run(f, short, Dir.Forward), null)
  t.same(f.stats().drops, { 'syn-on-spliced': 1, 'blind-injection': 2, truncated: 1 })
  f.end('rst')
  t.equal(run(f, segment('A', {}), Dir.Forward), null)
  t.equal(f.stats().drops.closed, 1)
})

t.test('data below the splice base is chopped; all-old data without ACK is dropped', async t => {
  const f = new FwdStage(config({ base: 1050, highSeq: 1050 }))
  const payload = Uint8Array.from({ length: 100 }, (_, i) => i)
  const out = run(f, segment('A', { seq: 1000, payload, options: { ts: [5, 6] } }), Dir.Forward)!
  const r = tcpOut(out, PROXY_B, SERVER, t)
  t.equal(r.seq, (1050 + 0x1000_0000) >>> 0)
  t.same([...r.payload!], [...payload.subarray(50)])
  t.equal(f.state().ab.chopped, 50)
  t.equal(run(f, segment('A', { seq: 1000, flags: 0, payload: payload.subarray(0, 20) }), Dir.Forward), null)
  t.equal(f.stats().drops['below-splice-base'], 1)
  const ackOnly = run(f, segment('A', { seq: 1000, payload: payload.subarray(0, 20) }), Dir.Forward)!
  const a = tcpOut(ackOnly, PROXY_B, SERVER, t)
  t.equal(a.payload!.length, 0, 'an old-data segment with an ACK passes as a pure ACK')
  // Below the server's RCV.NXT on purpose: the client retransmits because it missed the
  // ACK of bytes the proxy consumed; the server answers the unacceptable segment with an
  // ACK (RFC 9293 §3.10.7.4), which is the one the client needs.
  t.equal(a.seq, (1020 + 0x1000_0000) >>> 0, 'at its old end, below what was forwarded (the receiver answers it)')
  const fin = run(f, segment('A', { seq: 1000, flags: TcpFlag.ACK | TcpFlag.FIN, payload: payload.subarray(0, 20) }), Dir.Forward)!
  t.equal(tcpOut(fin, PROXY_B, SERVER, t).seq, (1020 + 0x1000_0000) >>> 0, 'a FIN keeps its place')
})

t.test('more than 2^31 bytes after the splice: new data is not taken for data below the base', async t => {
  // Sequence comparisons flip after 2^31 (RFC 1982); a base that never moved made every
  // new byte look old past 2 GiB, and FWD chopped whole segments (a silent stall).
  const f = new FwdStage(config())
  const payload = new Uint8Array(1000).fill(9)
  const step = 64 * 1024 // inside the blind-injection tolerance
  let seq = 1000
  let lost = 0
  for (let sent = 0; sent < 2 ** 31 + 2 ** 24; sent += step) {
    const out = run(f, segment('A', { seq, payload }), Dir.Forward)
    if (out === null || out.end - out.off - 20 !== payload.length) lost++
    out?.free()
    seq = (seq + step) >>> 0
  }
  t.equal(lost, 0, 'every segment was forwarded with its whole payload')
  t.equal(f.state().ab.chopped, 0, 'nothing chopped')
  const old = run(f, segment('A', { seq: (seq - 2 * step) >>> 0, payload }), Dir.Forward)!
  t.equal(tcpOut(old, PROXY_B, SERVER, t).payload!.length, payload.length, 'a recent retransmission still passes whole')
})

t.test('FIN both ways and the last ACK end the splice; RST ends it at once', async t => {
  const ends: string[] = []
  const f = new FwdStage({ ...config(), onEnd: why => ends.push(why) })
  run(f, segment('A', { seq: 1000, flags: TcpFlag.FIN | TcpFlag.ACK }), Dir.Forward)
  run(f, segment('B', { seq: S_B, ack: (1001 + AB) >>> 0, flags: TcpFlag.FIN | TcpFlag.ACK }), Dir.Backward)
  t.same(ends, [])
  run(f, segment('A', { seq: 1001, ack: 5001 }), Dir.Forward)
  t.same(ends, ['fin'])
  t.equal(f.ended, 'fin')
  const g = new FwdStage({ ...config(), onEnd: why => ends.push(why) })
  t.not(run(g, segment('B', { seq: S_B, ack: (1000 + AB) >>> 0, flags: TcpFlag.RST | TcpFlag.ACK }), Dir.Backward), null, 'the RST itself is forwarded')
  t.same(ends, ['fin', 'rst'])
})

t.test('a RST below what its receiver acknowledged is dropped and leaves the splice up; the exact one ends it', async t => {
  const ends: string[] = []
  // The server acknowledged the client's stream up to 1100 (A space), 1100 + AB in its own.
  const f = new FwdStage({ ...config({}, { lastAck: (1100 + AB) >>> 0 }), onEnd: why => ends.push(why) })
  // A RST answering an old segment (its seq is that segment's ACK, 1050): below the
  // server's RCV.NXT, which drops it (RFC 5961 §3.2); passed on it would end the splice
  // and leave no way through for the client's exact RST reordered behind it.
  t.equal(run(f, segment('A', { seq: 1050, flags: TcpFlag.RST }), Dir.Forward), null)
  t.equal(f.stats().drops['rst-below-window'], 1)
  t.same(ends, [], 'the splice is still up')
  t.equal(f.ended, null)
  const rst = run(f, segment('A', { seq: 1100, flags: TcpFlag.RST }), Dir.Forward)
  t.not(rst, null, 'the exact RST is forwarded')
  t.equal(tcpOut(rst!, PROXY_B, SERVER, t).seq, (1100 + AB) >>> 0)
  t.same(ends, ['rst'])
  // A RST at the seq of the FIN forwarded for its sender is let through (one value only).
  const g = new FwdStage({ ...config({}, { lastAck: (1101 + AB) >>> 0 }), onEnd: why => ends.push(why) })
  run(g, segment('A', { seq: 1100, flags: TcpFlag.FIN | TcpFlag.ACK }), Dir.Forward)
  t.not(run(g, segment('A', { seq: 1100, flags: TcpFlag.RST }), Dir.Forward), null, 'at the FIN: passed on')
  t.same(ends, ['rst', 'rst'])
})

t.test('the idle timer ends a silent splice', async t => {
  const clock = new ManualClock()
  const s = new Scheduler({ clock })
  const ends: string[] = []
  const f = new FwdStage({ ...config(), scheduler: s, idleMs: 1000, onEnd: why => ends.push(why) })
  s.runFor(600)
  const m = segment('A', {})
  m.rxTime = clock.now()
  run(f, m, Dir.Forward)
  s.runFor(900)
  t.same(ends, [], 'activity at 600 ms pushed the deadline to 1600 ms')
  s.runFor(200)
  t.same(ends, ['idle'])
})

t.test('randomized: any option layout keeps checksums valid and round-trips', async t => {
  const seed = testSeed()
  t.comment(`seed=${seed}`)
  const rng = new Random(seed)
  let bad = 0
  let mismatched = 0
  for (let i = 0; i < 2000; i++) {
    const cfg = config(
      { seqOffset: rng.nextU32(), ackOffset: rng.nextU32(), tsvalOffset: rng.nextU32(), tsecrOffset: rng.nextU32(), inShift: rng.int(0, 14), outShift: rng.int(0, 14), highSeq: rng.nextU32() },
      {},
    )
    cfg.ba.seqOffset = cfg.ab.ackOffset
    cfg.ba.highSeq = (cfg.ab.highSeq + 17) >>> 0
    const seq = (cfg.ab.highSeq + rng.int(-1000, 1000)) >>> 0
    cfg.ab.base = (seq - rng.int(0, 3)) >>> 0
    const ack = (cfg.ba.highSeq + cfg.ba.seqOffset - rng.int(0, 1000)) >>> 0
    // Random option bytes: a leading NOP shifts TS/SACK to odd offsets half the time.
    const raw: number[] = []
    if (rng.chance(0.5)) raw.push(1)
    const ts: [number, number] = [rng.nextU32(), rng.nextU32()]
    if (rng.chance(0.7)) raw.push(8, 10, ...[...ts].flatMap(v => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]))
    if (rng.chance(0.5)) {
      const l = rng.nextU32()
      raw.push(5, 10, ...[l, (l + 100) >>> 0].flatMap(v => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]))
    }
    const payload = rng.bytes(new Uint8Array(rng.int(0, 300)))
    const f = new FwdStage(cfg)
    const m = segment('A', { seq, ack, window: rng.int(0, 0xffff), rawOptions: Uint8Array.from(raw), payload })
    const out = run(f, m, Dir.Forward)
    if (out === null) {
      bad++
      continue
    }
    const len = out.end - out.off
    if (checksum(out.buf, out.off, len, pseudoHeaderSum(PROXY_B, SERVER, 6, len)) !== 0) bad++
    const r = parseTcp(out.buf, out.off, out.end)
    if (typeof r === 'string' || (r.ack + cfg.ab.ackOffset) >>> 0 !== ack) mismatched++
  }
  t.equal(bad, 0, 'every rewritten segment has a valid checksum')
  t.equal(mismatched, 0, 'every ack maps back to the original')
})

t.test('IP/FWD: rewrites the IP header too, sets TTL and next hop; refuses fragments and non-TCP', async t => {
  const f = new IpFwdStage({ ...config(), abNextHop: SERVER, baNextHop: CLIENT })
  const m = segment('A', { payload: new Uint8Array(10) }, { ipOnly: true })
  m.end += 6 // Ethernet padding must be stripped
  const out = run(f, m, Dir.Forward)!
  const ip = parseIpv4(out.buf, out.off, out.end)
  if (typeof ip === 'string') throw new Error(ip)
  t.equal(checksum(out.buf, out.off, 20), 0, 'IP checksum valid')
  t.same([ip.src, ip.dst, ip.ttl, ip.protocol], [PROXY_B, SERVER, 64, 6])
  t.equal(out.nextHop, SERVER)
  t.equal(out.end - out.off, 20 + 20 + 10)
  const seg = out.buf.subarray(out.off + 20, out.end)
  t.equal(checksum(seg, 0, seg.length, pseudoHeaderSum(PROXY_B, SERVER, 6, seg.length)), 0, 'TCP checksum valid')

  const frag = segment('A', {}, { ipOnly: true })
  frag.buf[frag.off + 6] = 0x20 // MF
  t.equal(run(f, frag, Dir.Forward), null)
  const udp = segment('A', {}, { ipOnly: true })
  udp.buf[udp.off + 9] = 17
  t.equal(run(f, udp, Dir.Forward), null)
  t.same(f.stats().drops, { fragment: 1, 'not-tcp': 1 })

  const g = new IpFwdStage({ ...config({ base: 1004, highSeq: 1004 }), abNextHop: SERVER, baNextHop: CLIENT })
  const c = run(g, segment('A', { payload: Uint8Array.of(1, 2, 3, 4, 5, 6) }, { ipOnly: true }), Dir.Forward)!
  const ip2 = parseIpv4(c.buf, c.off, c.end)
  if (typeof ip2 === 'string') throw new Error(ip2)
  t.same([...ip2.payload.subarray(20)], [5, 6], 'chopped below the base, IP length fixed')
  t.equal(checksum(c.buf, c.off, 20), 0)
})

/** Turns a segment's checksum into what a VNET_HDR kernel sends: the pseudo-header sum only (NEEDS_CSUM), optionally GSO. */
function partial(m: Msg, src: number, dst: number, gsoSize = 0): Msg {
  const tcp = m.l3 + 20
  const len = m.end - tcp
  m.buf[tcp + 16] = 0
  m.buf[tcp + 17] = 0
  const s = foldSum(pseudoHeaderSum(src, dst, 6, len))
  m.buf[tcp + 16] = s >>> 8
  m.buf[tcp + 17] = s & 0xff
  m.vnet = { flags: 1, gsoType: gsoSize > 0 ? 1 : 0, hdrLen: gsoSize > 0 ? 14 + 20 + 32 : 0, gsoSize, csumStart: 14 + 20, csumOffset: 16 }
  return m
}
function foldSum(x: number): number {
  while (x > 0xffff) x = (x & 0xffff) + (x >>> 16)
  return x
}
/** Completes a NEEDS_CSUM checksum as the device does; 0 when the result verifies over the outgoing pseudo-header. */
function completed(m: Msg, tcp: number, src: number, dst: number): number {
  const len = m.end - tcp
  // Device: checksum over [csum_start, end) with the field as given, stored complemented...
  const c = checksum(m.buf, tcp, len)
  const b = new Uint8Array(m.buf.subarray(tcp, m.end))
  b[16] = c >>> 8
  b[17] = c & 0xff
  // ...then the receiver verifies it the usual way.
  return checksum(b, 0, len, pseudoHeaderSum(src, dst, 6, len))
}

t.test('VNET_HDR: a NEEDS_CSUM segment keeps a partial sum rebuilt for the new addresses; gso_size is cut to the outgoing MSS', async t => {
  for (const kind of ['fwd', 'ipfwd'] as const) {
    const cfg = config({ outMss: 1200, base: 1050, highSeq: 1050 })
    const f = kind === 'fwd' ? new FwdStage(cfg) : new IpFwdStage({ ...cfg, abNextHop: SERVER, baNextHop: CLIENT })
    const payload = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff)
    // A super-segment starting below the splice base: chopped, headers move, length changes.
    const m = partial(segment('A', { seq: 1000, payload, options: { ts: [5, 6], sack: [[5100, 5200]] } }, { ipOnly: kind === 'ipfwd' }), CLIENT, PROXY_A, 1448)
    const out = run(f, m, Dir.Forward)!
    t.ok(out !== null, `${kind}: forwarded`)
    const tcp = kind === 'fwd' ? out.off : out.off + 20
    t.equal(out.l4, tcp, `${kind}: l4 marks the outgoing TCP header (the TAP sets csum_start from it)`)
    t.equal(completed(out, tcp, PROXY_B, SERVER), 0, `${kind}: the device-completed checksum verifies over the new pseudo-header`)
    const hlen = (out.buf[tcp + 12]! >>> 4) << 2
    t.equal(out.vnet?.gsoSize, 1200 - (hlen - 20), `${kind}: gso_size cut to the outgoing MSS less the options (RFC 6691)`)
    t.equal(out.end - tcp - hlen, 2950, `${kind}: 50 bytes below the base chopped`)
  }
})
