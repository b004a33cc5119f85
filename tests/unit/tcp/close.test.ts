import t from 'tap'
import type { TcpState } from '../../../stages/tcp/tcb.js'
import { ACK, bytes, deliver, expectSent, FIN, ISS, PEER_ISS, RST, SYN, tcbEstablished, type TestHost } from '../../helpers/tcp-harness.js'
import type { Tcb } from '../../../stages/tcp/tcb.js'

const P = PEER_ISS + 1
const S = ISS + 1

type Fx = { host: TestHost; tcb: Tcb }

/** Fixtures for every synchronized state, each built from the previous like a packet trace. */
const fixtures: Record<string, () => Fx> = {
  'ESTABLISHED': () => tcbEstablished(),
  'FIN-WAIT-1': () => {
    const f = tcbEstablished()
    f.tcb.close()
    f.host.take()
    return f
  },
  'FIN-WAIT-2': () => {
    const f = fixtures['FIN-WAIT-1']!()
    deliver(f.host, f.tcb, { seq: P, ack: S + 1 })
    f.host.take()
    return f
  },
  'CLOSE-WAIT': () => {
    const f = tcbEstablished()
    deliver(f.host, f.tcb, { seq: P, ack: S, flags: FIN | ACK })
    f.host.take()
    return f
  },
  'LAST-ACK': () => {
    const f = fixtures['CLOSE-WAIT']!()
    f.tcb.close()
    f.host.take()
    return f
  },
  'CLOSING': () => {
    const f = fixtures['FIN-WAIT-1']!()
    deliver(f.host, f.tcb, { seq: P, ack: S, flags: FIN | ACK })
    f.host.take()
    return f
  },
  'TIME-WAIT': () => {
    const f = fixtures['FIN-WAIT-2']!()
    deliver(f.host, f.tcb, { seq: P, ack: S + 1, flags: FIN | ACK })
    f.host.take()
    return f
  },
}

for (const [name, make] of Object.entries(fixtures)) {
  t.test(`fixture ${name}`, async t => {
    t.equal(make().tcb.state, name as TcpState)
  })
}

t.test('ESTABLISHED + FIN -> CLOSE-WAIT (ACK at once); close -> LAST-ACK (FIN); ACK -> CLOSED', async t => {
  const { host, tcb } = tcbEstablished()
  let ended = false
  tcb.events = { end: () => { ended = true } }
  deliver(host, tcb, { seq: P, ack: S, flags: FIN | ACK, payload: bytes(5) })
  t.equal(tcb.state, 'CLOSE-WAIT')
  t.ok(ended && tcb.peerFinished)
  expectSent(t, host, [{ flags: ACK, seq: S, ack: P + 6 }])
  tcb.write(bytes(3))
  tcb.close()
  t.equal(tcb.state, 'LAST-ACK')
  expectSent(t, host, [{ flags: ACK, seq: S, ack: P + 6, len: 3 }, { flags: ACK | FIN, seq: S + 3, len: 0 }], 'data, then FIN')
  deliver(host, tcb, { seq: P + 6, ack: S + 4 })
  t.equal(tcb.state, 'CLOSED')
})

t.test('LAST-ACK retransmits its FIN on RTO', async t => {
  const { host, tcb } = fixtures['LAST-ACK']!()
  host.advance(1000)
  expectSent(t, host, [{ flags: FIN | ACK, seq: S }])
  host.advance(2000)
  expectSent(t, host, [{ flags: FIN | ACK, seq: S }])
  deliver(host, tcb, { seq: P + 1, ack: S + 1 })
  t.equal(tcb.state, 'CLOSED')
})

t.test('FIN-WAIT-1 + ACK of FIN -> FIN-WAIT-2; + FIN -> TIME-WAIT; 2 MSL -> CLOSED', async t => {
  const { host, tcb } = fixtures['FIN-WAIT-1']!()
  deliver(host, tcb, { seq: P, ack: S + 1 })
  t.equal(tcb.state, 'FIN-WAIT-2')
  deliver(host, tcb, { seq: P, ack: S + 1, flags: FIN | ACK }, 100)
  t.equal(tcb.state, 'TIME-WAIT')
  expectSent(t, host, [{ flags: ACK, seq: S + 1, ack: P + 1 }])
  // A retransmitted FIN is ACKed again and restarts the 2 MSL timer.
  deliver(host, tcb, { seq: P, ack: S + 1, flags: FIN | ACK }, 30000)
  expectSent(t, host, [{ flags: ACK, seq: S + 1, ack: P + 1 }])
  host.advanceTo(30000 + 59999)
  t.equal(tcb.state, 'TIME-WAIT')
  host.advanceTo(30000 + 60000)
  t.equal(tcb.state, 'CLOSED')
  t.match(tcb.trace.join('\n'), /TIME-WAIT -> CLOSED \(2 MSL elapsed in TIME-WAIT\)/)
})

t.test('FIN-WAIT-1 + FIN+ACK of our FIN -> TIME-WAIT directly', async t => {
  const { host, tcb } = fixtures['FIN-WAIT-1']!()
  deliver(host, tcb, { seq: P, ack: S + 1, flags: FIN | ACK })
  t.equal(tcb.state, 'TIME-WAIT')
  t.same(tcb.trace.slice(-2), ['FIN-WAIT-1 -> FIN-WAIT-2 (FIN acked)', 'FIN-WAIT-2 -> TIME-WAIT (FIN received in FIN-WAIT-2)'])
})

t.test('simultaneous close: FIN-WAIT-1 + FIN -> CLOSING; ACK -> TIME-WAIT', async t => {
  const { host, tcb } = fixtures['FIN-WAIT-1']!()
  deliver(host, tcb, { seq: P, ack: S, flags: FIN | ACK })
  t.equal(tcb.state, 'CLOSING')
  expectSent(t, host, [{ flags: ACK, ack: P + 1 }])
  host.advance(1000)
  expectSent(t, host, [{ flags: FIN | ACK, seq: S }], 'our FIN retransmitted in CLOSING')
  deliver(host, tcb, { seq: P + 1, ack: S + 1 })
  t.equal(tcb.state, 'TIME-WAIT')
})

t.test('FIN-WAIT-2 times out after a full close, not after a half close', async t => {
  {
    const { host, tcb } = fixtures['FIN-WAIT-2']!()
    host.advance(59999)
    t.equal(tcb.state, 'FIN-WAIT-2')
    host.advance(1)
    t.equal(tcb.state, 'CLOSED')
  }
  {
    const f = tcbEstablished()
    f.tcb.shutdown()
    deliver(f.host, f.tcb, { seq: P, ack: S + 1 })
    t.equal(f.tcb.state, 'FIN-WAIT-2')
    f.host.advance(600000)
    t.equal(f.tcb.state, 'FIN-WAIT-2', 'half-closed: still receiving')
    deliver(f.host, f.tcb, { seq: P, ack: S + 1, payload: bytes(10) })
    t.equal(f.tcb.readableLength, 10, 'data still accepted in FIN-WAIT-2')
  }
})

t.test('data after the peer FIN is ignored (CLOSE-WAIT)', async t => {
  const { host, tcb } = fixtures['CLOSE-WAIT']!()
  deliver(host, tcb, { seq: P + 1, ack: S, payload: bytes(10) })
  t.equal(tcb.readableLength, 0)
  t.equal(tcb.rcvNxt, P + 1)
  host.take()
})

const rstOutcome: Record<string, { error: string }> = {
  'ESTABLISHED': { error: 'reset' },
  'FIN-WAIT-1': { error: 'reset' },
  'FIN-WAIT-2': { error: 'reset' },
  'CLOSE-WAIT': { error: 'reset' },
  'CLOSING': { error: '' },
  'LAST-ACK': { error: '' },
  'TIME-WAIT': { error: '' },
}

for (const [state, { error }] of Object.entries(rstOutcome)) {
  t.test(`${state} + exact RST -> CLOSED${error ? ' with a reset error' : ' quietly'}; in-window RST -> challenge ACK`, async t => {
    {
      const { host, tcb } = fixtures[state]!()
      deliver(host, tcb, { seq: tcb.rcvNxt + 5, flags: RST })
      t.equal(tcb.state, state as TcpState, 'in-window RST: state kept')
      expectSent(t, host, [{ flags: ACK, ack: tcb.rcvNxt }], 'challenge ACK')
    }
    {
      const { host, tcb } = fixtures[state]!()
      let err = ''
      tcb.events = { error: r => { err = r } }
      deliver(host, tcb, { seq: tcb.rcvNxt, flags: RST })
      t.equal(tcb.state, 'CLOSED')
      t.equal(err, error)
      expectSent(t, host, [])
    }
  })
}

t.test('abort() sends a RST from every synchronized state where the peer expects data', async t => {
  for (const state of ['ESTABLISHED', 'FIN-WAIT-1', 'FIN-WAIT-2', 'CLOSE-WAIT']) {
    const { host, tcb } = fixtures[state]!()
    tcb.abort()
    t.equal(tcb.state, 'CLOSED')
    expectSent(t, host, [{ flags: RST, seq: tcb.sndMax }], state)
  }
  for (const state of ['LAST-ACK', 'CLOSING', 'TIME-WAIT']) {
    const { host, tcb } = fixtures[state]!()
    tcb.abort()
    t.equal(tcb.state, 'CLOSED')
    expectSent(t, host, [], state)
  }
})

t.test('close() in every closing state is a no-op', async t => {
  for (const state of ['FIN-WAIT-1', 'FIN-WAIT-2', 'CLOSING', 'LAST-ACK', 'TIME-WAIT']) {
    const { host, tcb } = fixtures[state]!()
    tcb.close()
    t.equal(tcb.state, state as TcpState)
    expectSent(t, host, [], state)
    t.equal(tcb.write(bytes(1)), 0, `${state}: writes refused`)
  }
})

t.test('FIN before synchronization: SYN-SENT drops it; SYN-RECEIVED + FIN acking our SYN -> ESTABLISHED -> CLOSE-WAIT', async t => {
  {
    const { newTcb } = await import('../../helpers/tcp-harness.js')
    const { host, tcb } = newTcb()
    tcb.connect()
    host.take()
    deliver(host, tcb, { seq: PEER_ISS, flags: FIN })
    t.equal(tcb.state, 'SYN-SENT')
    t.equal(host.drops['syn-sent-no-syn'], 1)
    expectSent(t, host, [])
  }
  {
    const { tcbSynReceived } = await import('../../helpers/tcp-harness.js')
    const { host, tcb } = tcbSynReceived()
    deliver(host, tcb, { seq: P, ack: S, flags: FIN | ACK, payload: bytes(4) })
    t.same(tcb.trace.slice(-2), ['SYN-RECEIVED -> ESTABLISHED (SYN acked)', 'ESTABLISHED -> CLOSE-WAIT (FIN received)'])
    expectSent(t, host, [{ flags: ACK, ack: P + 5 }])
    t.equal(tcb.readableLength, 4)
  }
})

t.test('TIME-WAIT + a newer SYN: offered to the owner for reuse (RFC 6191); an older one gets an ACK', async t => {
  {
    const { host, tcb } = fixtures['TIME-WAIT']!()
    let offered = 0
    tcb.ownerEvents = { reopen: m => { offered++; m.free(); return true } }
    deliver(host, tcb, { seq: P + 100000, flags: SYN })
    t.equal(offered, 1)
    t.equal(tcb.state, 'CLOSED')
    t.match(tcb.trace.at(-1), /TIME-WAIT -> CLOSED \(SYN reuses the 4-tuple/)
    expectSent(t, host, [])
  }
  {
    const { host, tcb } = fixtures['TIME-WAIT']!()
    let offered = 0
    tcb.ownerEvents = { reopen: () => { offered++; return false } }
    deliver(host, tcb, { seq: P - 5, flags: SYN })
    t.equal(offered, 0, 'an old SYN is not offered')
    t.equal(tcb.state, 'TIME-WAIT')
    expectSent(t, host, [{ flags: ACK, ack: P + 1 }])
  }
})

t.test('data + FIN read from inside the data event: the FIN is still ACKed at once', async t => {
  const { host, tcb } = tcbEstablished({ rcvBuf: 4000 })
  deliver(host, tcb, { seq: P, ack: S, payload: bytes(3000) })
  host.advance(40)
  host.take()
  tcb.events = { data: () => { tcb.read(new Uint8Array(4000)) } }
  deliver(host, tcb, { seq: P + 3000, ack: S, flags: FIN | ACK, payload: bytes(1000) })
  const sent = host.take()
  t.equal(sent.at(-1)?.ack, P + 4001, `the last ACK covers the FIN (${sent.length} sent)`)
  t.equal(tcb.state, 'CLOSE-WAIT')
})
