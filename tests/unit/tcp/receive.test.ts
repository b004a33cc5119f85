import t from 'tap'
import { Msg } from '../../../core/msg.js'
import { emitTcp } from '../../../stages/tcp/segment.js'
import { Tcb } from '../../../stages/tcp/tcb.js'
import {
  ACK, bytes, deliver, expectSent, FIN, ISS, LOCAL_PORT, newTcb, PEER_ISS, PSH, readAll, REMOTE_PORT, SYN, tcbEstablished, TestHost,
} from '../../helpers/tcp-harness.js'

const P = PEER_ISS + 1
const SACK_OK = { mss: 1460, sackPermitted: true }

t.test('delayed ACK: one segment waits 40 ms; the second full-sized segment is ACKed at once', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(100) })
  expectSent(t, host, [])
  host.advance(39)
  expectSent(t, host, [])
  host.advance(1)
  expectSent(t, host, [{ flags: ACK, seq: ISS + 1, ack: P + 100 }], 'delayed ACK after 40 ms')
  deliver(host, tcb, { seq: P + 100, ack: ISS + 1, payload: bytes(1460) })
  expectSent(t, host, [])
  deliver(host, tcb, { seq: P + 1560, ack: ISS + 1, payload: bytes(1460) })
  expectSent(t, host, [{ flags: ACK, ack: P + 3020 }], 'every second full-sized segment')
  t.equal(tcb.counters.delayedAcks, 1)
  t.same(readAll(tcb).subarray(0, 100), bytes(100))
})

t.test('delayedAckMs 0 ACKs every segment', async t => {
  const { host, tcb } = tcbEstablished({ delayedAckMs: 0 })
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(10) })
  expectSent(t, host, [{ flags: ACK, ack: P + 10 }])
})

t.test('out-of-order segments: immediate duplicate ACKs with SACK blocks, most recent first', async t => {
  const { host, tcb } = tcbEstablished({}, SACK_OK)
  deliver(host, tcb, { seq: P + 100, ack: ISS + 1, payload: bytes(100, 100) })
  expectSent(t, host, [{ flags: ACK, ack: P, sack: [[P + 100, P + 200]] }])
  deliver(host, tcb, { seq: P + 300, ack: ISS + 1, payload: bytes(100, 300) })
  expectSent(t, host, [{ flags: ACK, ack: P, sack: [[P + 300, P + 400], [P + 100, P + 200]] }])
  t.equal(tcb.readableLength, 0, 'nothing readable while the first byte is missing')
  // The hole at the front fills: immediate ACK (RFC 5681 §4.2), the rest stays SACKed.
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(100, 0) })
  expectSent(t, host, [{ flags: ACK, ack: P + 200, sack: [[P + 300, P + 400]] }])
  // An overlapping segment covering the old data, the hole and part of the last block.
  deliver(host, tcb, { seq: P + 150, ack: ISS + 1, payload: bytes(200, 150) })
  expectSent(t, host, [{ flags: ACK, ack: P + 400, sack: [[P + 150, P + 200]] }], 'D-SACK reports the duplicate part')
  t.same(readAll(tcb), bytes(400), 'every byte once, in order')
  t.equal(tcb.counters.oooSegsIn, 2)
})

t.test('a wholly duplicate segment gets an ACK with a D-SACK block (RFC 2883)', async t => {
  const { host, tcb } = tcbEstablished({}, SACK_OK)
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(100) })
  host.advance(40)
  host.take()
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(100) })
  expectSent(t, host, [{ flags: ACK, ack: P + 100, sack: [[P, P + 100]] }])
  t.equal(host.drops['out-of-window'], 1)
  // A duplicate of out-of-order data is reported the same way.
  deliver(host, tcb, { seq: P + 200, ack: ISS + 1, payload: bytes(50) })
  host.take()
  deliver(host, tcb, { seq: P + 210, ack: ISS + 1, payload: bytes(20) })
  expectSent(t, host, [{ flags: ACK, ack: P + 100, sack: [[P + 210, P + 230], [P + 200, P + 250]] }])
})

t.test('without SACK no blocks are sent', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: P + 100, ack: ISS + 1, payload: bytes(100) })
  expectSent(t, host, [{ flags: ACK, ack: P, sack: null }])
})

t.test('data beyond the window is trimmed; a segment entirely beyond it is refused with an ACK', async t => {
  const { host, tcb } = tcbEstablished({ rcvBuf: 1000 })
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(1200) })
  t.equal(tcb.readableLength, 1000, 'only the window was taken')
  host.advance(40)
  expectSent(t, host, [{ flags: ACK, ack: P + 1000, window: 0 }])
  deliver(host, tcb, { seq: P + 1000, ack: ISS + 1, payload: bytes(10) })
  expectSent(t, host, [{ flags: ACK, ack: P + 1000, window: 0 }], 'zero window: not acceptable, ACK')
  // Reading opens the window: a window update goes out.
  readAll(tcb)
  expectSent(t, host, [{ flags: ACK, ack: P + 1000, window: 1000 }])
})

t.test('receiver SWS avoidance: the window opens only by min(buffer/2, MSS) steps', async t => {
  const { host, tcb } = tcbEstablished({ rcvBuf: 4000 })
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(4000) })
  expectSent(t, host, [{ flags: ACK, ack: P + 4000, window: 0 }])
  tcb.read(new Uint8Array(100))
  expectSent(t, host, [], 'reading 100 bytes sends no update')
  deliver(host, tcb, { seq: P + 4000, ack: ISS + 1 })
  expectSent(t, host, [])
  host.advance(100)
  tcb.read(new Uint8Array(2900))
  expectSent(t, host, [{ flags: ACK, window: 3000 }])
})

t.test('FIN out of order is held until the data before it arrives', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: P + 10, ack: ISS + 1, flags: FIN | ACK, payload: bytes(10, 10) })
  t.equal(tcb.state, 'ESTABLISHED')
  expectSent(t, host, [{ flags: ACK, ack: P }])
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(10) })
  t.equal(tcb.state, 'CLOSE-WAIT')
  expectSent(t, host, [{ flags: ACK, ack: P + 21 }])
  t.same(readAll(tcb), bytes(20))
})

t.test('sequence numbers wrap around 2^32 in both directions', async t => {
  const host = new TestHost()
  const iss = 0xffffff00
  const peerIss = 0xfffffff0
  const tcb = new Tcb(host, LOCAL_PORT, REMOTE_PORT, iss, { delayedAckMs: 0 })
  tcb.listen()
  deliver(host, tcb, { seq: peerIss, flags: SYN, options: { mss: 1000, sackPermitted: true } })
  expectSent(t, host, [{ flags: SYN | ACK, seq: iss, ack: peerIss + 1 }])
  deliver(host, tcb, { seq: peerIss + 1, ack: iss + 1 })
  t.equal(tcb.state, 'ESTABLISHED')
  // Peer data crossing 2^32, out of order first.
  deliver(host, tcb, { seq: (peerIss + 1 + 100) >>> 0, ack: iss + 1, payload: bytes(100, 100) })
  expectSent(t, host, [{ flags: ACK, ack: peerIss + 1, sack: [[(peerIss + 101) >>> 0, (peerIss + 201) >>> 0]] }])
  deliver(host, tcb, { seq: peerIss + 1, ack: iss + 1, payload: bytes(100) })
  expectSent(t, host, [{ flags: ACK, ack: (peerIss + 201) >>> 0 }])
  t.same(readAll(tcb), bytes(200))
  // Our data crossing 2^32: 300 bytes from 0xffffff01.
  tcb.write(bytes(300))
  const segs = expectSent(t, host, [{ flags: ACK | PSH, seq: iss + 1, len: 300 }])
  t.same(segs[0]!.payload, bytes(300))
  deliver(host, tcb, { seq: (peerIss + 201) >>> 0, ack: (iss + 301) >>> 0 })
  t.equal(tcb.sndUna, (iss + 301) >>> 0)
  t.equal(tcb.snapshot().sndBuffered, 0)
})

t.test('window scaling on both sides: scaled fields each way (RFC 7323 §2)', async t => {
  const { host, tcb } = newTcb({ rcvBuf: 262144 })
  tcb.listen()
  deliver(host, tcb, { seq: PEER_ISS, flags: SYN, options: { mss: 1460, wscale: 7 }, window: 65535 })
  expectSent(t, host, [{ flags: SYN | ACK, wscale: 3, window: 65535 }], 'SYN-ACK window is never scaled')
  t.equal(tcb.sndWnd, 65535, 'the SYN window is taken unscaled')
  deliver(host, tcb, { seq: P, ack: ISS + 1, window: 100 })
  t.equal(tcb.sndWnd, 12800, '100 << 7')
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(10) })
  host.advance(40)
  expectSent(t, host, [{ flags: ACK, window: (262144 - 10) >> 3 }])
})

t.test('window scaling offered only by the peer: none used, window field capped at 65535', async t => {
  const { host, tcb } = newTcb({ windowScaling: false, rcvBuf: 262144 })
  tcb.listen()
  deliver(host, tcb, { seq: PEER_ISS, flags: SYN, options: { mss: 1460, wscale: 7 } })
  expectSent(t, host, [{ flags: SYN | ACK, wscale: null }])
  deliver(host, tcb, { seq: P, ack: ISS + 1, window: 100 })
  t.equal(tcb.sndWnd, 100, 'not scaled')
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(10) })
  host.advance(40)
  expectSent(t, host, [{ flags: ACK, window: 65535 }])
})

t.test('window scaling offered only by us (active): the SYN-ACK has none, nothing is scaled', async t => {
  const { host, tcb } = newTcb()
  tcb.connect()
  expectSent(t, host, [{ flags: SYN, wscale: 3 }])
  deliver(host, tcb, { seq: PEER_ISS, ack: ISS + 1, flags: SYN | ACK, options: { mss: 1460 }, window: 5000 })
  deliver(host, tcb, { seq: P, ack: ISS + 1, window: 100 })
  t.equal(tcb.sndWnd, 100)
  t.equal(tcb.rcvWscale, 0)
})

t.test('timestamps on both sides: TSecr echoes TS.Recent; PAWS drops an old TSval with an ACK', async t => {
  const { host, tcb } = tcbEstablished({}, { mss: 1460, ts: [1000, 0] })
  t.ok(tcb.tsOk)
  host.advance(5)
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(10), options: { ts: [1010, 0] } })
  host.advance(40)
  expectSent(t, host, [{ flags: ACK, ack: P + 10, ts: [45, 1010] }])
  // An old TSval: PAWS (RFC 7323 §5.3).
  deliver(host, tcb, { seq: P + 10, ack: ISS + 1, payload: bytes(10), options: { ts: [1005, 0] } })
  expectSent(t, host, [{ flags: ACK, ack: P + 10, ts: [45, 1010] }])
  t.equal(host.drops.paws, 1)
  t.equal(tcb.rcvNxt, P + 10)
  // Once negotiated, a segment without timestamps is dropped (RFC 7323 §3.2).
  deliver(host, tcb, { seq: P + 10, ack: ISS + 1, payload: bytes(10) })
  t.equal(host.drops['ts-missing'], 1)
  // TSval wrapping past 2^32 is newer, not older.
  deliver(host, tcb, { seq: P + 10, ack: ISS + 1, payload: bytes(10), options: { ts: [1010 + 0x7fffffff, 0] } })
  t.equal(tcb.rcvNxt, P + 20)
})

t.test('timestamps offered only by the peer: our SYN-ACK and segments carry none', async t => {
  const { host, tcb } = newTcb({ timestamps: false })
  tcb.listen()
  deliver(host, tcb, { seq: PEER_ISS, flags: SYN, options: { mss: 1460, ts: [7, 0] } })
  expectSent(t, host, [{ flags: SYN | ACK, ts: null }])
  deliver(host, tcb, { seq: P, ack: ISS + 1, options: { ts: [8, 0] } })
  t.notOk(tcb.tsOk)
  tcb.write(bytes(10))
  expectSent(t, host, [{ flags: ACK, ts: null, len: 10 }])
  t.equal(tcb.sndMss, 1460, 'no option space reserved')
})

t.test('timestamps offered only by us (active): none used', async t => {
  const { host, tcb } = newTcb()
  tcb.connect()
  expectSent(t, host, [{ flags: SYN, ts: [0, 0] }])
  deliver(host, tcb, { seq: PEER_ISS, ack: ISS + 1, flags: SYN | ACK, options: { mss: 1460 } })
  expectSent(t, host, [{ flags: ACK, ts: null }])
  t.notOk(tcb.tsOk)
})

t.test('a malformed option list does not stop the segment (counted)', async t => {
  const { host, tcb } = tcbEstablished()
  const seg = emitTcp({ srcPort: REMOTE_PORT, dstPort: LOCAL_PORT, seq: P, ack: ISS + 1, flags: ACK, window: 65535, rawOptions: Uint8Array.of(1, 1, 99, 0), payload: bytes(5) })
  tcb.input(Msg.from(seg))
  t.equal(tcb.readableLength, 5)
  t.equal(tcb.counters.badOptions, 1)
  host.take()
})

t.test('a peer sending 536-byte segments is ACKed every second segment too', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(536) })
  expectSent(t, host, [])
  deliver(host, tcb, { seq: P + 536, ack: ISS + 1, payload: bytes(536) })
  expectSent(t, host, [{ flags: ACK, ack: P + 1072 }])
  deliver(host, tcb, { seq: P + 1072, ack: ISS + 1, payload: bytes(100) })
  deliver(host, tcb, { seq: P + 1172, ack: ISS + 1, payload: bytes(100) })
  expectSent(t, host, [], 'small segments are not full-sized: delayed')
})

t.test('PAWS: TS.Recent goes stale after 24 idle days (RFC 7323 §5.5)', async t => {
  const { host, tcb } = tcbEstablished({}, { mss: 1460, ts: [1000, 0] })
  host.advance(25 * 24 * 3600 * 1000)
  host.take()
  deliver(host, tcb, { seq: P, ack: ISS + 1, payload: bytes(10), options: { ts: [500, 0] } })
  t.equal(tcb.rcvNxt, P + 10, 'an older TSval is accepted after the idle period')
  t.equal(host.drops.paws, undefined)
  t.equal(tcb.tsRecent, 500)
})
