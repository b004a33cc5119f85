// Transparent proxy on memory wires: the client connects to the SERVER's address; its route
// to the server's network goes through the proxy host, which intercepts matching SYNs,
// answers as the server, connects to it from its own address and splices.
import t from 'tap'
import { formatIPv4, get32, parseIPv4 } from '../../core/bytes.js'
import { Path } from '../../core/path.js'
import { Random } from '../../core/random.js'
import { Dir } from '../../core/stage.js'
import type { Interface } from '../../paths/host.js'
import type { ProxyForwarderOptions } from '../../paths/proxy/forwarder.js'
import { EthStage } from '../../stages/eth/stage.js'
import { transparentProxy, type TransparentLogEvent } from '../../stages/proxy/handlers/transparent.js'
import type { ProxySessionApi } from '../../stages/proxy/session.js'
import { RouterStage } from '../../stages/router/stage.js'
import { TcpFlag } from '../../stages/tcp/segment.js'
import { CLIENT, PROXY_A, PROXY_B, proxyNet, SERVER } from '../helpers/proxy-net.js'
import { Pump, sha } from '../helpers/tcp-net.js'

const data = (n: number, seed: number): Uint8Array => new Random(seed).bytes(new Uint8Array(n))

type Opts = Parameters<typeof transparentProxy>[0]

/** proxyNet with routes through the proxy, a router path for transit traffic, interception of 10.0.1.0/24 ports 80 and 8080. */
function transparentNet(handler: Opts, forwarder: Partial<ProxyForwarderOptions> = {}) {
  const net = proxyNet(transparentProxy(handler), { forwarder: { intercept: [{ dst: '10.0.1.0/24', ports: [80, 8080] }], ...forwarder } })
  net.c.addRoute('10.0.1.0/24', { via: PROXY_A })
  net.s.addRoute('10.0.0.0/24', { via: PROXY_B })
  const [a, b] = net.p.interfaces as [Interface, Interface]
  const router = new RouterStage<Interface>({ routes: net.p.routes, sides: [a, b], clock: net.sched.clock })
  const path = new Path([new EthStage({ mac: a.mac, arp: a.arp, up: Dir.Forward }), router, new EthStage({ mac: b.mac, arp: b.arp, up: Dir.Backward })], { name: 'router' })
  path.connect(0, a.device).connect(1, b.device)
  net.sched.adopt(path)
  a.ipv4.forward = path.ends[0]
  b.ipv4.forward = path.ends[1]
  return { ...net, router: path }
}

/** Client connects to SERVER:port, sends `up`; the server listening on `port` sends `down`; both close. */
function run(net: ReturnType<typeof transparentNet>, port: number, up: Uint8Array, down: Uint8Array, during?: (c: Pump, s: Pump | null) => void, limitMs = 300_000) {
  let server: Pump | null = null
  let serverPeer = ''
  net.tcpS.listen(port, conn => {
    serverPeer = formatIPv4(conn.remoteIp)
    server = new Pump(conn, down)
  })
  const conn = net.tcpC.connect(parseIPv4(SERVER), port)
  const client = new Pump(conn, up)
  const done = (): boolean => {
    const s = server as Pump | null
    return (s !== null && client.gotEnd && s.gotEnd && client.closed && s.closed) || client.error !== null
  }
  const stop = net.clock.now() + limitMs
  while (net.clock.now() < stop && !done()) {
    net.sched.runUntil(done, Math.min(stop, net.clock.now() + 10))
    during?.(client, server)
  }
  return { client, server: server as Pump | null, serverPeer }
}

for (const layout of ['1-path', '2-path'] as const) {
  for (const mode of ['fwd', 'ipfwd'] as const) {
    t.test(`${layout}: intercepted, relayed, spliced to ${mode} mid-transfer`, async t => {
      const events: TransparentLogEvent[] = []
      const net = transparentNet({ splice: 'never', mode, onLog: e => events.push(e) }, { layout })
      let sess: ProxySessionApi | null = null
      const handler = net.fw.handler
      const open = handler.onServerOpen!.bind(handler)
      handler.onServerOpen = s => { sess = s; open(s) }
      const up = data(1_000_000, 11)
      const down = data(2_000_000, 12)
      let spliced = false
      const r = run(net, 8080, up, down, () => {
        const s = sess as ProxySessionApi | null
        if (!spliced && s !== null && s.bytes.fromServer > 300_000) {
          spliced = true
          // A relaying session may splice later: the session API decides, not the handler.
          s.splice({ mode })
        }
      })
      t.equal(r.client.error, null, 'no error at the client')
      t.ok(r.client.closed && r.server?.closed, 'both ends closed')
      t.equal(r.server?.digest(), sha(up), 'server got the client bytes')
      t.equal(r.client.digest(), sha(down), 'client got the server bytes')
      t.ok(spliced, 'splice was requested mid-transfer')
      t.equal(net.fw.stats.splices, 1, 'spliced once')
      t.equal(net.fw.stats.accepted, 1, 'one intercepted session')
      t.equal(r.serverPeer, PROXY_B, 'the server saw the proxy address as its peer')
      t.same(events.map(e => [e.type, e.dst]), [['connect', `${SERVER}:8080`]], 'connected to the original destination')
    })
  }

  t.test(`${layout}: spliced immediately after connect`, async t => {
    const net = transparentNet({ splice: 'immediately' }, { layout })
    const up = data(200_000, 21)
    const down = data(400_000, 22)
    const r = run(net, 80, up, down)
    t.equal(r.server?.digest(), sha(up))
    t.equal(r.client.digest(), sha(down))
    t.equal(net.fw.stats.splices, 1)
  })
}

t.test('splice after the server sent N bytes', async t => {
  const net = transparentNet({ splice: { afterBytes: 5000 } })
  const up = data(100_000, 31)
  const down = data(300_000, 32)
  const r = run(net, 80, up, down)
  t.equal(r.server?.digest(), sha(up))
  t.equal(r.client.digest(), sha(down))
  t.equal(net.fw.stats.splices, 1)
})

t.test('a port no rule matches is routed unchanged (the server sees the client address)', async t => {
  const net = transparentNet({})
  const up = data(200_000, 41)
  const down = data(300_000, 42)
  const r = run(net, 9000, up, down)
  t.equal(r.server?.digest(), sha(up))
  t.equal(r.client.digest(), sha(down))
  t.equal(r.serverPeer, CLIENT, 'not proxied: the server saw the client itself')
  t.equal(net.fw.stats.accepted, 0, 'nothing intercepted')
  t.ok(net.router.ends[0].inPkts > 50, `router path carried ${net.router.ends[0].inPkts} frames from the client`)
})

t.test('a source no rule matches is routed unchanged', async t => {
  const net = transparentNet({}, { intercept: [{ dst: '10.0.1.0/24', ports: 80, src: '10.0.9.0/24' }] })
  const r = run(net, 80, data(10_000, 43), data(10_000, 44))
  t.equal(r.serverPeer, CLIENT)
  t.equal(net.fw.stats.accepted, 0)
})

t.test('the server refuses: the client gets a RST from the original destination', async t => {
  const events: TransparentLogEvent[] = []
  const net = transparentNet({ onLog: e => events.push(e) })
  // Nobody listens on the server's port 80: the server answers the proxy's SYN with RST.
  const seen: Array<{ src: string; flags: number }> = []
  const conn = net.tcpC.connect(parseIPv4(SERVER), 80)
  let err: string | null = null
  conn.stage.tcb.events = { error: why => { err = why } }
  // Watch what the client receives.
  const orig = conn.stage.deliver.bind(conn.stage)
  conn.stage.deliver = (msg, dir) => {
    const b = msg.buf
    if (dir === Dir.Forward) seen.push({ src: formatIPv4(get32(b, msg.l3 + 12)), flags: b[msg.off + 13]! })
    orig(msg, dir)
  }
  net.sched.runUntil(() => err !== null, net.clock.now() + 10_000)
  t.equal(err, 'reset', 'the client connection was reset')
  const rst = seen.find(s => (s.flags & TcpFlag.RST) !== 0)
  t.ok(rst, 'a RST reached the client')
  t.equal(rst?.src, SERVER, 'from the address the client asked for')
  t.same(events.map(e => e.type), ['connect', 'server-error'])
  t.equal(net.fw.stats.active, 0, 'the session ended')
})

t.test('allow/deny rules on the original destination', async t => {
  const events: TransparentLogEvent[] = []
  const net = transparentNet({ rules: [{ action: 'deny', dst: SERVER, ports: 8080 }, { action: 'allow' }], onLog: e => events.push(e) })
  const conn = net.tcpC.connect(parseIPv4(SERVER), 8080)
  let err: string | null = null
  conn.stage.tcb.events = { error: why => { err = why } }
  net.sched.runUntil(() => err !== null, net.clock.now() + 10_000)
  t.equal(err, 'reset', 'denied: reset')
  t.equal(events[0]?.type, 'denied')
  t.match(events[0]?.reason ?? '', /rule 0/)
  const r = run(net, 80, data(10_000, 51), data(10_000, 52))
  t.equal(r.server?.digest(), sha(data(10_000, 51)), 'port 80 is allowed')
})

t.test('a connection to the proxy port itself is not intercepted: reset', async t => {
  const events: TransparentLogEvent[] = []
  const net = transparentNet({ onLog: e => events.push(e) })
  const conn = net.tcpC.connect(parseIPv4(PROXY_A), 1080)
  let err: string | null = null
  conn.stage.tcb.events = { error: why => { err = why } }
  net.sched.runUntil(() => err !== null, net.clock.now() + 10_000)
  t.equal(err, 'reset')
  t.equal(events[0]?.type, 'not-intercepted')
})

t.test('bad intercept rules are refused with the rule named', async t => {
  t.throws(() => transparentNet({}, { intercept: [{ dst: '10.0.1.0/33' }] }), /rules\[0\]\.dst: bad prefix length/)
  t.throws(() => transparentNet({}, { intercept: [{ dst: '10.0.1.0/24', ports: [80, 0] }] }), /rules\[0\]\.ports: 0 is not a port/)
  t.throws(() => transparentNet({}, { intercept: [] }), /at least one rule/)
  t.throws(() => transparentProxy({ splice: { afterBytes: -1 } }), /afterBytes must be an integer/)
})

for (const mode of ['fwd', 'ipfwd'] as const) t.test(`an intercepted session spliced to ${mode} unsplices back to two live TCBs`, async t => {
  // IP/FWD: the rebuilt client-side IP stage must answer as the intercepted destination.
  const net = transparentNet({ splice: 'immediately', mode })
  let sess: ProxySessionApi | null = null
  const handler = net.fw.handler
  const open = handler.onServerOpen!.bind(handler)
  handler.onServerOpen = s => { sess = s; open(s) }
  // Back in control mode the bytes keep moving through both TCBs. (Splicing again right
  // away stalls for plug gateways too: an engine matter, not interception's.)
  handler.onUnspliced = s => s.relay()
  // Both directions still flowing at the unsplice (a FIN forwarded already would refuse it).
  const up = data(3_000_000, 61)
  const down = data(3_000_000, 62)
  let asked = false
  const r = run(net, 80, up, down, c => {
    const s = sess as ProxySessionApi | null
    if (!asked && s !== null && s.state === 'spliced' && c.received > 300_000) {
      asked = true
      s.unsplice()
    }
  }, 60_000)
  t.ok(asked, 'unsplice requested mid-transfer')
  t.equal(net.fw.stats.unsplices, 1, 'unspliced once')
  t.equal(r.server?.digest(), sha(up), 'server got every client byte across splice and unsplice')
  t.equal(r.client.digest(), sha(down), 'client got every server byte')
})
