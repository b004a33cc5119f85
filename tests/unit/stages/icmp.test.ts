import t from 'tap'
import { Msg } from '../../../core/msg.js'
import { Path } from '../../../core/path.js'
import { parseIPv4, get16 } from '../../../core/bytes.js'
import { fold, sumBytes } from '../../../core/checksum.js'
import {
  ICMP, IcmpStage, IcmpType, UnreachCode, buildIcmpError, emitIcmp, emitIpv4, mayReportError, parseIcmp, parseIpv4, isIcmpError, type IcmpErrorReport,
} from '../../../stages/ip/index.js'

const A = parseIPv4('10.0.0.1')
const B = parseIPv4('10.0.0.2')
const R = parseIPv4('10.0.0.254')

function dg(o: Partial<Parameters<typeof emitIpv4>[0]> = {}): Uint8Array {
  return emitIpv4({ src: A, dst: B, protocol: 6, payload: Uint8Array.of(0x12, 0x34, 0x00, 0x50, 1, 2, 3, 4, 5, 6, 7, 8), ...o })
}

t.test('emitIcmp / parseIcmp and checksum validation', async t => {
  const m = emitIcmp({ type: 8, code: 0, rest: 0x00010002, data: Uint8Array.of(1, 2, 3) })
  t.equal(fold(sumBytes(m, 0, m.length)), 0xffff)
  t.match(parseIcmp(m), { type: 8, code: 0, rest: 0x00010002 })
  m[9] ^= 1
  t.equal(parseIcmp(m), 'bad-checksum')
  t.equal(parseIcmp(new Uint8Array(7)), 'short')
  t.ok(isIcmpError(3) && isIcmpError(11) && !isIcmpError(0) && !isIcmpError(8))
})

t.test('buildIcmpError quotes the offender within 576 bytes and obeys RFC 1122 §3.2.2', async t => {
  const off = dg()
  const e = buildIcmpError(off, 0, off.length, IcmpType.DEST_UNREACHABLE, UnreachCode.FRAG_NEEDED, 1280, R)
  t.ok(e)
  if (e === null) return
  const ip = parseIpv4(e.buf, e.off, e.end)
  t.match(ip, { src: R, dst: A, protocol: 1, ttl: 64 })
  if (typeof ip === 'string') return
  const icmp = parseIcmp(ip.payload)
  t.match(icmp, { type: 3, code: 4, rest: 1280 })
  if (typeof icmp !== 'string') t.same([...icmp.data], [...off], 'the whole small offender is quoted')
  const big = dg({ payload: new Uint8Array(1400) })
  const e2 = buildIcmpError(big, 0, big.length, 11, 0, 0, R)!
  t.equal(e2.length, 576)
  // Never about: ICMP errors, non-first fragments, broadcast/multicast/zero/loopback sources, broadcast/multicast destinations.
  const err = dg({ protocol: 1, payload: emitIcmp({ type: 3, code: 1, rest: 0, data: new Uint8Array(28) }) })
  t.notOk(mayReportError(err, 0, err.length))
  const echo = dg({ protocol: 1, payload: emitIcmp({ type: 8, code: 0, rest: 0, data: new Uint8Array(8) }) })
  t.ok(mayReportError(echo, 0, echo.length), 'errors about echo requests are fine')
  const truncIcmp = dg({ protocol: 1, payload: new Uint8Array(0) })
  t.notOk(mayReportError(truncIcmp, 0, truncIcmp.length))
  t.notOk(mayReportError(dg({ fragOffset: 8 }), 0, 40))
  t.notOk(mayReportError(dg({ src: 0 }), 0, 40))
  t.notOk(mayReportError(dg({ src: parseIPv4('127.0.0.1') }), 0, 40))
  t.notOk(mayReportError(dg({ src: parseIPv4('224.0.0.1') }), 0, 40))
  t.notOk(mayReportError(dg({ dst: 0xffffffff }), 0, 40))
  t.notOk(mayReportError(dg({ dst: parseIPv4('239.1.1.1') }), 0, 40))
  t.equal(buildIcmpError(dg({ src: 0 }), 0, 40, 11, 0, 0, R), null)
})

function icmpPath() {
  const icmp = new IcmpStage(A)
  const path = new Path([icmp])
  const out: Msg[] = []
  path.connect(0, { name: 'ip', send: (b, n) => { for (let i = 0; i < n; i++) out.push(b[i]!) } })
  // Deliver as the IP stage would: l3 at the header, off at ICMP.
  const input = (d: Uint8Array) => {
    const m = Msg.from(d)
    m.l3 = m.off
    m.off += (d[0]! & 0xf) * 4
    m.l4 = m.off
    path.ends[0].enqueue(m)
    path.run()
    path.flush()
  }
  return { icmp, path, out, input }
}

t.test('echo request -> reply in place, checksum updated incrementally', async t => {
  const { icmp, out, input } = icmpPath()
  const req = emitIcmp({ type: 8, code: 0, rest: 0x0abc0001, data: Uint8Array.of(9, 9, 9, 9, 9) })
  input(emitIpv4({ src: B, dst: A, protocol: 1, payload: req }))
  t.equal(out.length, 1)
  const r = out[0]!
  t.equal(r.nextHop, B, 'reply goes back to the sender')
  t.match(parseIcmp(r.buf, r.off, r.end), { type: 0, code: 0, rest: 0x0abc0001 })
  t.equal(icmp.echoAnswered, 1)
  // Echo to a broadcast: not answered.
  input(emitIpv4({ src: B, dst: 0xffffffff, protocol: 1, payload: req }))
  t.equal(icmp.drops['broadcast-echo'], 1)
})

t.test('echo replies and errors reach their listeners; junk is counted', async t => {
  const { icmp, input, path } = icmpPath()
  const replies: number[][] = []
  const errors: IcmpErrorReport[] = []
  icmp.onEchoReply = (id, seq, from, len) => replies.push([id, seq, from, len])
  icmp.onError = e => errors.push(e)
  input(emitIpv4({ src: B, dst: A, protocol: 1, payload: emitIcmp({ type: 0, code: 0, rest: 0x00070003, data: new Uint8Array(56) }) }))
  t.same(replies, [[7, 3, B, 56]])
  const quoted = dg({ df: true })
  input(emitIpv4({ src: R, dst: A, protocol: 1, payload: emitIcmp({ type: 3, code: 4, rest: 1400, data: quoted.subarray(0, 28) }) }))
  t.same(errors, [{ type: 3, code: 4, mtu: 1400, from: R, src: A, dst: B, protocol: 6, srcPort: 0x1234, dstPort: 0x50 }])
  input(emitIpv4({ src: R, dst: A, protocol: 1, payload: emitIcmp({ type: 11, code: 0, rest: 0, data: quoted.subarray(0, 22) }) }))
  t.match(errors[1], { type: 11, mtu: 0, srcPort: -1, dstPort: -1 })
  input(emitIpv4({ src: R, dst: A, protocol: 1, payload: emitIcmp({ type: 13, code: 0, rest: 0, data: new Uint8Array(12) }) }))
  input(emitIpv4({ src: R, dst: A, protocol: 1, payload: emitIcmp({ type: 3, code: 1, rest: 0, data: new Uint8Array(4) }) }))
  const bad = emitIcmp({ type: 8, code: 0, rest: 0, data: new Uint8Array(4) })
  bad[8] = 1
  input(emitIpv4({ src: B, dst: A, protocol: 1, payload: bad }))
  input(emitIpv4({ src: B, dst: A, protocol: 1, payload: new Uint8Array(4) }))
  t.same(icmp.stats().drops, { 'unhandled-type': 2, 'bad-checksum': 1, short: 1 })
  t.equal(path.exceptions, 0)
  icmp.deliver(Msg.from(new Uint8Array(8)), 1)
  t.equal(icmp.drops['from-above'], 1)
  t.same(icmp.extraStats(), { echoAnswered: 0, echoRepliesIn: 1, errorsIn: 2, protocolUnreachables: 0 })
})

t.test('sendEcho builds a valid request towards nextHop', async t => {
  const { icmp, out } = icmpPath()
  icmp.sendEcho(B, 5, 6, 10)
  icmp.path!.flush()
  t.equal(out.length, 1)
  t.equal(out[0]!.nextHop, B)
  t.match(parseIcmp(out[0]!.buf, out[0]!.off, out[0]!.end), { type: 8, rest: 0x00050006 })
  t.equal(get16(out[0]!.buf, out[0]!.off + ICMP.ID), 5)
  t.equal(icmp.originated, 1)
})
