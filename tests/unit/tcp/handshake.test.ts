import t from 'tap'
import {
  ACK, deliver, expectSent, FIN, ISS, LINUX_SYN_OPTS, newTcb, PEER_ISS, RST, SYN, tcbEstablished, tcbSynReceived,
} from '../../helpers/tcp-harness.js'

t.test('LISTEN + SYN -> SYN-RECEIVED, SYN-ACK carries our options; ACK -> ESTABLISHED', async t => {
  const { host, tcb } = newTcb({ rcvBuf: 262144 })
  tcb.listen()
  deliver(host, tcb, { seq: PEER_ISS, flags: SYN, options: LINUX_SYN_OPTS })
  t.equal(tcb.state, 'SYN-RECEIVED')
  expectSent(t, host, [{ flags: SYN | ACK, seq: ISS, ack: PEER_ISS + 1, mss: 1460, wscale: 3, sackPermitted: true, ts: [0, 7777] }])
  deliver(host, tcb, { seq: PEER_ISS + 1, ack: ISS + 1, options: { ts: [7778, 0] } }, 10)
  t.equal(tcb.state, 'ESTABLISHED')
  t.equal(tcb.sndWscale, 7)
  t.equal(tcb.rcvWscale, 3)
  t.ok(tcb.sackOk && tcb.tsOk)
  t.equal(tcb.sndMss, 1460 - 12, 'MSS minus the timestamps option')
  t.same(tcb.trace, ['CLOSED -> LISTEN (passive OPEN)', 'LISTEN -> SYN-RECEIVED (SYN received in LISTEN)', 'SYN-RECEIVED -> ESTABLISHED (SYN acked)'])
  expectSent(t, host, [], 'nothing more')
})

t.test('SYN-ACK offers only what the SYN offered', async t => {
  const { host, tcb } = newTcb()
  tcb.listen()
  deliver(host, tcb, { seq: PEER_ISS, flags: SYN, options: { mss: 1000 } })
  expectSent(t, host, [{ flags: SYN | ACK, mss: 1460, wscale: null, sackPermitted: false, ts: null }])
  t.equal(tcb.sndMss, 1000)
  t.notOk(tcb.sackOk || tcb.tsOk)
})

t.test('no MSS option: the peer MSS defaults to 536 (RFC 9293 §3.7.1)', async t => {
  const { tcb } = tcbSynReceived({}, {})
  t.equal(tcb.peerMss, 536)
  t.equal(tcb.sndMss, 536)
})

t.test('LISTEN: RST ignored, ACK answered with RST, non-SYN dropped', async t => {
  const { host, tcb } = newTcb()
  tcb.listen()
  deliver(host, tcb, { seq: 1, flags: RST })
  expectSent(t, host, [])
  deliver(host, tcb, { seq: 1, ack: 4242, flags: ACK })
  expectSent(t, host, [{ flags: RST, seq: 4242 }])
  deliver(host, tcb, { seq: 1, flags: FIN })
  expectSent(t, host, [])
  t.equal(tcb.state, 'LISTEN')
  t.equal(host.drops['listen-not-syn'], 3)
})

t.test('active open: SYN, SYN-ACK -> ESTABLISHED with an ACK', async t => {
  const { host, tcb } = newTcb()
  tcb.connect()
  t.equal(tcb.state, 'SYN-SENT')
  expectSent(t, host, [{ flags: SYN, seq: ISS, ack: 0, mss: 1460, wscale: 3, sackPermitted: true, ts: [0, 0] }])
  deliver(host, tcb, { seq: PEER_ISS, ack: ISS + 1, flags: SYN | ACK, options: { ...LINUX_SYN_OPTS, ts: [9000, 0] } }, 30)
  t.equal(tcb.state, 'ESTABLISHED')
  expectSent(t, host, [{ flags: ACK, seq: ISS + 1, ack: PEER_ISS + 1, ts: [30, 9000] }])
  t.equal(tcb.srtt, 30, 'RTT sampled from the TS echo')
})

t.test('active open without options on the SYN-ACK: no scaling, SACK or timestamps', async t => {
  const { host, tcb } = newTcb()
  tcb.connect()
  host.take()
  deliver(host, tcb, { seq: PEER_ISS, ack: ISS + 1, flags: SYN | ACK, options: { mss: 1400 } }, 20)
  t.equal(tcb.state, 'ESTABLISHED')
  t.equal(tcb.rcvWscale, 0)
  t.equal(tcb.sndWscale, 0)
  t.notOk(tcb.tsOk)
  t.equal(tcb.sndMss, 1400)
  t.equal(tcb.srtt, 20, 'RTT timed on the SYN without timestamps')
  expectSent(t, host, [{ flags: ACK, ts: null }])
})

t.test('simultaneous open: SYN-SENT + SYN -> SYN-RECEIVED, SYN-ACK with the same ISS; ACK -> ESTABLISHED', async t => {
  const { host, tcb } = newTcb()
  tcb.connect()
  host.take()
  deliver(host, tcb, { seq: PEER_ISS, flags: SYN, options: { mss: 1460 } })
  t.equal(tcb.state, 'SYN-RECEIVED')
  expectSent(t, host, [{ flags: SYN | ACK, seq: ISS, ack: PEER_ISS + 1 }])
  // The peer's SYN-ACK (RFC 9293 figure 8 line 6): it acks our SYN -> ESTABLISHED, ACK.
  deliver(host, tcb, { seq: PEER_ISS, ack: ISS + 1, flags: SYN | ACK })
  t.equal(tcb.state, 'ESTABLISHED')
  expectSent(t, host, [{ flags: ACK, seq: ISS + 1, ack: PEER_ISS + 1 }])
  t.match(tcb.trace.join('\n'), /SYN-SENT -> SYN-RECEIVED \(SYN received in SYN-SENT \(simultaneous open\)\)/)
  // The peer's ACK (to our SYN-ACK) then changes nothing.
  deliver(host, tcb, { seq: PEER_ISS + 1, ack: ISS + 1, flags: ACK })
  t.equal(tcb.state, 'ESTABLISHED')
  expectSent(t, host, [])
})

t.test('SYN-SENT with a bad ACK: RST <SEQ=SEG.ACK>, state kept; bad ACK with RST: dropped silently', async t => {
  const { host, tcb } = newTcb()
  tcb.connect()
  host.take()
  deliver(host, tcb, { seq: PEER_ISS, ack: ISS + 77, flags: SYN | ACK })
  expectSent(t, host, [{ flags: RST, seq: ISS + 77 }])
  t.equal(tcb.state, 'SYN-SENT')
  deliver(host, tcb, { seq: PEER_ISS, ack: ISS, flags: SYN | ACK })
  expectSent(t, host, [{ flags: RST, seq: ISS }], 'ACK == ISS is bad too')
  deliver(host, tcb, { seq: PEER_ISS, ack: ISS + 77, flags: RST | ACK })
  expectSent(t, host, [])
  t.equal(tcb.state, 'SYN-SENT')
  t.equal(host.drops['syn-sent-bad-ack'], 3)
})

t.test('SYN-SENT + RST with an acceptable ACK -> CLOSED (refused); RST without ACK ignored', async t => {
  const { host, tcb } = newTcb()
  let err = ''
  tcb.events = { error: r => { err = r } }
  tcb.connect()
  host.take()
  deliver(host, tcb, { seq: 0, flags: RST })
  t.equal(tcb.state, 'SYN-SENT', 'RST without ACK is dropped')
  deliver(host, tcb, { seq: 0, ack: ISS + 1, flags: RST | ACK })
  t.equal(tcb.state, 'CLOSED')
  t.equal(err, 'refused')
  expectSent(t, host, [])
})

t.test('SYN retransmission backs off and gives up after synRetries', async t => {
  const { host, tcb } = newTcb({ synRetries: 2 })
  let err = ''
  tcb.events = { error: r => { err = r } }
  tcb.connect()
  expectSent(t, host, [{ flags: SYN, seq: ISS }])
  host.advanceTo(999)
  expectSent(t, host, [])
  host.advanceTo(1000)
  expectSent(t, host, [{ flags: SYN, seq: ISS }], 'first retransmission at 1 s')
  host.advanceTo(2999)
  expectSent(t, host, [])
  host.advanceTo(3000)
  expectSent(t, host, [{ flags: SYN, seq: ISS }], 'second at +2 s')
  host.advanceTo(7000)
  t.equal(tcb.state, 'CLOSED')
  t.equal(err, 'timeout')
})

t.test('simultaneous open between two TCBs: both reach ESTABLISHED with the same ISNs', async t => {
  const { Tcb } = await import('../../../stages/tcp/tcb.js')
  const { TestHost } = await import('../../helpers/tcp-harness.js')
  const { Msg } = await import('../../../core/msg.js')
  const ha = new TestHost()
  const hb = new TestHost()
  const a = new Tcb(ha, 1000, 2000, 111)
  const b = new Tcb(hb, 2000, 1000, 999)
  a.connect()
  b.connect()
  const { emitTcp } = await import('../../../stages/tcp/segment.js')
  for (let i = 0; i < 5; i++) {
    for (const r of ha.take()) b.input(Msg.from(emitTcp(r)))
    for (const r of hb.take()) a.input(Msg.from(emitTcp(r)))
  }
  t.equal(a.state, 'ESTABLISHED')
  t.equal(b.state, 'ESTABLISHED')
  t.equal(a.sndUna, 112)
  t.equal(b.rcvNxt, 112)
  t.ok(a.tsOk && a.sackOk && a.sndWscale === b.rcvWscale)
})

t.test('SYN-RECEIVED: a retransmitted SYN gets the SYN-ACK again; the SYN-ACK is retransmitted on RTO', async t => {
  const { host, tcb } = tcbSynReceived()
  deliver(host, tcb, { seq: PEER_ISS, flags: SYN, options: { mss: 1460 } })
  expectSent(t, host, [{ flags: SYN | ACK, seq: ISS, ack: PEER_ISS + 1 }])
  host.advanceTo(1000)
  expectSent(t, host, [{ flags: SYN | ACK, seq: ISS, ack: PEER_ISS + 1 }])
})

t.test('SYN-RECEIVED: an ACK not covering our SYN gets a RST', async t => {
  const { host, tcb } = tcbSynReceived()
  deliver(host, tcb, { seq: PEER_ISS + 1, ack: ISS + 5, flags: ACK })
  expectSent(t, host, [{ flags: RST, seq: ISS + 5 }])
  t.equal(tcb.state, 'SYN-RECEIVED')
})

t.test('SYN-RECEIVED (passive) + exact RST -> CLOSED quietly', async t => {
  const { host, tcb } = tcbSynReceived()
  let err = ''
  tcb.events = { error: r => { err = r } }
  deliver(host, tcb, { seq: PEER_ISS + 1, flags: RST })
  t.equal(tcb.state, 'CLOSED')
  t.equal(err, '', 'no error for an embryonic passive connection')
})

t.test('close() in SYN-RECEIVED is queued until ESTABLISHED, then FIN', async t => {
  const { host, tcb } = tcbSynReceived()
  tcb.close()
  t.equal(tcb.state, 'SYN-RECEIVED')
  deliver(host, tcb, { seq: PEER_ISS + 1, ack: ISS + 1 })
  t.equal(tcb.state, 'FIN-WAIT-1')
  expectSent(t, host, [{ flags: FIN | ACK, seq: ISS + 1, ack: PEER_ISS + 1 }])
})

t.test('CLOSED answers segments with RST', async t => {
  const { host, tcb } = newTcb()
  deliver(host, tcb, { seq: 10, ack: 99, flags: ACK })
  expectSent(t, host, [{ flags: RST, seq: 99 }])
  deliver(host, tcb, { seq: 10, flags: SYN })
  expectSent(t, host, [{ flags: RST | ACK, seq: 0, ack: 11 }])
  deliver(host, tcb, { seq: 10, flags: RST })
  expectSent(t, host, [])
})

t.test('ESTABLISHED fixture', async t => {
  const { tcb } = tcbEstablished()
  t.equal(tcb.state, 'ESTABLISHED')
  t.equal(tcb.sndUna, ISS + 1)
  t.equal(tcb.rcvNxt, PEER_ISS + 1)
})

t.test('state changes are published on diagnostics_channel pathsplice:tcp:state', async t => {
  const dc = await import('node:diagnostics_channel')
  const seen: string[] = []
  const fn = (m: unknown): void => {
    const e = m as { from: string; to: string; why: string }
    seen.push(`${e.from} -> ${e.to}`)
  }
  dc.subscribe('pathsplice:tcp:state', fn)
  t.teardown(() => dc.unsubscribe('pathsplice:tcp:state', fn))
  const { tcb } = newTcb()
  tcb.connect()
  t.same(seen, ['CLOSED -> SYN-SENT'])
})
