import t from 'tap'
import { createHash } from 'node:crypto'
import { parseIPv4 } from '../../core/bytes.js'
import { Msg } from '../../core/msg.js'
import { Random } from '../../core/random.js'
import { ConfigError } from '../../core/errors.js'
import { emitTcp, TcpFlag } from '../../stages/tcp/segment.js'
import { connect, TcpServer, type TcpSocket } from '../../stages/tcp/socket.js'
import { IP_A, IP_B, twoTcpHosts } from '../helpers/tcp-net.js'

/** Runs virtual time in small steps, letting promises and stream callbacks run in between. */
async function until(net: ReturnType<typeof twoTcpHosts>, cond: () => boolean, limitMs = 120_000): Promise<boolean> {
  const end = net.clock.now() + limitMs
  while (!cond()) {
    if (net.clock.now() >= end) return false
    net.sched.runFor(2)
    await new Promise(r => setImmediate(r))
  }
  return true
}

t.test('sockets: connect/accept, pipe both ways with backpressure, half close, digests equal', async t => {
  const net = twoTcpHosts({ impair: { loss: 0.02, delayMs: 2 }, seed: 5, configA: { sndBuf: 16384, rcvBuf: 16384 }, configB: { rcvBuf: 8192 } })
  const server = new TcpServer(net.tcpB).listen(7000)
  t.equal(server.port, 7000)
  let accepted: TcpSocket | null = null
  void server.accept().then(s => { accepted = s })
  let client: TcpSocket | null = null
  void connect(net.tcpA, IP_B, 7000).then(s => { client = s })
  t.ok(await until(net, () => client !== null && accepted !== null), 'connected and accepted')
  const srv = accepted!
  t.equal(srv.remoteAddress, IP_A)
  t.equal(srv.localAddress, IP_B)
  t.equal(client!.remotePort, 7000)
  t.equal(srv.state, 'ESTABLISHED')
  const data = new Random(9).bytes(new Uint8Array(300_000))
  // The server reads slowly: its window closes, the client's writes must report backpressure.
  const h = createHash('sha256')
  let got = 0
  let serverEnded = false
  srv.pause()
  srv.on('data', (d: Buffer) => {
    h.update(d)
    got += d.length
  })
  srv.on('end', () => {
    serverEnded = true
    srv.end('bye')
  })
  let sawBackpressure = false
  let off = 0
  const writeMore = (): void => {
    while (off < data.length) {
      const chunk = data.subarray(off, off + 10_000)
      off += chunk.length
      if (!client!.write(chunk)) {
        sawBackpressure = true
        client!.once('drain', writeMore)
        return
      }
    }
    client!.end()
  }
  writeMore()
  await until(net, () => false, 2000)
  t.ok(sawBackpressure, 'write() returned false while the peer was not reading')
  t.equal(srv.tcb.snapshot().rcvWnd, 0, 'the server advertised a zero window')
  srv.resume()
  let reply = ''
  client!.setEncoding('utf8')
  client!.on('data', (d: string) => (reply += d))
  let clientClosed = false
  client!.on('close', () => { clientClosed = true })
  t.ok(await until(net, () => serverEnded && reply === 'bye' && clientClosed), 'both directions finished')
  t.equal(got, data.length)
  t.equal(h.digest('hex'), createHash('sha256').update(data).digest('hex'))
  t.ok(client!.tcb.counters.windowProbes + client!.tcb.counters.retransmits > 0, 'probes or retransmissions happened')
})

t.test('destroy() resets the connection; the peer sees ECONNRESET', async t => {
  const net = twoTcpHosts()
  const server = new TcpServer(net.tcpB).listen(7001)
  let srv: TcpSocket | null = null
  server.on('connection', (s: TcpSocket) => { srv = s })
  let client: TcpSocket | null = null
  void connect(net.tcpA, parseIPv4(IP_B), 7001).then(s => { client = s })
  t.ok(await until(net, () => client !== null && srv !== null))
  let err: NodeJS.ErrnoException | null = null
  srv!.on('error', (e: NodeJS.ErrnoException) => { err = e })
  const states: string[] = []
  client!.on('state', (_from: string, to: string) => states.push(to))
  client!.destroy()
  t.ok(await until(net, () => err !== null))
  t.equal(err!.code, 'ECONNRESET')
  t.same(states, ['CLOSED'])
  t.equal(net.tcpA.flows.size, 0, 'the client flow is gone')
  await until(net, () => net.tcpB.flows.size === 0, 1000)
  t.equal(net.tcpB.flows.size, 0, 'the server flow is gone')
})

t.test('connect to a port nobody listens on: RST, ECONNREFUSED', async t => {
  const net = twoTcpHosts()
  let err: NodeJS.ErrnoException | null = null
  connect(net.tcpA, IP_B, 9).catch(e => { err = e })
  t.ok(await until(net, () => err !== null))
  t.equal(err!.code, 'ECONNREFUSED')
  const listen = net.b.attached
  t.ok([...listen].some(p => p.stages.some(s => (s.stats().drops['no-listener'] ?? 0) === 1)), 'counted as no-listener')
})

t.test('module: listen errors, ephemeral ports, describe, SYN backlog', async t => {
  const net = twoTcpHosts({ impair: {}, seed: 1 })
  net.tcpB.listen(80, () => {})
  t.throws(() => net.tcpB.listen(80, () => {}), ConfigError)
  t.throws(() => net.tcpB.listen(0, () => {}), ConfigError)
  const c = net.tcpA.connect(parseIPv4(IP_B), 80)
  t.ok(c.stage.tcb.localPort >= 32768 && c.stage.tcb.localPort <= 60999)
  t.throws(() => net.tcpA.connect(parseIPv4(IP_B), 80, { localPort: c.stage.tcb.localPort }), ConfigError)
  net.sched.runFor(100)
  t.equal(c.stage.tcb.state, 'ESTABLISHED')
  t.match(net.b.describe(), /TCP flow \(1 connections\)/)
  t.match(c.path.describe(), /tcp#1\(\d+ > 80 ESTABLISHED\)/)
  t.match(c.stage.stats().extra, { state: 'ESTABLISHED' })
  // SYN backlog: a listener with backlog 1 whose SYN-ACKs never get answered.
  const net2 = twoTcpHosts({ bToA: { loss: 1 }, seed: 2 })
  const mod = net2.tcpB
  ;(mod as unknown as { synBacklog: number }).synBacklog = 1
  mod.listen(81, () => {})
  net2.tcpA.connect(parseIPv4(IP_B), 81)
  net2.tcpA.connect(parseIPv4(IP_B), 81)
  net2.sched.runFor(50)
  t.equal(mod.listeners.get(81)!.embryonic, 1)
  t.ok(mod.listeners.get(81)!.stats.synBacklogDrops >= 1, 'the second SYN was refused')
  net.tcpA.close()
  t.equal(net.tcpA.flows.size, 0, 'close() aborts and forgets every connection')
})

t.test('TCP stage drops bad segments before the TCB', async t => {
  const net = twoTcpHosts()
  net.tcpB.listen(82, () => {})
  const c = net.tcpA.connect(parseIPv4(IP_B), 82)
  net.sched.runFor(100)
  const stage = c.stage
  const a = parseIPv4(IP_A)
  const b = parseIPv4(IP_B)
  const seg = emitTcp({ srcPort: 82, dstPort: stage.tcb.localPort, seq: stage.tcb.rcvNxt, ack: stage.tcb.sndNxt, flags: TcpFlag.ACK, window: 1000 }, b, a)
  const bad = seg.slice()
  bad[4]! ^= 0x80
  stage.receive(Msg.from(bad))
  t.equal(stage.stats().drops['bad-checksum'], 1)
  const wrongPorts = emitTcp({ srcPort: 83, dstPort: stage.tcb.localPort, seq: 0, ack: 0, flags: TcpFlag.ACK, window: 0 }, b, a)
  stage.receive(Msg.from(wrongPorts))
  t.equal(stage.stats().drops['wrong-ports'], 1)
  stage.receive(Msg.from(seg.subarray(0, 12)))
  t.equal(stage.stats().drops['short-header'], 1)
})

t.test('without a socket, data goes up the path as messages (for a PROXY stage)', async t => {
  const net = twoTcpHosts()
  let conn: import('../../stages/tcp/module.js').TcpConnection | null = null
  net.tcpB.listen(84, c => { conn = c })
  const c = net.tcpA.connect(parseIPv4(IP_B), 84)
  net.sched.runFor(100)
  const out: Msg[] = []
  conn!.path.connect(1, { name: 'collector', send: (batch: Msg[], n: number) => { for (let i = 0; i < n; i++) out.push(batch[i]!) } })
  c.stage.tcb.write(new Uint8Array(3000).fill(7))
  net.sched.runFor(100)
  t.equal(out.reduce((n, m) => n + m.length, 0), 3000, '3000 bytes went up')
  t.ok(out.every(m => m.buf[m.off] === 7))
  for (const m of out) m.free()
  // Data from above (the proxy) going down is sent.
  const back: Msg[] = []
  c.path.connect(1, { name: 'collector-a', send: (batch: Msg[], n: number) => { for (let i = 0; i < n; i++) back.push(batch[i]!) } })
  const m = Msg.from(new Uint8Array(100).fill(3))
  conn!.path.ends[1].enqueue(m)
  net.sched.runFor(100)
  t.equal(back.reduce((n, x) => n + x.length, 0), 100, 'the other side got it, also as messages')
  for (const x of back) x.free()
})

t.test('ICMP fragmentation-needed for a connection lowers its MSS (RFC 1191)', async t => {
  const { emitEth } = await import('../../stages/eth/header.js')
  const { emitIpv4 } = await import('../../stages/ip/header.js')
  const { emitIcmp } = await import('../../stages/ip/icmp.js')
  const net = twoTcpHosts()
  net.tcpB.listen(85, () => {})
  const c = net.tcpA.connect(parseIPv4(IP_B), 85)
  net.sched.runFor(100)
  const a = parseIPv4(IP_A)
  const b = parseIPv4(IP_B)
  const quoted = emitIpv4({ src: a, dst: b, protocol: 6, payload: emitTcp({ srcPort: c.stage.tcb.localPort, dstPort: 85, seq: 0, ack: 0, flags: TcpFlag.ACK, window: 0 }) }).subarray(0, 28)
  const icmp = emitIcmp({ type: 3, code: 4, rest: 1000, data: quoted })
  const frame = emitEth({ dst: net.wire.a.mac, src: net.wire.b.mac, type: 0x0800 }, emitIpv4({ src: b, dst: a, protocol: 1, payload: icmp }))
  net.wire.b.send([Msg.from(frame)], 1)
  net.sched.runFor(10)
  t.equal(c.stage.tcb.pathMss, 960)
  t.equal(c.stage.tcb.sndMss, 960 - 12)
})

t.test('a client reconnecting from the same port ends the server\'s TIME-WAIT (RFC 6191)', async t => {
  const net = twoTcpHosts()
  let accepted = 0
  net.tcpB.listen(86, c => {
    accepted++
    c.stage.tcb.close() // the server closes first: it ends in TIME-WAIT
  })
  const first = net.tcpA.connect(parseIPv4(IP_B), 86, { localPort: 5555 })
  first.stage.tcb.events = { end: () => first.stage.tcb.close() }
  net.sched.runFor(1000)
  t.equal(first.stage.tcb.state, 'CLOSED')
  t.equal(net.tcpB.flows.size, 1, 'the server connection lingers in TIME-WAIT')
  const second = net.tcpA.connect(parseIPv4(IP_B), 86, { localPort: 5555 })
  net.sched.runFor(100)
  t.equal(second.stage.tcb.state === 'ESTABLISHED' || second.stage.tcb.state === 'CLOSE-WAIT', true, `second connection: ${second.stage.tcb.state}`)
  t.equal(accepted, 2)
})

t.test('release(): the module lets go of a connection (its path survives the TCB closing)', async t => {
  const net = twoTcpHosts()
  net.tcpB.listen(87, () => {})
  const c = net.tcpA.connect(parseIPv4(IP_B), 87)
  net.sched.runFor(100)
  net.tcpA.release(c)
  t.equal(net.tcpA.flows.size, 1, 'flow kept for the new owner')
  c.stage.tcb.abort()
  net.sched.runFor(10)
  t.notOk(c.path.isClosed, 'path not closed by the module')
  net.tcpA.release(c, false)
  t.equal(net.tcpA.flows.size, 0, 'flow entry dropped on request')
})

t.test('ISN per RFC 6528: keyed hash of the 4-tuple plus a 4 µs clock', async t => {
  const net = twoTcpHosts()
  const m = net.tcpA
  const a = m.isn(1, 2, 3, 4)
  t.same(m.isn(1, 2, 3, 4), a, 'same tuple, same time: same ISN')
  t.not(m.isn(1, 2, 3, 5).iss, a.iss, 'another tuple: another ISN')
  net.clock.set(net.clock.now() + 1)
  t.equal(m.isn(1, 2, 3, 4).iss, (a.iss + 250) >>> 0, '1 ms later: 250 ticks of 4 µs more')
  const other = twoTcpHosts().tcpA
  t.equal(other.isn(1, 2, 3, 4).iss, a.iss, 'the test hosts share a secret (deterministic tests)')
  const { TcpModule } = await import('../../stages/tcp/module.js')
  const random = new TcpModule(twoTcpHosts().a)
  t.not(random.isn(1, 2, 3, 4).iss, a.iss, 'a module without a given secret draws its own')
})

t.test('end(data) before the handshake completes: data then FIN once connected', async t => {
  const net = twoTcpHosts({ impair: { delayMs: 5 } })
  const server = new TcpServer(net.tcpB).listen(88)
  let got = ''
  let ended = false
  server.on('connection', (s: TcpSocket) => {
    s.setEncoding('utf8')
    s.on('data', (d: string) => (got += d))
    s.on('end', () => {
      ended = true
      s.end()
    })
  })
  const { TcpSocket: Sock } = await import('../../stages/tcp/socket.js')
  const s = new Sock(net.tcpA.connect(parseIPv4(IP_B), 88))
  s.setNoDelay(true).setKeepAlive(true, 60_000)
  s.end('early bird')
  t.equal(s.state, 'SYN-SENT')
  t.ok(await until(net, () => ended))
  t.equal(got, 'early bird')
})

t.test('a SYN from an address we have no route to is a counted drop, not an exception', async t => {
  const net = twoTcpHosts()
  net.tcpB.listen(89, () => {})
  // Remove B's connected route so the SYN-ACK has nowhere to go.
  t.ok(net.b.routes.remove('10.0.0.0/24'))
  net.tcpA.connect(parseIPv4(IP_B), 89)
  net.sched.runFor(50)
  const listen = [...net.b.attached].find(p => p.name.endsWith('tcp-listen'))!
  t.equal(listen.exceptions, 0)
  t.ok((listen.stages.at(-1)!.stats().drops['no-route'] ?? 0) >= 1)
})
