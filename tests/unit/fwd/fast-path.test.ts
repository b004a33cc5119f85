// The FWD / IP/FWD fast path's shortcuts against their long forms: the one-fold checksum
// update of rewriteSegment against the per-field RFC 1624 updates it replaced (bit for bit),
// and IP/FWD's inline IPv4 header check against corrupted headers (no corrupted header is
// ever forwarded) and headers with options (the general path).
import t from 'tap'
import { get16, get32, parseIPv4 } from '../../../core/bytes.js'
import { checksum, csumUpdate16, csumUpdate32, pseudoHeaderSum } from '../../../core/checksum.js'
import { Msg } from '../../../core/msg.js'
import { Path, type EndTarget } from '../../../core/path.js'
import { Random, testSeed } from '../../../core/random.js'
import { emitIpv4 } from '../../../stages/ip/header.js'
import { emitTcp, TcpFlag } from '../../../stages/tcp/segment.js'
import { FwdDirection, IpFwdStage, rewriteSegment, TsMode, type FwdDirectionConfig } from '../../../stages/fwd/index.js'

const seed = testSeed()
t.comment(`seed=${seed} (replay with PATHSPLICE_SEED=${seed})`)
const rng = new Random(seed)

function dirConfig(over: Partial<FwdDirectionConfig>): FwdDirectionConfig {
  return {
    outSrcIp: 0, outDstIp: 0, outSrcPort: 0, outDstPort: 0, seqOffset: 0, ackOffset: 0, inShift: 0, outShift: 0,
    tsMode: TsMode.None, tsvalOffset: 0, tsecrOffset: 0, sack: false, base: 0, highSeq: 0, window: 65535, ...over,
  }
}

t.test('rewriteSegment: the one-fold checksum update equals the per-field RFC 1624 updates, and verifies', async t => {
  let differ = 0
  let invalid = 0
  const n = 3000
  for (let i = 0; i < n; i++) {
    const srcIp = rng.nextU32()
    const dstIp = rng.nextU32()
    const seq = rng.nextU32()
    const ack = rng.nextU32()
    const flags = TcpFlag.ACK | (rng.chance(0.3) ? TcpFlag.PSH : 0) | (rng.chance(0.1) ? TcpFlag.FIN : 0)
    const payload = rng.bytes(new Uint8Array(rng.int(0, 80)))
    const seg = emitTcp({ srcPort: rng.int(1, 65535), dstPort: rng.int(1, 65535), seq, ack, flags, window: rng.int(0, 65535), payload }, srcIp, dstIp)
    const d = new FwdDirection(dirConfig({
      outSrcIp: rng.nextU32(), outDstIp: rng.nextU32(), outSrcPort: rng.int(1, 65535), outDstPort: rng.int(1, 65535),
      seqOffset: rng.nextU32(), ackOffset: rng.nextU32(), inShift: rng.int(0, 14), outShift: rng.int(0, 14), base: seq, highSeq: seq,
    }))
    // The other direction has sent exactly up to this segment's ack (in the outgoing space): no blind injection.
    const other = new FwdDirection(dirConfig({ seqOffset: rng.nextU32() }))
    other.highSeq = (ack - other.seqOffset) >>> 0
    const buf = new Uint8Array(seg.length + 8)
    buf.set(seg, 4)
    const r = rewriteSegment(buf, 4, 4 + seg.length, srcIp, dstIp, d, other)
    if (r !== 0) {
      t.fail(`segment ${i} refused: ${String(r)}`)
      continue
    }
    // The long form: one update per changed field, in the order the fields change.
    let c = get16(seg, 16)
    c = csumUpdate32(c, srcIp, d.outSrcIp)
    c = csumUpdate32(c, dstIp, d.outDstIp)
    c = csumUpdate16(c, get16(seg, 0), get16(buf, 4))
    c = csumUpdate16(c, get16(seg, 2), get16(buf, 6))
    c = csumUpdate32(c, get32(seg, 4), get32(buf, 8))
    c = csumUpdate32(c, get32(seg, 8), get32(buf, 12))
    c = csumUpdate16(c, get16(seg, 14), get16(buf, 18))
    if (get16(buf, 20) !== c) differ++
    if (checksum(buf, 4, seg.length, pseudoHeaderSum(d.outSrcIp, d.outDstIp, 6, seg.length)) !== 0) invalid++
    // The window is rescaled exactly: (win << inShift) >> outShift, clamped.
    const want = Math.min(0xffff, Math.floor((get16(seg, 14) * 2 ** d.inShift) / 2 ** d.outShift))
    if (get16(buf, 18) !== want) t.fail(`segment ${i}: window ${get16(buf, 18)}, want ${want}`)
  }
  t.equal(differ, 0, `${n} random segments: the same checksum field as the per-field updates`)
  t.equal(invalid, 0, 'and every one verifies over the outgoing pseudo-header')
})

class Sink implements EndTarget {
  readonly name = 'sink'
  readonly got: Msg[] = []
  send(batch: Msg[], n: number): void {
    for (let i = 0; i < n; i++) this.got.push(batch[i]!)
  }
}

const CLIENT = parseIPv4('10.0.1.2')
const PROXY_A = parseIPv4('10.0.1.1')
const PROXY_B = parseIPv4('10.0.2.1')
const SERVER = parseIPv4('10.0.2.2')

function ipfwd(): { stage: IpFwdStage; path: Path; out: Sink } {
  const ab = dirConfig({ outSrcIp: PROXY_B, outDstIp: SERVER, outSrcPort: 50000, outDstPort: 80, seqOffset: 0x1000, ackOffset: 0x2000, base: 1000, highSeq: 1000 })
  const ba = dirConfig({ outSrcIp: PROXY_A, outDstIp: CLIENT, outSrcPort: 1080, outDstPort: 40000, seqOffset: 0x2000, ackOffset: 0x1000, base: 5000 - 0x2000, highSeq: 5000 - 0x2000 })
  const stage = new IpFwdStage({ ab, ba, abNextHop: SERVER, baNextHop: CLIENT })
  const path = new Path([stage])
  const out = new Sink()
  path.connect(1, out)
  return { stage, path, out }
}

function datagram(options?: Uint8Array): Uint8Array {
  const tcp = emitTcp({ srcPort: 40000, dstPort: 1080, seq: 1000, ack: 5000, flags: TcpFlag.ACK, window: 100, payload: Uint8Array.of(1, 2, 3) }, CLIENT, PROXY_A)
  return emitIpv4({ src: CLIENT, dst: PROXY_A, protocol: 6, ttl: 30, payload: tcp, ...(options ? { options } : {}) })
}

function send(h: { path: Path; out: Sink }, bytes: Uint8Array): Msg | null {
  h.out.got.length = 0
  h.path.ends[0].enqueue(Msg.from(bytes))
  h.path.run()
  h.path.flush()
  return h.out.got[0] ?? null
}

t.test('IP/FWD: no single-bit corruption of an IPv4 header is forwarded; every refusal is counted', async t => {
  const h = ipfwd()
  const good = datagram()
  const ok = send(h, good)
  t.ok(ok !== null, 'the intact datagram is forwarded')
  if (ok !== null) t.equal(checksum(ok.buf, ok.off, 20), 0, 'with a valid rewritten header')
  let forwarded = 0
  for (let bit = 0; bit < 20 * 8; bit++) {
    const b = good.slice()
    b[bit >>> 3]! ^= 0x80 >>> (bit & 7)
    if (send(h, b) !== null) forwarded++
  }
  t.equal(forwarded, 0, 'all 160 single-bit corruptions dropped')
  const drops = h.stage.stats().drops
  const total = Object.values(drops).reduce((a, b) => a + b, 0)
  t.equal(total, 160, `each counted once: ${JSON.stringify(drops)}`)
  t.ok((drops['bad-ip-checksum'] ?? 0) > 100, 'most by the header checksum')
})

t.test('IP/FWD: headers with options take the general check; a corrupted option is refused', async t => {
  const h = ipfwd()
  const opts = Uint8Array.of(1, 1, 1, 0) // NOP NOP NOP EOL: IHL 6
  const good = datagram(opts)
  t.equal(good[0], 0x46)
  const out = send(h, good)
  t.ok(out !== null, 'forwarded')
  if (out !== null) {
    t.equal(checksum(out.buf, out.off, 24), 0, 'IP checksum valid after the rewrite')
    t.equal(get32(out.buf, out.off + 16), SERVER)
  }
  const bad = good.slice()
  bad[21]! ^= 0x04
  t.equal(send(h, bad), null)
  t.same(h.stage.stats().drops, { 'bad-ip-checksum': 1 })
})
