/**
 * Many connections spliced onto the forwarder's one shared IP/FWD path (mode
 * 'ipfwd-shared'), at once and mid-transfer, under loss, reordering and duplication on
 * both wires: every stream's digest matches, FIN and RST end their rows, and the
 * forwarder keeps nothing else per connection (no session wiring, flow entry or path).
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { parseIPv4 } from '../../core/bytes.js'
import { Random, testSeed } from '../../core/random.js'
import type { ProxyHandler, ProxySession, ProxySessionApi } from '../../stages/proxy/session.js'
import { CLIENT, PROXY_A, PROXY_B, PROXY_PORT, proxyNet, SERVER, SERVER_PORT } from '../helpers/proxy-net.js'
import { Pump } from '../helpers/tcp-net.js'

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

for (const layout of ['1-path', '2-path'] as const) {
  const seed = testSeed()
  t.test(`${layout}: 24 connections on the shared IP/FWD path under impairments (seed ${seed})`, async t => {
    const r = new Random(seed)
    const N = 24
    const closes: string[] = []
    const sessions: ProxySessionApi[] = []
    const handler: ProxyHandler = {
      name: 'plug',
      onClientOpen: s => s.connect(parseIPv4(SERVER), SERVER_PORT),
      // Even sessions splice as soon as the server answers; odd ones mid-transfer (below).
      onServerOpen: s => {
        sessions.push(s)
        if (s.id % 2 === 0) s.splice({ mode: 'ipfwd-shared' })
      },
      // Odd sessions read the server's first bytes in control mode, then splice with them
      // still on their way to the client (the SOCKS "OK message" pattern).
      onServerData: (s, data) => {
        const seen = ((s.data.seen as number | undefined) ?? 0) + data.length
        s.data.seen = seen
        if (s.id % 2 === 1 && seen >= 20_000 && s.state === 'control' && !(s as ProxySession).splicePending) s.splice({ mode: 'ipfwd-shared', afterClientBytes: data.length })
        s.writeToClient(data)
      },
      onClose: (_s, why) => closes.push(why),
      onSpliceFailed: (_s, why) => failures.push(why),
    }
    const failures: string[] = []
    const imp = () => ({ delayMs: r.int(1, 4), jitterMs: 1, loss: 0.01, reorder: 0.02, reorderDelayMs: 3, duplicate: 0.01 })
    const net = proxyNet(handler, { seed, forwarder: { layout, lingerMs: 500 }, impair1: imp(), impair2: imp() })
    const ups: Uint8Array[] = []
    const downs: Uint8Array[] = []
    const servers: Pump[] = []
    net.tcpS.listen(SERVER_PORT, conn => {
      const d = downs[servers.length] ?? new Uint8Array(0)
      servers.push(new Pump(conn, d))
    })
    const clients: Pump[] = []
    // A few clients reset their connection after some data arrived (RST through the splice).
    const resetAt: number[] = []
    for (let i = 0; i < N; i++) {
      ups.push(r.bytes(new Uint8Array(r.int(20_000, 150_000))))
      downs.push(r.bytes(new Uint8Array(r.int(50_000, 300_000))))
      resetAt.push(i % 6 === 5 ? 30_000 : -1)
      const c = net.tcpC.connect(parseIPv4(PROXY_A), PROXY_PORT)
      clients.push(new Pump(c, ups[i]!))
    }
    let allSpliced = false
    const stop = net.clock.now() + 120_000
    let watched = false
    while (net.clock.now() < stop) {
      net.sched.runFor(5)
      for (let i = 0; i < N; i++) {
        const c = clients[i]!
        // Through the splice: only once its session is on the shared path.
        const sess = sessions.find(x => x.client.remotePort === c.conn.stage.tcb.localPort)
        if (resetAt[i]! >= 0 && c.received >= resetAt[i]! && sess?.state === 'spliced' && c.conn.stage.tcb.state !== 'CLOSED') c.conn.stage.tcb.abort()
      }
      if (!watched && net.fw.stats.spliced + net.fw.stats.closed === N && net.fw.stats.splicing === 0) {
        watched = true
        // Everything is spliced (or over): the forwarder holds no per-connection wiring.
        allSpliced = net.fw.sessions.size === 0
        t.equal(net.fw.sessions.size, 0, 'no session wiring left')
        t.equal(net.tcpP.flows.size, 0, 'no per-connection flow entries: the shared path claims the 4-tuples')
        t.equal([...net.p.attached].filter(p => p.name.includes('/tcp:') || p.name.includes('/proxy:')).length, 0, 'no per-connection paths')
        t.equal(net.fw.sharedPaths.size, 1, 'one shared path')
      }
      const done = clients.every((c, i) => (resetAt[i]! >= 0 ? c.conn.stage.tcb.state === 'CLOSED' : c.closed)) && servers.length === N && servers.every(s => s.closed || s.error !== null)
      if (done && net.fw.stats.active === 0) break
    }
    t.ok(allSpliced, 'all sessions were on the shared path at once')
    // A splice that waits for out-of-order data to clear (loss) may find a short transfer already over.
    t.equal(net.fw.stats.splices + failures.length, N, `all ${N} spliced but those that ended first (${JSON.stringify(net.fw.stats)}; failures: ${failures.join('; ')})`)
    t.ok(net.fw.stats.splices >= N - 2, 'nearly all')
    t.ok(failures.every(f => /connection is (TIME-WAIT|CLOSED|CLOSING|LAST-ACK|FIN-WAIT-2|FIN-WAIT-1)/.test(f)), 'only because a connection had ended')
    // Each server got one client's stream whole, each client one server's.
    const fins = resetAt.map((x, i) => (x < 0 ? i : -1)).filter(i => i >= 0)
    const upDigests = new Set(fins.map(i => sha(ups[i]!)))
    const serverDigests = servers.filter(s => s.error === null).map(s => s.digest())
    t.equal(serverDigests.filter(d => upDigests.has(d)).length, fins.length, 'every FIN connection\'s upload arrived intact')
    const downDigests = new Set(downs.map(sha))
    t.equal(fins.filter(i => downDigests.has(clients[i]!.digest())).length, fins.length, 'every FIN connection\'s download arrived intact')
    const resets = N - fins.length
    // A server that had sent everything (FIN-WAIT) ends at the RST without an error event; none is left open.
    t.ok(servers.every(s => s.conn.stage.tcb.state === 'CLOSED'), 'every server connection ended, the reset ones included')
    t.ok(servers.filter(s => s.error === 'reset').length <= resets, 'no FIN connection was reset')
    net.sched.runFor(2000)
    const sp = [...net.fw.sharedPaths.values()][0]!
    t.equal(sp.stage.rows, 0, 'every row was freed')
    t.equal(net.fw.stats.active, 0)
    t.equal(net.fw.stats.spliced, 0)
    t.equal(net.fw.stats.closed, N)
    // A RST after both FINs were acknowledged (a client that got everything, then reset) ends the splice as 'fin'.
    t.ok(closes.filter(w => w === 'fin').length >= fins.length - failures.length, `closed: ${closes.join(',')}`)
    t.ok(closes.filter(w => w === 'rst').length >= 1, 'RSTs ended rows')
    t.equal(closes.filter(w => w === 'fin' || w === 'rst').length, net.fw.stats.splices, 'every row ended by FIN or RST')
    const ex = sp.stage.stats().extra
    t.ok((ex.bytesBA as number) >= 1, `bytes forwarded through the table: ${ex.bytesAB} up, ${ex.bytesBA} down`)
  })
}

t.test('shared mode refusals: tap, unsplice after n bytes, unsplice, and http config', async t => {
  let sess: ProxySessionApi | null = null
  const failed: string[] = []
  const net = proxyNet({
    name: 'plug',
    onClientOpen: s => s.connect(parseIPv4(SERVER), SERVER_PORT),
    onServerOpen: s => {
      sess = s
      t.throws(() => s.splice({ mode: 'ipfwd-shared', tap: () => {} }), /cannot tap/)
      t.throws(() => s.splice({ mode: 'ipfwd-shared', unspliceAfterServerBytes: 10 }), /cannot unsplice/)
      s.splice({ mode: 'ipfwd-shared' })
    },
    onSpliceFailed: (_s, why) => failed.push(why),
    onClose: () => {},
  }, { forwarder: { mode: 'ipfwd-shared' } })
  net.tcpS.listen(SERVER_PORT, conn => new Pump(conn, new Uint8Array(1000)))
  const c = new Pump(net.tcpC.connect(parseIPv4(PROXY_A), PROXY_PORT), new Uint8Array(1000))
  net.sched.runFor(500)
  const s = sess as ProxySessionApi | null
  t.equal(s?.state, 'spliced')
  t.throws(() => s!.unsplice(), /cannot be unspliced or moved; use mode 'ipfwd' or 'fwd'/)
  t.same(failed, [])
  net.sched.runFor(5000)
  t.ok(c.gotEnd && c.received === 1000, 'the connection ended normally')
  t.equal(s?.state, 'closed')
  const { httpProxy } = await import('../../stages/proxy/handlers/http.js')
  t.throws(() => httpProxy({ routes: [], mode: 'ipfwd-shared' as 'ipfwd' }), /keep-alive/)
  const { MsocksService } = await import('../../stages/proxy/handlers/msocks.js')
  const { Resplicer } = await import('../../paths/proxy/resplice.js')
  const svc = new MsocksService({})
  t.throws(() => new Resplicer(net.fw, svc), /MSOCKS: the forwarder's mode 'ipfwd-shared'.*use mode 'fwd' or 'ipfwd'/)
  const { socks5Proxy } = await import('../../stages/proxy/handlers/socks5.js')
  t.throws(() => socks5Proxy({ rules: [], msocks: svc, mode: 'ipfwd-shared' }), /socks5Proxy: mode 'ipfwd-shared' cannot move a spliced session/)
})

t.test('one shared path serves both orientations: a connection from the server side (reversed row) beside one from the client side', async t => {
  const net = proxyNet({
    name: 'plug-both-ways',
    // From the server's network: connect to the client's; else to the server.
    onClientOpen: s => (s.client.remoteIp === parseIPv4(SERVER) ? s.connect(parseIPv4(CLIENT), 9090) : s.connect(parseIPv4(SERVER), SERVER_PORT)),
    onServerOpen: s => s.splice({ mode: 'ipfwd-shared' }),
  }, { forwarder: { lingerMs: 200 }, impair1: { delayMs: 2, loss: 0.01, reorder: 0.02, reorderDelayMs: 2 }, impair2: { delayMs: 3, duplicate: 0.02 } })
  const r = new Random(77)
  const data = (n: number): Uint8Array => r.bytes(new Uint8Array(n))
  const fwdUp = data(200_000)
  const fwdDown = data(300_000)
  const revUp = data(250_000)
  const revDown = data(150_000)
  const got: Pump[] = []
  net.tcpS.listen(SERVER_PORT, conn => { got.push(new Pump(conn, fwdDown)) })
  net.tcpC.listen(9090, conn => { got.push(new Pump(conn, revDown)) })
  const a = new Pump(net.tcpC.connect(parseIPv4(PROXY_A), PROXY_PORT), fwdUp)
  const b = new Pump(net.tcpS.connect(parseIPv4(PROXY_B), PROXY_PORT), revUp)
  net.sched.runUntil(() => a.gotEnd && b.gotEnd && got.length === 2 && got.every(p => p.gotEnd) && net.fw.stats.active === 0, net.clock.now() + 60_000)
  t.equal(net.fw.stats.splices, 2, 'both spliced')
  t.equal(net.fw.sharedPaths.size, 1, 'onto the same shared path (one interface pair)')
  t.equal(a.digest(), sha(fwdDown), 'client-side connection: download intact')
  t.equal(b.digest(), sha(revDown), 'server-side connection: its download intact')
  t.same(got.map(p => p.digest()).sort(), [sha(fwdUp), sha(revUp)].sort(), 'both uploads intact')
  t.equal(net.fw.stats.active, 0, 'both rows ended')
})

t.test('reset() of a session on the shared path ends its row; forwarder close() ends the rest and drops the claim', async t => {
  const closes: string[] = []
  const kept: ProxySessionApi[] = []
  const net = proxyNet({
    name: 'plug',
    onClientOpen: s => s.connect(parseIPv4(SERVER), SERVER_PORT),
    onServerOpen: s => s.splice({ mode: 'ipfwd-shared' }),
    onSpliced: s => { kept.push(s) },
    onClose: (_s, why) => closes.push(why),
  })
  net.tcpS.listen(SERVER_PORT, conn => { conn.stage.app = { onData() {} } })
  const errors: (string | null)[] = [null, null, null]
  const clients = [0, 1, 2].map(i => {
    const c = net.tcpC.connect(parseIPv4(PROXY_A), PROXY_PORT)
    c.stage.app = { onData() {} }
    c.stage.tcb.events = { error: why => { errors[i] = why } }
    return c
  })
  net.sched.runFor(300)
  t.equal(kept.length, 3, 'three sessions on the shared path')
  const sp = [...net.fw.sharedPaths.values()][0]!
  t.equal(sp.stage.rows, 3)
  kept[0]!.reset()
  t.same(closes, ['reset'], 'reset() ended its row')
  t.equal(kept[0]!.state, 'closed')
  t.equal(sp.stage.rows, 2)
  clients[0]!.stage.tcb.write(new Uint8Array(100))
  net.sched.runFor(100)
  t.equal(errors[0], 'reset', 'its client learns of it by a RST on its next segment (the listen path answers it)')
  t.same(errors.slice(1), [null, null], 'the others are untouched')
  net.fw.close()
  t.same(closes, ['reset', 'reset', 'reset'], 'close() reset the others')
  t.equal(net.tcpP.claims.length, 0, 'the claim is gone')
  t.same(net.fw.stats.active, 0)
  t.same(net.fw.stats.spliced, 0)
})

for (const layout of ['1-path', '2-path'] as const) {
  t.test(`${layout}: sharedUnsplice: a row unsplices back to two live TCBs and splices onto the shared path again, mid-transfer under loss`, async t => {
    let sess: ProxySessionApi | null = null
    const events: string[] = []
    const net = proxyNet({
      name: 'plug',
      onClientOpen: s => s.connect(parseIPv4(SERVER), SERVER_PORT),
      onServerOpen: s => { sess = s },
      onSpliced: () => events.push('spliced'),
      onUnspliced: () => events.push('unspliced'),
      onUnspliceFailed: (_s, why) => events.push(`unsplice failed: ${why}`),
    }, { forwarder: { layout, sharedUnsplice: true, lingerMs: 300 }, impair1: { delayMs: 2, loss: 0.01, reorder: 0.02, reorderDelayMs: 2 }, impair2: { delayMs: 2, duplicate: 0.01 } })
    const r = new Random(layout === '1-path' ? 5 : 6)
    const up = r.bytes(new Uint8Array(1_500_000))
    const down = r.bytes(new Uint8Array(2_500_000))
    let server: Pump | null = null
    net.tcpS.listen(SERVER_PORT, conn => { server = new Pump(conn, down) })
    const client = new Pump(net.tcpC.connect(parseIPv4(PROXY_A), PROXY_PORT), up)
    let phase = 0
    const stop = net.clock.now() + 120_000
    while (net.clock.now() < stop) {
      net.sched.runFor(5)
      const s = sess as ProxySessionApi | null
      if (s === null) continue
      if (phase === 0 && s.bytes.fromServer > 200_000) { phase = 1; s.splice({ mode: 'ipfwd-shared' }) }
      else if (phase === 1 && s.state === 'spliced' && client.received > 900_000) {
        phase = 2
        t.equal(net.fw.sessions.size, 0, 'on the shared path: no wiring in the session table')
        s.unsplice()
      } else if (phase === 2 && s.state === 'control' && client.received > 1_400_000) { phase = 3; s.splice({ mode: 'ipfwd-shared' }) }
      const sv = server as Pump | null
      if (client.gotEnd && sv !== null && sv.gotEnd && net.fw.stats.active === 0) break
    }
    const sv = server as Pump | null
    t.equal(phase, 3, `went through splice, unsplice, resplice (${events.join(', ')})`)
    t.same(events.slice(0, 3), ['spliced', 'unspliced', 'spliced'])
    t.equal(client.digest(), sha(down), 'download intact')
    t.equal(sv?.digest(), sha(up), 'upload intact')
    t.equal(net.fw.stats.unsplices, 1)
    t.equal(net.fw.stats.splices, 2)
    t.equal(net.fw.stats.active, 0)
    t.equal([...net.fw.sharedPaths.values()][0]!.stage.rows, 0, 'rows freed')
  })
}
