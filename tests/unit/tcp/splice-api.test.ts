import t from 'tap'
import { Tcb } from '../../../stages/tcp/tcb.js'
import { ACK, bytes, deliver, expectSent, ISS, LOCAL_PORT, PEER_ISS, REMOTE_PORT, tcbEstablished, TestHost } from '../../helpers/tcp-harness.js'

const P = PEER_ISS + 1
const S = ISS + 1
const MSS = 1460

t.test('snapshot exposes what splicing reads', async t => {
  const { host, tcb } = tcbEstablished({}, { mss: 1400, sackPermitted: true, wscale: 5, ts: [77, 0] })
  tcb.write(bytes(3000))
  deliver(host, tcb, { seq: P, ack: S, payload: bytes(10), options: { ts: [80, tcb.tsLastSent] } })
  const s = tcb.snapshot()
  t.match(s, {
    state: 'ESTABLISHED', localPort: LOCAL_PORT, remotePort: REMOTE_PORT, iss: ISS, irs: PEER_ISS,
    sndUna: S, sndNxt: S + 2 * 1388, sndMax: S + 2 * 1388, rcvNxt: P + 10, sndBuffered: 3000, sndInFlight: 2 * 1388, rcvBuffered: 10,
    peerMss: 1400, sndMss: 1388, sndWscale: 5, rcvWscale: 3, sackOk: true, tsOk: true, tsRecent: 80, draining: false, drained: false,
  })
  t.equal(s.tsLastSent, tcb.tsLastSent)
  t.equal(s.rcvAdv, (s.rcvNxt + s.rcvWnd) >>> 0)
})

t.test('drain mode (Scout splice step 3): no ACK for new data, ACKs beyond SND.MAX accepted, retransmits until drained', async t => {
  const { host, tcb } = tcbEstablished()
  let drained = 0
  tcb.events = { drained: () => drained++ }
  tcb.write(bytes(3000))
  t.equal(host.take().length, 2, 'two segments out (Nagle holds the 80-byte tail)')
  tcb.startDrain()
  t.ok(tcb.draining)
  // The forwarded data follows the tail: held back, it would be a hole at the receiver.
  expectSent(t, host, [{ flags: ACK, seq: S + 2 * MSS, len: 80 }], 'draining, Nagle no longer holds the tail')
  t.equal(tcb.write(bytes(10)), 0, 'no new writes while draining')
  // New data from the peer is neither acknowledged nor delivered (FWD forwards it).
  deliver(host, tcb, { seq: P, ack: S, payload: bytes(100) })
  expectSent(t, host, [], 'no ACK')
  t.equal(tcb.rcvNxt, P)
  t.equal(tcb.readableLength, 0)
  host.advance(1000)
  expectSent(t, host, [{ flags: ACK, seq: S, len: MSS }], 'what is buffered is retransmitted')
  // The peer ACKs our 3000 bytes and 500 the forwarder sent beyond them: accepted.
  deliver(host, tcb, { seq: P, ack: S + 2 * MSS })
  expectSent(t, host, [{ flags: ACK, seq: S + 2 * MSS, len: 80 }], 'the rest of the buffer goes out too')
  t.equal(drained, 0)
  deliver(host, tcb, { seq: P, ack: S + 3500 })
  t.equal(drained, 1, 'drained once everything buffered was acknowledged')
  t.ok(tcb.drained)
  t.equal(tcb.snapshot().sndBuffered, 0)
  host.advance(10000)
  expectSent(t, host, [], 'timers stopped')
})

t.test('drain mode sends what is buffered as the peer window allows, not the congestion window', async t => {
  const { host, tcb } = tcbEstablished()
  tcb.write(bytes(30_000))
  t.equal(host.take().length, 10, 'the initial window: ten segments (RFC 6928)')
  t.equal(tcb.snapshot().cwnd, 10 * MSS)
  tcb.startDrain()
  // The forwarder sends the stream's rest unpaced by this TCB: a buffered head held back
  // by cwnd would be a hole, and the receiver's duplicate ACKs for the forwarded data
  // beyond it would look like loss to this TCB.
  const rest = host.take()
  t.equal(rest.length, Math.ceil((30_000 - 10 * MSS) / MSS), 'the other 20 kB at once')
  t.equal(rest.reduce((n, r) => n + (r.payload?.length ?? 0), 0), 30_000 - 10 * MSS)
  t.equal(tcb.snapshot().cwnd, 10 * MSS, 'cwnd itself unchanged')
  // The peer's window still limits: after an RTO, retransmissions keep the cwnd pace.
  host.advance(1000)
  expectSent(t, host, [{ flags: ACK, seq: S, len: MSS }], 'an RTO retransmits one segment (cwnd = 1 SMSS)')
})

t.test('a paced drain keeps the congestion window (an MSOCKS salvage can be megabytes)', async t => {
  const { host, tcb } = tcbEstablished()
  tcb.write(bytes(30_000))
  t.equal(host.take().length, 10, 'the initial window')
  tcb.startDrain({ paced: true })
  expectSent(t, host, [], 'nothing beyond cwnd')
  deliver(host, tcb, { seq: P, ack: S + 2 * MSS })
  t.equal(host.take().length, 3, 'slow start: one ACK of two segments (cwnd + 1 SMSS, RFC 5681), three more out')
})

t.test('drain mode respects the peer window', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: P, ack: S, window: 5000 })
  tcb.write(bytes(30_000))
  host.take()
  tcb.startDrain()
  const inFlight = tcb.snapshot().sndInFlight
  t.ok(inFlight <= 5000 && inFlight > 5000 - MSS, `no more than the 5000 bytes the peer offers (${inFlight} in flight)`)
})

t.test('drain mode takes ACKs far past SND.MAX (the forwarder ran ahead) but rejects absurd ones', async t => {
  const { host, tcb } = tcbEstablished()
  tcb.write(bytes(100))
  host.take()
  tcb.startDrain()
  deliver(host, tcb, { seq: P, ack: (S + 100 + 0x40000000) >>> 0 })
  t.equal(host.drops['ack-unsent'], 1, 'an ACK 2^30 past what was sent is refused')
  t.notOk(tcb.drained)
  expectSent(t, host, [], 'and no challenge ACK goes out while draining')
  deliver(host, tcb, { seq: P, ack: S + 100 + 5_000_000 })
  t.ok(tcb.drained, 'an ACK 5 MB past SND.MAX (data forwarded after our stream) drains it')
})

t.test('drain with nothing buffered is drained at once', async t => {
  const { tcb } = tcbEstablished()
  let drained = false
  tcb.events = { drained: () => { drained = true } }
  tcb.startDrain()
  t.ok(drained && tcb.drained)
})

t.test('Tcb.established (unsplice): ESTABLISHED from seq/ack/windows/options, slow start from IW', async t => {
  const host = new TestHost()
  const tcb = Tcb.established(host, {
    localPort: 8080, remotePort: 40001, sndNxt: 0xfffffff0, rcvNxt: 1234, sndWnd: 20000, rcvWnd: 30000,
    peerMss: 1460, sndWscale: 2, rcvWscale: 3, sackOk: true, tsOk: true, tsRecent: 999, tsOffset: 5000,
  })
  t.equal(tcb.state, 'ESTABLISHED')
  t.equal(tcb.cwnd, 10 * 1448)
  t.equal(tcb.ssthresh, 0x7fffffff, 'slow start')
  tcb.write(bytes(100))
  expectSent(t, host, [{ flags: ACK, seq: 0xfffffff0, ack: 1234, len: 100, window: 262144 >> 3, ts: [5000, 999] }])
  deliver(host, tcb, { srcPort: 40001, dstPort: 8080, seq: 1234, ack: (0xfffffff0 + 100) >>> 0, window: 100, options: { ts: [1000, 5000] } })
  t.equal(tcb.sndUna, (0xfffffff0 + 100) >>> 0)
  t.equal(tcb.sndWnd, 400, 'peer window scaled by 2')
  const small = Tcb.established(new TestHost(), {
    localPort: 1, remotePort: 2, sndNxt: 1, rcvNxt: 1, sndWnd: 1000, rcvWnd: 30000, peerMss: 536, sndWscale: -1, rcvWscale: 3, sackOk: false, tsOk: false,
  }, { rcvBuf: 20000 })
  t.equal(small.rcvWscale, 0, 'scaling needs both shifts')
  t.equal(small.snapshot().rcvWnd, 30000, 'the window offered before is honoured even above the buffer')
})

t.test('Tcb.established: the first loss after an unsplice is fast-retransmitted (RFC 6582 recover starts at the ISS)', async t => {
  // Found by tests/e2e/proxy-unsplice.test.ts seed 1003: with "recover" at SND.UNA the
  // rebuilt TCB ignored three duplicate ACKs and waited for its first RTO (1 s).
  const host = new TestHost()
  const tcb = Tcb.established(host, {
    localPort: 8080, remotePort: 40001, sndNxt: 5000, rcvNxt: 1234, sndWnd: 60_000, rcvWnd: 30000,
    peerMss: MSS, sndWscale: 0, rcvWscale: 0, sackOk: false, tsOk: false,
  })
  tcb.write(bytes(5 * MSS))
  t.equal(host.take().length, 5, 'five segments out (initial window)')
  for (let i = 0; i < 3; i++) deliver(host, tcb, { srcPort: 40001, dstPort: 8080, seq: 1234, ack: 5000, window: 60_000 })
  expectSent(t, host, [{ flags: ACK, seq: 5000, len: MSS }], 'fast retransmit of the first segment')
  t.equal(tcb.counters.fastRetransmits, 1)
  t.equal(tcb.counters.rtoTimeouts, 0)
})

t.test('Tcb.established: the RTT estimate carried over from the old TCB sets the first RTO (not the initial 1 s)', async t => {
  const mk = (rtt: { srtt?: number; rttvar?: number }) => {
    const host = new TestHost()
    const tcb = Tcb.established(host, {
      localPort: 8080, remotePort: 40001, sndNxt: 5000, rcvNxt: 1234, sndWnd: 60_000, rcvWnd: 30000,
      peerMss: MSS, sndWscale: 0, rcvWscale: 0, sackOk: false, tsOk: false, ...rtt,
    }, { minRtoMs: 50 })
    tcb.write(bytes(MSS))
    host.take()
    return { host, tcb }
  }
  const seeded = mk({ srtt: 40, rttvar: 10 })
  t.equal(seeded.tcb.rto, 80, 'RTO = SRTT + 4 RTTVAR (RFC 6298 (2.3))')
  seeded.host.advanceTo(79)
  t.equal(seeded.host.take().length, 0, 'nothing before the RTO')
  seeded.host.advanceTo(80)
  expectSent(t, seeded.host, [{ flags: ACK, seq: 5000, len: MSS }], 'retransmitted at the carried-over RTO')
  const halfVar = mk({ srtt: 40 })
  t.equal(halfVar.tcb.rto, 120, 'RTTVAR defaults to SRTT / 2 (RFC 6298 (2.2))')
  const none = mk({})
  t.equal(none.tcb.rto, 1000, 'no estimate: the initial RTO')
  none.host.advanceTo(999)
  t.equal(none.host.take().length, 0)
})
