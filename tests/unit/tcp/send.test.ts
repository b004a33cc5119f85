import t from 'tap'
import {
  ACK, bytes, deliver, expectSent, FIN, ISS, newTcb, PEER_ISS, PSH, RST, SYN, tcbEstablished,
} from '../../helpers/tcp-harness.js'

const P = PEER_ISS + 1
const S = ISS + 1
const MSS = 1460
const SACK_OK = { mss: 1460, sackPermitted: true }

t.test('Nagle: a small segment waits for the ACK of the previous one; noDelay sends at once', async t => {
  const { host, tcb } = tcbEstablished()
  tcb.write(bytes(100))
  expectSent(t, host, [{ flags: ACK | PSH, seq: S, len: 100 }], 'nothing outstanding: sent')
  tcb.write(bytes(100))
  tcb.write(bytes(100))
  expectSent(t, host, [], 'held while 100 bytes are unacknowledged')
  deliver(host, tcb, { seq: P, ack: S + 100 })
  expectSent(t, host, [{ flags: ACK | PSH, seq: S + 100, len: 200 }], 'coalesced once ACKed')
  tcb.setNoDelay(true)
  tcb.write(bytes(10))
  expectSent(t, host, [{ seq: S + 300, len: 10 }], 'noDelay: sent with data outstanding')
})

t.test('full-sized segments are never held by Nagle', async t => {
  const { host, tcb } = tcbEstablished()
  tcb.write(bytes(100))
  host.take()
  tcb.write(bytes(3000))
  expectSent(t, host, [{ seq: S + 100, len: MSS }, { seq: S + 100 + MSS, len: MSS }], 'two full segments, 80 bytes held')
})

t.test('MSS: the peer\'s option, our clamp, and the timestamps option all bound a segment', async t => {
  {
    const { host, tcb } = tcbEstablished({ mss: 1000, noDelay: true }, { mss: 1460 })
    tcb.write(bytes(2500))
    expectSent(t, host, [{ len: 1000 }, { len: 1000 }, { len: 500 }], 'clamped to our MSS 1000')
  }
  {
    const { host, tcb } = tcbEstablished({ noDelay: true }, { mss: 536 })
    tcb.write(bytes(1000))
    expectSent(t, host, [{ len: 536 }, { len: 464 }], "the peer's 536")
  }
  {
    const { host, tcb } = tcbEstablished({ noDelay: true }, { mss: 1460, ts: [1, 0] })
    tcb.write(bytes(1500))
    expectSent(t, host, [{ len: 1448 }, { len: 52 }], 'minus 12 bytes of timestamps')
  }
  {
    const { host, tcb } = newTcb({ mss: 1200 })
    tcb.listen()
    deliver(host, tcb, { seq: PEER_ISS, flags: SYN, options: { mss: 1460 } })
    expectSent(t, host, [{ flags: SYN | ACK, mss: 1200 }], 'we advertise the clamped MSS')
  }
})

t.test('initial window of 10 segments (RFC 6928), slow start adds one MSS per ACK', async t => {
  const { host, tcb } = tcbEstablished({ delayedAckMs: 0 })
  tcb.write(bytes(20 * MSS))
  t.equal(host.take().length, 10)
  t.equal(tcb.cwnd, 10 * MSS)
  deliver(host, tcb, { seq: P, ack: S + MSS })
  t.equal(tcb.cwnd, 11 * MSS)
  t.equal(host.take().length, 2, 'one ACK releases two segments')
})

t.test('RTO: retransmission with exponential backoff, then give up with a RST (RFC 6298 §5)', async t => {
  const { host, tcb } = tcbEstablished({ maxRetransmits: 3 })
  let err = ''
  tcb.events = { error: r => { err = r } }
  tcb.write(bytes(100))
  expectSent(t, host, [{ seq: S, len: 100 }])
  host.advanceTo(999)
  expectSent(t, host, [])
  host.advanceTo(1000)
  expectSent(t, host, [{ seq: S, len: 100 }], 'first retransmission at RTO = 1 s')
  t.equal(tcb.cwnd, MSS, 'loss window: one segment')
  host.advanceTo(2999)
  expectSent(t, host, [])
  host.advanceTo(3000)
  expectSent(t, host, [{ seq: S, len: 100 }], 'then after 2 s')
  host.advanceTo(7000)
  expectSent(t, host, [{ seq: S, len: 100 }], 'then after 4 s')
  host.advanceTo(15000)
  expectSent(t, host, [{ flags: RST, seq: S + 100 }], 'after 8 s more: give up')
  t.equal(tcb.state, 'CLOSED')
  t.equal(err, 'timeout')
  t.equal(tcb.counters.rtoTimeouts, 3)
})

t.test('RTO from measured RTT: SRTT + 4 RTTVAR, floored at minRto (RFC 6298 §2)', async t => {
  const { host, tcb } = tcbEstablished({ minRtoMs: 200 })
  tcb.write(bytes(100))
  host.take()
  deliver(host, tcb, { seq: P, ack: S + 100 }, 100)
  t.equal(tcb.srtt, 100 * 0.125 + 0.001 * 0.875, 'second sample folded into SRTT')
  t.ok(tcb.rto >= 200)
})

t.test('fast retransmit after three duplicate ACKs, NewReno partial ACK (RFC 5681, 6582)', async t => {
  const { host, tcb } = tcbEstablished()
  tcb.write(bytes(5 * MSS))
  expectSent(t, host, [{ seq: S }, { seq: S + MSS }, { seq: S + 2 * MSS }, { seq: S + 3 * MSS }, { seq: S + 4 * MSS }])
  // Segments 1 and 3 were lost; 2, 4, 5 each produce a duplicate ACK.
  deliver(host, tcb, { seq: P, ack: S })
  deliver(host, tcb, { seq: P, ack: S })
  expectSent(t, host, [], 'two duplicates: nothing yet')
  deliver(host, tcb, { seq: P, ack: S })
  expectSent(t, host, [{ seq: S, len: MSS }], 'third duplicate: fast retransmit')
  t.ok(tcb.inRecovery)
  t.equal(tcb.ssthresh, Math.max((5 * MSS) >> 1, 2 * MSS))
  // Partial ACK (up to the second hole): retransmit the next hole at once.
  deliver(host, tcb, { seq: P, ack: S + 2 * MSS })
  expectSent(t, host, [{ seq: S + 2 * MSS, len: MSS }], 'partial ACK retransmits the next hole')
  t.ok(tcb.inRecovery)
  deliver(host, tcb, { seq: P, ack: S + 5 * MSS })
  t.notOk(tcb.inRecovery, 'full ACK ends recovery')
  t.equal(tcb.cwnd, Math.min(tcb.ssthresh, 2 * MSS), 'cwnd deflated to min(ssthresh, max(flight, MSS) + MSS)')
  t.equal(tcb.counters.fastRetransmits, 1)
})

t.test('SACK loss recovery retransmits every hole on the third duplicate (RFC 6675)', async t => {
  const { host, tcb } = tcbEstablished({}, SACK_OK)
  t.ok(tcb.sackOk)
  tcb.write(bytes(5 * MSS))
  t.equal(host.take().length, 5)
  const seg = (i: number) => S + i * MSS
  deliver(host, tcb, { seq: P, ack: S, options: { sack: [[seg(1), seg(2)]] } })
  deliver(host, tcb, { seq: P, ack: S, options: { sack: [[seg(3), seg(4)], [seg(1), seg(2)]] } })
  expectSent(t, host, [])
  deliver(host, tcb, { seq: P, ack: S, options: { sack: [[seg(3), seg(5)], [seg(1), seg(2)]] } })
  expectSent(t, host, [{ seq: seg(0), len: MSS }, { seq: seg(2), len: MSS }], 'both holes, nothing SACKed resent')
  t.equal(tcb.scoreboard.count, 2)
  deliver(host, tcb, { seq: P, ack: seg(5) })
  t.notOk(tcb.inRecovery)
  t.equal(tcb.scoreboard.count, 0)
})

t.test('zero window: persist timer probes with one byte, backs off, survives a lost probe', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: P, ack: S, window: 0 })
  tcb.write(bytes(100))
  expectSent(t, host, [], 'zero window: nothing sent')
  host.advance(1000)
  expectSent(t, host, [{ flags: ACK, seq: S, len: 1 }], 'first probe: one byte')
  deliver(host, tcb, { seq: P, ack: S, window: 0 })
  expectSent(t, host, [])
  host.advance(1999)
  expectSent(t, host, [])
  host.advance(1)
  expectSent(t, host, [{ seq: S, len: 1 }], 'second probe after 2 s (backoff)')
  // That probe is lost: no answer. The persist timer probes again.
  host.advance(4000)
  expectSent(t, host, [{ seq: S, len: 1 }], 'third probe after 4 s')
  t.equal(tcb.counters.windowProbes, 3)
  t.equal(tcb.state, 'ESTABLISHED', 'probing never times the connection out')
  deliver(host, tcb, { seq: P, ack: S, window: 1000 })
  expectSent(t, host, [{ seq: S, len: 100 }], 'window open: everything goes, from SND.UNA')
  deliver(host, tcb, { seq: P, ack: S + 100, window: 1000 })
  t.equal(tcb.snapshot().sndBuffered, 0)
})

t.test('sender SWS avoidance: a tiny window waits, then the override timer sends what fits', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: P, ack: S, window: 100 })
  tcb.write(bytes(5000))
  expectSent(t, host, [], '100 bytes is below half the largest window seen (65535): wait')
  host.advance(1000)
  expectSent(t, host, [{ seq: S, len: 100 }], 'the override timeout sends what fits')
})

t.test('FIN is sent after the data and retransmitted with it', async t => {
  const { host, tcb } = tcbEstablished()
  tcb.write(bytes(10))
  tcb.close()
  expectSent(t, host, [{ flags: ACK | PSH, seq: S, len: 10 }, { flags: FIN | ACK, seq: S + 10, len: 0 }])
  host.advance(1000)
  expectSent(t, host, [{ flags: ACK | FIN, seq: S, len: 10 }], 'go-back-N: data and FIN in one segment')
  deliver(host, tcb, { seq: P, ack: S + 11 })
  t.equal(tcb.state, 'FIN-WAIT-2')
})

t.test('path MTU drop (RFC 1191): smaller segments from now on, in-flight data resent at the new size', async t => {
  const { host, tcb } = tcbEstablished({ noDelay: true })
  tcb.write(bytes(2 * MSS))
  expectSent(t, host, [{ len: MSS }, { len: MSS }])
  t.notOk(tcb.setPathMtu(0), 'unknown MTU ignored')
  t.notOk(tcb.setPathMtu(1500), 'not smaller: ignored')
  t.ok(tcb.setPathMtu(1040))
  t.equal(tcb.sndMss, 1000)
  expectSent(t, host, [{ seq: S, len: 1000 }, { seq: S + 1000, len: 1000 }, { seq: S + 2000, len: 920 }])
  t.notOk(tcb.setPathMtu(1040), 'same MTU again: nothing to do')
})

t.test('keep-alive (RFC 1122 §4.2.3.6): probes after the idle time, answered probes keep it alive, unanswered ones end it', async t => {
  const { host, tcb } = tcbEstablished({ keepAliveMs: 10000, keepAliveIntervalMs: 1000, keepAliveProbes: 2 })
  tcb.setKeepAlive(10000)
  let err = ''
  tcb.events = { error: r => { err = r } }
  host.advance(5000)
  deliver(host, tcb, { seq: P, ack: S })
  host.advance(9999)
  expectSent(t, host, [], 'idle time restarted by the segment at 5 s')
  host.advance(1)
  expectSent(t, host, [{ flags: ACK, seq: S - 1, len: 0 }], 'probe: SND.NXT - 1')
  deliver(host, tcb, { seq: P, ack: S })
  host.advance(1000)
  expectSent(t, host, [], 'answered: back to idle')
  host.advance(9000)
  expectSent(t, host, [{ seq: S - 1 }])
  host.advance(1000)
  expectSent(t, host, [{ seq: S - 1 }])
  host.advance(1000)
  t.equal(err, 'timeout')
  expectSent(t, host, [{ flags: RST }])
  t.equal(tcb.counters.keepAliveProbes, 3)
  tcb.setKeepAlive(0)
})

t.test('limited transmit (RFC 3042): the first two duplicate ACKs each release one new segment', async t => {
  const { host, tcb } = tcbEstablished()
  tcb.write(bytes(20 * MSS))
  t.equal(host.take().length, 10, 'cwnd-limited at 10 segments')
  deliver(host, tcb, { seq: P, ack: S })
  expectSent(t, host, [{ seq: S + 10 * MSS, len: MSS }], 'first duplicate: one new segment')
  deliver(host, tcb, { seq: P, ack: S })
  expectSent(t, host, [{ seq: S + 11 * MSS, len: MSS }], 'second duplicate: one more')
  t.equal(tcb.cwnd, 10 * MSS, 'cwnd unchanged')
  deliver(host, tcb, { seq: P, ack: S })
  const out = host.take()
  t.equal(out[0]?.seq, S, 'third duplicate: fast retransmit of the first segment')
})
