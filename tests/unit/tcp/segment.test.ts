import t from 'tap'
import { Msg } from '../../../core/msg.js'
import {
  checkSegment, emitTcp, fillTcpChecksum, formatFlags, parseTcp, tcpAck, tcpDstPort, tcpFlags, tcpHeaderLen, tcpSeq, tcpSrcPort, tcpWindow, TcpFlag, TcpSegmentView,
} from '../../../stages/tcp/segment.js'

const SRC = 0x0a000001
const DST = 0x0a000002

t.test('emit/parse round trip with options and payload, accessors agree', async t => {
  const r = { srcPort: 1234, dstPort: 80, seq: 0xfffffffe, ack: 7, flags: TcpFlag.SYN | TcpFlag.ACK, window: 512, options: { mss: 1460, sackPermitted: true, ts: [1, 2] as [number, number], wscale: 7, sack: [[10, 20]] as [number, number][] }, payload: Uint8Array.of(1, 2, 3) }
  const b = emitTcp(r, SRC, DST)
  const p = parseTcp(b)
  if (typeof p === 'string') throw new Error(p)
  t.match(p, { srcPort: 1234, dstPort: 80, seq: 0xfffffffe, ack: 7, flags: r.flags, window: 512, options: r.options })
  t.same([...p.payload!], [1, 2, 3])
  t.equal(tcpSrcPort(b, 0), 1234)
  t.equal(tcpDstPort(b, 0), 80)
  t.equal(tcpSeq(b, 0), 0xfffffffe)
  t.equal(tcpAck(b, 0), 7)
  t.equal(tcpFlags(b, 0), r.flags)
  t.equal(tcpWindow(b, 0), 512)
  t.equal(tcpHeaderLen(b, 0) % 4, 0)
  t.equal(formatFlags(r.flags), 'SYN|ACK')
  t.equal(formatFlags(0), '-')
})

t.test('checked parse: short header, bad data offset, bad checksum', async t => {
  const good = emitTcp({ srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TcpFlag.ACK, window: 5, payload: Uint8Array.of(9, 9) }, SRC, DST)
  t.equal(checkSegment(Msg.from(good), SRC, DST, true), null)
  t.equal(checkSegment(Msg.from(good.subarray(0, 19)), SRC, DST, true), 'short-header')
  const badOff = good.slice()
  badOff[12] = 4 << 4
  t.equal(checkSegment(Msg.from(badOff), SRC, DST, false), 'bad-data-offset')
  badOff[12] = 15 << 4
  t.equal(checkSegment(Msg.from(badOff), SRC, DST, false), 'bad-data-offset')
  const flipped = good.slice()
  flipped[21]! ^= 1
  t.equal(checkSegment(Msg.from(flipped), SRC, DST, true), 'bad-checksum')
  t.equal(checkSegment(Msg.from(flipped), SRC, DST, false), null, 'not verified when told so')
  t.equal(checkSegment(Msg.from(good), SRC, DST + 1, true), 'bad-checksum', 'pseudo-header covers the addresses')
  fillTcpChecksum(flipped, 0, flipped.length, SRC, DST)
  t.equal(checkSegment(Msg.from(flipped), SRC, DST, true), null)
  t.equal(parseTcp(good.subarray(0, 10)), 'short-header')
  t.equal(parseTcp(badOff.fill(0x20, 12, 13)), 'bad-data-offset')
  t.throws(() => emitTcp({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0, window: 0, rawOptions: new Uint8Array(44) }), /exceed the 40 bytes/)
})

t.test('TcpSegmentView reads and writes fields in place, checked() validates', async t => {
  const b = emitTcp({ srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TcpFlag.ACK, window: 5, options: { ts: [1, 2] } }, SRC, DST)
  const m = Msg.from(b)
  const v = new TcpSegmentView()
  const r = TcpSegmentView.checked(v, m, SRC, DST, true)
  t.equal(r, v)
  t.match(v, { srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TcpFlag.ACK, window: 5, headerLen: 32 })
  v.srcPort = 10
  v.dstPort = 20
  v.seq = -1
  v.ack = 0x100000001
  v.flags = TcpFlag.FIN
  v.window = 9
  v.checksum = 0
  t.match(v, { srcPort: 10, dstPort: 20, seq: 0xffffffff, ack: 1, flags: TcpFlag.FIN, window: 9, checksum: 0 })
  t.equal(TcpSegmentView.checked(v, m, SRC, DST, true), 'bad-checksum')
})

t.test('the TCP stage lists every drop reason it can count', async t => {
  const { TCP_STAGE_DROP_REASONS } = await import('../../../stages/tcp/stage.js')
  for (const r of ['bad-checksum', 'wrong-ports', 'send-buffer-full', 'paws', 'rst-in-window', 'ack-unsent']) t.ok(TCP_STAGE_DROP_REASONS.includes(r as never), r)
})
