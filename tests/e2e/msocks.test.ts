/**
 * MSOCKS end to end on memory wires (our TCP at every end, virtual time): a MobileSocket
 * downloads and uploads through the proxy while it moves between the client's two
 * interfaces several times, clean switches and hard hand-offs (the old wire cut), under
 * loss; the bytes each application reads equal what the other wrote (digests).
 */
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { Random } from '../../core/random.js'
import { MobileSocket, type ReconnectInfo } from '../../clients/msocks/index.js'
import type { TcpConnection } from '../../stages/tcp/module.js'
import { CLIENT1, CLIENT2, PROXY1, PROXY2, PROXY_PORT, SERVER, SERVER_PORT, msocksNet } from '../helpers/msocks-net.js'

/** The server: sends `down`, hashes what it gets, closes once it has the client's FIN. */
class ServerApp {
  readonly hash = createHash('sha256')
  received = 0
  sent = 0
  gotEnd = false
  private readonly buf = new Uint8Array(65536)
  constructor(readonly conn: TcpConnection, readonly down: Uint8Array) {
    const tcb = conn.stage.tcb
    tcb.events = { writable: () => this.write(), data: () => this.read(), end: () => this.read() }
    conn.stage.app = { onData: () => this.read() }
    this.write()
  }
  write(): void {
    const tcb = this.conn.stage.tcb
    while (this.sent < this.down.length) {
      const n = tcb.write(this.down, this.sent, this.down.length - this.sent)
      if (n === 0) break
      this.sent += n
    }
  }
  read(): void {
    const tcb = this.conn.stage.tcb
    for (;;) {
      const n = tcb.read(this.buf)
      if (n === 0) break
      this.hash.update(this.buf.subarray(0, n))
      this.received += n
    }
    // FIN only after the client's: a FIN forwarded earlier would make the session unmovable.
    if (tcb.peerFinished && !this.gotEnd) {
      this.gotEnd = true
      if (this.sent === this.down.length) tcb.shutdown()
    }
  }
}

type MoveKind = 'clean' | 'hard'

interface Case {
  name: string
  layout?: '1-path' | '2-path'
  mode?: 'fwd' | 'ipfwd'
  loss: number
  moves: MoveKind[]
  seed: number
}

async function run(t: Test, c: Case): Promise<void> {
  const net = msocksNet({ seed: c.seed, impairClient: { delayMs: 2, loss: c.loss }, impairServer: { delayMs: 1, loss: c.loss / 2 }, ...(c.layout ? { layout: c.layout } : {}), ...(c.mode ? { mode: c.mode } : {}) })
  const rnd = new Random(c.seed)
  const down = rnd.bytes(new Uint8Array(3_000_000))
  const up = rnd.bytes(new Uint8Array(2_000_000))
  let server: ServerApp | null = null
  net.tcpS.listen(SERVER_PORT, conn => {
    server = new ServerApp(conn, down)
  })
  const ms = new MobileSocket({
    proxy: { host: PROXY1, port: PROXY_PORT }, target: { host: SERVER, port: SERVER_PORT }, auth: { user: 'alice', password: 'wonderland' },
    connect: net.connect, now: () => net.clock.now(), autoReconnect: false,
  })
  const h = createHash('sha256')
  let got = 0
  let ended = false
  ms.on('data', (d: Buffer) => {
    h.update(d)
    got += d.length
  })
  ms.on('end', () => { ended = true })
  let error: Error | null = null
  ms.on('error', e => { error = e })
  const infos: ReconnectInfo[] = []
  const virtualMs: number[] = []
  ms.on('reconnect', (i: ReconnectInfo) => infos.push(i))
  // The writer: 16 KB chunks with backpressure; ends once everything was read and moved.
  let off = 0
  const writeMore = (): void => {
    while (off < up.length) {
      const n = Math.min(16384, up.length - off)
      const ok = ms.write(up.subarray(off, off + n))
      off += n
      if (!ok) {
        ms.once('drain', writeMore)
        return
      }
    }
  }
  ms.once('connect', writeMore)
  t.ok(await net.until(() => ms.isOpen || error !== null, 5000), 'MCONNECT answered')
  t.equal(ms.id?.length, 16, 'a 16-octet connection identifier')
  let onSecond = false
  let moving = false
  let done = 0
  for (let i = 0; i < c.moves.length; i++) {
    const at = Math.floor((down.length * (i + 1)) / (c.moves.length + 2))
    t.ok(await net.until(() => got >= at || error !== null, 120_000, 1), `read ${at} octets before move ${i + 1}`)
    const kind = c.moves[i]!
    const from = onSecond ? net.wire3 : net.wire1
    if (kind === 'hard') from.cut()
    const inFlightUp = off - ms.dataWritten
    const t0 = net.clock.now()
    moving = true
    const target = onSecond ? PROXY1 : PROXY2
    ms.reconnect({ proxyHost: target }).then(() => {
      moving = false
      done++
      virtualMs.push(net.clock.now() - t0)
    }, (e: Error) => {
      error = e
      moving = false
    })
    if (!t.ok(await net.until(() => !moving, 30_000, 0.5), `move ${i + 1} (${kind}) finished`)) {
      t.comment(JSON.stringify(net.msocksLog))
      t.comment(JSON.stringify(net.socksLog.slice(-4)))
      t.comment(net.fw.describe().join('\n'))
      t.comment(JSON.stringify(net.resplicer.stats))
      return
    }
    t.equal(error, null, `move ${i + 1}: no error`)
    onSecond = !onSecond
    t.equal(ms.localAddress, onSecond ? CLIENT2 : CLIENT1, `move ${i + 1}: now on ${onSecond ? CLIENT2 : CLIENT1}`)
    t.ok(ms.dataWritten < up.length || inFlightUp >= 0, 'moved mid-upload')
    if (kind === 'hard') {
      // Bring the cut link back for a later move to it.
      from.restore()
    }
  }
  t.ok(await net.until(() => got === down.length || error !== null, 300_000), 'everything downloaded')
  ms.end()
  const srv = () => server as ServerApp | null
  t.ok(await net.until(() => (ended && srv()?.gotEnd === true) || error !== null, 120_000), 'both FINs arrived')
  t.equal(error, null, 'no socket error')
  t.equal(done, c.moves.length, 'every move completed')
  t.equal(ms.moves, c.moves.length, 'MobileSocket counted the moves')
  t.equal(got, down.length, 'client read every octet')
  t.equal(h.digest('hex'), createHash('sha256').update(down).digest('hex'), 'client digest equals the server\'s data')
  t.equal(srv()!.received, up.length, 'server read every octet')
  t.equal(srv()!.hash.digest('hex'), createHash('sha256').update(up).digest('hex'), 'server digest equals the client\'s data')
  t.equal(net.resplicer.stats.moved, c.moves.length, 'resplicer moved the session each time')
  t.equal(net.msocks.stats.moved, c.moves.length)
  t.equal(net.msocks.stats.unknownId + net.msocks.stats.badCounters + net.msocks.stats.wrongUser, 0, 'no refusals')
  const salvaged = infos.reduce((a, i) => a + i.dataSalvage, 0)
  const rewritten = infos.reduce((a, i) => a + i.dataWrite, 0)
  t.comment(`${c.name}: moves ${c.moves.join(',')} virtual ms ${virtualMs.join(',')} reply ms ${infos.map(i => i.replyMs).join(',')}; salvaged ${salvaged}, rewritten ${rewritten}`)
  if (c.loss === 0) {
    // 2 RTT to the reply (SYN/SYN-ACK, then greeting+auth+RECONNECT pipelined), RTT = 4 ms
    // here; the driver's 0.5 ms steps and promise hops add a little.
    for (const i of infos) t.ok(i.replyMs <= 2.5 * 4 + 2, `reply within 2.5 RTT (+2 ms driver slack): ${i.replyMs} ms`)
  }
  // Linger, then nothing is left on the proxy.
  await net.until(() => net.fw.sessions.size === 0, 10_000)
  t.equal(net.fw.sessions.size, 0, 'no sessions left on the proxy')
  ms.destroy()
}

const cases: Case[] = [
  { name: '1-path FWD, no loss', layout: '1-path', loss: 0, moves: ['clean', 'clean', 'hard', 'clean'], seed: 11 },
  { name: '2-path FWD, 1% loss', layout: '2-path', loss: 0.01, moves: ['clean', 'hard', 'hard'], seed: 12 },
  { name: '1-path IP/FWD, 2% loss', mode: 'ipfwd', loss: 0.02, moves: ['hard', 'clean', 'hard'], seed: 13 },
]
for (const c of cases) t.test(`msocks: ${c.name}: moves mid-transfer both ways, digests equal`, t => run(t, c))
