/**
 * SOCKS5 BIND / MSOCKS MBIND end to end on memory wires (our TCP everywhere, virtual
 * time): the client BINDs through the proxy, tells the server the bound address out of
 * band, the server connects in; data flows both ways spliced, and the bound session moves
 * between the client's two interfaces mid-transfer (RECONNECT). Digests on both ends.
 * Also: a peer other than DST.ADDR is refused (RST) and the BIND then times out.
 */
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { Random } from '../../core/random.js'
import { formatIPv4, parseIPv4 } from '../../core/bytes.js'
import { MobileSocket, type MobileEndpoint, type MobileSocketError } from '../../clients/msocks/index.js'
import type { TcpConnection } from '../../stages/tcp/module.js'
import { CLIENT1, CLIENT2, PROXY1, PROXY2, PROXY_PORT, SERVER, msocksNet } from '../helpers/msocks-net.js'
import { Pump, sha } from '../helpers/tcp-net.js'

/** The server side of a BIND connects out (to BND.ADDR), sends `down`, hashes what it gets, FIN after the client's. */
const connectingServer = (conn: TcpConnection, down: Uint8Array): Pump => new Pump(conn, down, null, { finAfterPeer: true })

async function run(t: Test, layout: '1-path' | '2-path', seed: number): Promise<void> {
  t.comment(`seed ${seed} (wire impairments and data)`)
  const net = msocksNet({ seed, layout, bind: true, impairClient: { delayMs: 2, loss: layout === '2-path' ? 0.01 : 0 } })
  const rnd = new Random(seed)
  const down = rnd.bytes(new Uint8Array(1_200_000))
  const up = rnd.bytes(new Uint8Array(600_000))
  let bound: MobileEndpoint | null = null
  let ms: MobileSocket | null = null
  let error: Error | null = null
  MobileSocket.bindRemote({
    proxy: { host: PROXY1, port: PROXY_PORT }, target: { host: SERVER, port: 0 }, auth: { user: 'alice', password: 'wonderland' },
    connect: net.connect, now: () => net.clock.now(), autoReconnect: false,
  }).then(r => { bound = r.bound; ms = r.socket }, (e: Error) => { error = e })
  t.ok(await net.until(() => bound !== null || error !== null, 5000), 'first BIND reply')
  t.equal(error, null)
  const b = bound as MobileEndpoint | null
  const sock = ms as MobileSocket | null
  if (b === null || sock === null) return
  t.equal(b.host, '10.0.1.1', 'BND.ADDR: the proxy\'s address on the server side')
  t.ok(net.tcpP.listeners.has(b.port), `the proxy listens on BND.PORT ${b.port}`)
  const h = createHash('sha256')
  let got = 0
  let ended = false
  sock.on('data', (d: Buffer) => { h.update(d); got += d.length })
  sock.on('end', () => { ended = true })
  sock.on('error', e => { error = e })
  let off = 0
  const writeMore = (): void => {
    while (off < up.length) {
      const n = Math.min(16384, up.length - off)
      const ok = sock.write(up.subarray(off, off + n))
      off += n
      if (!ok) return void sock.once('drain', writeMore)
    }
  }
  sock.once('connect', writeMore)
  // Out of band: the server learns where to connect (as an FTP server gets a PORT command).
  const server = connectingServer(net.tcpS.connect(parseIPv4(b.host), b.port), down)
  t.ok(await net.until(() => sock.isOpen || error !== null, 5000), 'second BIND reply: connected')
  t.equal(sock.peer?.host, SERVER, 'second reply: the server\'s address')
  t.equal(sock.peer?.port, server.conn.stage.tcb.localPort, 'second reply: the server\'s port')
  t.equal(sock.id?.length, 16, 'MBIND: a connection identifier')
  t.notOk(net.tcpP.listeners.has(b.port), 'the bound port closed after the one connection')
  t.equal(net.fw.stats.bindAccepted, 1)
  // Moves mid-transfer: clean to the second interface, then a hard hand-off back.
  const kinds = ['clean', 'hard'] as const
  let onSecond = false
  for (let i = 0; i < kinds.length; i++) {
    const at = Math.floor((down.length * (i + 1)) / (kinds.length + 2))
    t.ok(await net.until(() => got >= at || error !== null, 120_000, 1), `read ${at} octets before move ${i + 1}`)
    const from = onSecond ? net.wire3 : net.wire1
    if (kinds[i] === 'hard') from.cut()
    let moved = false
    sock.reconnect({ proxyHost: onSecond ? PROXY1 : PROXY2 }).then(() => { moved = true }, (e: Error) => { error = e })
    t.ok(await net.until(() => moved || error !== null, 30_000, 0.5), `move ${i + 1} (${kinds[i]}) done`)
    t.equal(error, null, `move ${i + 1}: no error`)
    onSecond = !onSecond
    t.equal(sock.localAddress, onSecond ? CLIENT2 : CLIENT1)
    from.restore()
  }
  t.ok(await net.until(() => (got === down.length && off === up.length) || error !== null, 300_000), 'everything read and written')
  sock.end()
  t.ok(await net.until(() => (ended && server.gotEnd) || error !== null, 120_000), 'both FINs')
  t.equal(error, null, 'no socket error')
  t.equal(got, down.length)
  t.equal(h.digest('hex'), sha(down), 'client digest equals the server\'s data')
  t.equal(server.received, up.length)
  t.equal(server.hash.digest('hex'), sha(up), 'server digest equals the client\'s data')
  t.equal(net.msocks.stats.moved, 2, 'the bound session moved twice')
  t.ok(net.fw.stats.splices >= 1, 'spliced')
  await net.until(() => net.fw.sessions.size === 0, 10_000)
  t.equal(net.fw.sessions.size, 0, 'no sessions left')
  sock.destroy()
}

t.test('bind: 1-path, MBIND, data both ways spliced, moved twice, digests equal', t => run(t, '1-path', 31))
t.test('bind: 2-path, 1% loss, MBIND, data both ways spliced, moved twice, digests equal', t => run(t, '2-path', 32))

t.test('bind: a peer other than DST.ADDR gets a RST; then the BIND times out with REP 04 and the port closes', async t => {
  const net = msocksNet({ seed: 33, bind: true, bindTimeoutMs: 3000 })
  const expected = '10.0.1.3'
  let bound: MobileEndpoint | null = null
  let sock: MobileSocket | null = null
  let error: MobileSocketError | null = null
  MobileSocket.bindRemote({
    proxy: { host: PROXY1, port: PROXY_PORT }, target: { host: expected, port: 0 }, auth: { user: 'alice', password: 'wonderland' },
    connect: net.connect, now: () => net.clock.now(), autoReconnect: false,
  }).then(r => {
    bound = r.bound
    sock = r.socket
    r.socket.on('error', e => { error = e as MobileSocketError })
  }, e => { error = e as MobileSocketError })
  t.ok(await net.until(() => bound !== null || error !== null, 5000), 'first reply')
  const b = bound as MobileEndpoint | null
  if (b === null) return
  const intruder = connectingServer(net.tcpS.connect(parseIPv4(b.host), b.port), new Uint8Array(10))
  t.ok(await net.until(() => intruder.error !== null, 5000), 'the wrong peer\'s connection ends')
  t.equal(intruder.error, 'refused', 'it got a RST')
  t.equal(net.fw.stats.bindRefused, 1, 'counted')
  t.ok(net.tcpP.listeners.has(b.port), 'the port still waits for the expected peer')
  t.notOk((sock as MobileSocket | null)?.isOpen, 'no second reply')
  t.ok(await net.until(() => error !== null, 10_000), 'the BIND ended')
  const e = error as MobileSocketError | null
  t.equal(e?.code, 'ERR_MSOCKS_REFUSED')
  t.equal(e?.rep, 4, 'second reply REP 04 (timeout)')
  t.equal(net.fw.stats.bindTimeouts, 1)
  t.notOk(net.tcpP.listeners.has(b.port), 'the port closed')
  t.match(net.socksLog, [{ type: 'method' }, { type: 'auth', ok: true }, { type: 'request', allowed: true }, { type: 'bound', expect: parseIPv4(expected) }, { type: 'connect-failed', why: 'timeout', reply: 4 }])
  t.comment(`bound at ${b.host}:${b.port}, expecting ${expected} (${formatIPv4(parseIPv4(expected))})`)
  await net.until(() => net.fw.sessions.size === 0, 5000)
  t.equal(net.fw.sessions.size, 0)
  for (const w of net.fw.sessions.values()) t.comment(w.session.describe() + JSON.stringify(w.a.stage.tcb.snapshot()))
})

t.test('bind: a proxy without bind refuses MBIND with REP 07; bindRemote rejects and leaves nothing open', async t => {
  const net = msocksNet({ seed: 34 })
  let error: MobileSocketError | null = null
  MobileSocket.bindRemote({
    proxy: { host: PROXY1, port: PROXY_PORT }, target: { host: SERVER, port: 0 }, auth: { user: 'alice', password: 'wonderland' },
    connect: net.connect, now: () => net.clock.now(), autoReconnect: false,
  }).then(() => {}, e => { error = e as MobileSocketError })
  t.ok(await net.until(() => error !== null, 5000), 'rejected')
  const e = error as MobileSocketError | null
  t.equal(e?.code, 'ERR_MSOCKS_REFUSED')
  t.equal(e?.rep, 7, 'REP 07 command not supported')
  t.equal(net.fw.stats.bindAccepted + net.fw.stats.bindTimeouts, 0, 'nothing listened')
  await net.until(() => net.fw.sessions.size === 0, 5000)
  t.equal(net.fw.sessions.size, 0, 'the refused connection closed')
})
