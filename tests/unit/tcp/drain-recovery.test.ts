import t from 'tap'
import { ACK, bytes, deliver, expectSent, ISS, PEER_ISS, tcbEstablished } from '../../helpers/tcp-harness.js'

// Regressions found by tests/e2e/splice-random.test.ts: how a draining TCB (Scout splice
// step 3) recovers lost data, and a persist-timer corner of the sender.
const P = PEER_ISS + 1
const S = ISS + 1
const MSS = 1460
/** Beyond the stale receive window of a draining TCB: where forwarded segments arrive. */
const FAR = P + 400_000

t.test('draining: three duplicate ACKs beyond the stale window trigger fast retransmit (no RTO wait)', async t => {
  const { host, tcb } = tcbEstablished()
  tcb.write(bytes(5 * MSS))
  t.equal(host.take().length, 5)
  tcb.startDrain()
  // The first segment was lost; the peer's pure ACKs carry sequence numbers of the
  // forwarded stream, far past our receive window: they still count as duplicates.
  for (let i = 0; i < 3; i++) deliver(host, tcb, { seq: FAR, ack: S })
  expectSent(t, host, [{ flags: ACK, seq: S, len: MSS }], 'fast retransmit of the hole, at once')
  t.equal(tcb.counters.fastRetransmits, 1)
  t.equal(tcb.counters.rtoTimeouts, 0)
})

t.test('draining: a data segment beyond the stale window is not a duplicate ACK', async t => {
  const { host, tcb } = tcbEstablished()
  tcb.write(bytes(5 * MSS))
  host.take()
  tcb.startDrain()
  for (let i = 0; i < 3; i++) deliver(host, tcb, { seq: FAR + i * 100, ack: S, payload: bytes(100) })
  expectSent(t, host, [], 'no retransmission, no ACK for the forwarded data')
  t.equal(tcb.counters.dupAcksIn, 0)
})

t.test('draining: a retransmission of data we already took is acknowledged', async t => {
  const { host, tcb } = tcbEstablished({ delayedAckMs: 0 })
  deliver(host, tcb, { seq: P, ack: S, payload: bytes(500) })
  tcb.read(new Uint8Array(500))
  host.take()
  tcb.write(bytes(100))
  host.take()
  tcb.startDrain()
  // Our ACK was lost; the peer sends the 500 bytes again. Nobody else can ACK them: the
  // forwarder chops data below the splice base.
  deliver(host, tcb, { seq: P, ack: S, payload: bytes(500) })
  expectSent(t, host, [{ flags: ACK, ack: P + 500, len: 0 }], 'ACK of the old data')
})

t.test('startDrain sends a delayed ACK still owed for data received before the splice', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: P, ack: S, payload: bytes(100) })
  expectSent(t, host, [], 'ACK delayed')
  tcb.startDrain()
  expectSent(t, host, [{ flags: ACK, ack: P + 100 }], 'sent as the drain starts')
  host.advance(1000)
  expectSent(t, host, [], 'and nothing more')
})

t.test('a persist timeout that finds nothing new to send leaves the RTO armed for data in flight', async t => {
  const { host, tcb } = tcbEstablished()
  // A small window (SWS avoidance, RFC 9293 §3.8.6.2.1): nothing goes out, the persist timer runs.
  deliver(host, tcb, { seq: P, ack: S, window: 100 })
  tcb.write(bytes(MSS))
  expectSent(t, host, [], 'held by sender SWS avoidance')
  // The window opens (from non-zero, so persist keeps running): the segment goes out.
  deliver(host, tcb, { seq: P, ack: S, window: 4000 })
  expectSent(t, host, [{ flags: ACK, seq: S, len: MSS }])
  // Persist fires with nothing new to send; the segment was lost: the RTO must recover it.
  host.advance(1100)
  host.take()
  host.advance(3000)
  const again = host.take()
  t.ok(again.some(s => s.seq === S && (s.payload?.length ?? 0) === MSS), 'the lost segment is retransmitted')
  t.ok(tcb.counters.rtoTimeouts >= 1, 'by the retransmission timer')
})

t.test('SACK negotiated but no blocks arrive (stripped by a splice): a partial ACK retransmits the next hole', async t => {
  const { host, tcb } = tcbEstablished({}, { mss: 1460, sackPermitted: true })
  t.ok(tcb.sackOk)
  tcb.write(bytes(6 * MSS))
  t.equal(host.take().length, 6)
  // Segments 1 and 3 were lost; the peer's duplicate ACKs carry no SACK blocks.
  for (let i = 0; i < 3; i++) deliver(host, tcb, { seq: P, ack: S })
  expectSent(t, host, [{ flags: ACK, seq: S, len: MSS }], 'fast retransmit of the first hole')
  // The retransmission fills the first hole: the ACK stops at the second (a partial ACK).
  deliver(host, tcb, { seq: P, ack: S + 2 * MSS })
  const out = host.take()
  t.ok(out.some(s => s.seq === S + 2 * MSS && (s.payload?.length ?? 0) === MSS), 'the second hole goes out at once')
  t.equal(tcb.counters.rtoTimeouts, 0)
})
