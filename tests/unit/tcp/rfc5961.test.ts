import t from 'tap'
import { ACK, deliver, expectSent, ISS, PEER_ISS, RST, SYN, tcbEstablished } from '../../helpers/tcp-harness.js'

t.test('ESTABLISHED + RST with SEG.SEQ == RCV.NXT -> CLOSED (reset)', async t => {
  const { host, tcb } = tcbEstablished()
  let err = ''
  tcb.events = { error: r => { err = r } }
  deliver(host, tcb, { seq: PEER_ISS + 1, flags: RST })
  t.equal(tcb.state, 'CLOSED')
  t.equal(err, 'reset')
  expectSent(t, host, [])
})

t.test('ESTABLISHED + in-window RST (not exact) -> challenge ACK, state kept (RFC 5961 §3.2)', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: PEER_ISS + 100, flags: RST })
  t.equal(tcb.state, 'ESTABLISHED')
  expectSent(t, host, [{ flags: ACK, seq: ISS + 1, ack: PEER_ISS + 1 }])
  t.equal(host.drops['rst-in-window'], 1)
  t.equal(tcb.counters.challengeAcks, 1)
})

t.test('ESTABLISHED + out-of-window RST -> dropped silently', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: PEER_ISS + 1 + 70000, flags: RST })
  deliver(host, tcb, { seq: PEER_ISS - 10, flags: RST })
  t.equal(tcb.state, 'ESTABLISHED')
  expectSent(t, host, [])
  t.equal(host.drops['rst-out-of-window'], 2)
})

t.test('ESTABLISHED + SYN (in window or exact) -> challenge ACK, never a reset (RFC 5961 §4.2)', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: PEER_ISS + 1, flags: SYN })
  expectSent(t, host, [{ flags: ACK, seq: ISS + 1, ack: PEER_ISS + 1 }])
  deliver(host, tcb, { seq: PEER_ISS + 500, flags: SYN | ACK, ack: ISS + 1 })
  expectSent(t, host, [{ flags: ACK, seq: ISS + 1, ack: PEER_ISS + 1 }])
  t.equal(tcb.state, 'ESTABLISHED')
  t.equal(host.drops['syn-in-window'], 2)
})

t.test('ACK of unsent data is dropped and answered with an ACK (RFC 9293 §3.10.7.4, RFC 5961 §5.2)', async t => {
  const { host, tcb } = tcbEstablished()
  tcb.write(new Uint8Array(10))
  host.take()
  deliver(host, tcb, { seq: PEER_ISS + 1, ack: ISS + 1 + 11, payload: new Uint8Array(5) })
  expectSent(t, host, [{ flags: ACK, seq: ISS + 11, ack: PEER_ISS + 1 }])
  t.equal(host.drops['ack-unsent'], 1)
  t.equal(tcb.sndUna, ISS + 1, 'SND.UNA unchanged')
  t.equal(tcb.rcvNxt, PEER_ISS + 1, 'data on the bad segment not taken')
})

t.test('ACK older than SND.UNA - MAX.SND.WND is dropped with a challenge ACK', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: PEER_ISS + 1, ack: ISS + 1 - 70000 })
  expectSent(t, host, [{ flags: ACK, seq: ISS + 1, ack: PEER_ISS + 1 }])
  t.equal(host.drops['ack-too-old'], 1)
  // An old but plausible ACK (within MAX.SND.WND) is fine: treated as a duplicate.
  deliver(host, tcb, { seq: PEER_ISS + 1, ack: ISS + 1 - 1000 })
  expectSent(t, host, [])
})

t.test('challenge ACKs are rate-limited per connection (RFC 5961 §7)', async t => {
  const { host, tcb } = tcbEstablished({ challengeAckLimit: 3 })
  for (let i = 0; i < 5; i++) deliver(host, tcb, { seq: PEER_ISS + 100 + i, flags: RST }, 10 + i)
  expectSent(t, host, [{ flags: ACK }, { flags: ACK }, { flags: ACK }], 'three of five answered')
  t.equal(tcb.counters.challengeAcksLimited, 2)
  deliver(host, tcb, { seq: PEER_ISS + 100, flags: RST }, 1010)
  expectSent(t, host, [{ flags: ACK }], 'a new second, a new budget')
})

t.test('SYN with a bad ACK in SYN-RECEIVED... and a segment without ACK is dropped', async t => {
  const { host, tcb } = tcbEstablished()
  deliver(host, tcb, { seq: PEER_ISS + 1, flags: 0, payload: new Uint8Array(3) })
  expectSent(t, host, [])
  t.equal(host.drops['no-ack'], 1)
  t.equal(tcb.rcvNxt, PEER_ISS + 1)
})
