import t from 'tap'
import { parseIPv4 } from '../../core/bytes.js'
import { Random } from '../../core/random.js'
import type { ProxyHandler, ProxySessionApi } from '../../stages/proxy/session.js'
import { PROXY_A, PROXY_PORT, proxyNet, runProxied, SERVER, SERVER_PORT } from '../helpers/proxy-net.js'
import { sha } from '../helpers/tcp-net.js'

function plug(onOpen?: (s: ProxySessionApi) => void): ProxyHandler {
  return {
    name: 'plug',
    onClientOpen: s => s.connect(parseIPv4(SERVER), SERVER_PORT),
    onServerOpen: s => onOpen?.(s),
  }
}

const data = (n: number, seed: number): Uint8Array => new Random(seed).bytes(new Uint8Array(n))

for (const layout of ['1-path', '2-path'] as const) {
  t.test(`${layout}: relay in control mode moves both streams intact`, async t => {
    const net = proxyNet(plug(), { forwarder: { layout } })
    const up = data(300_000, 1)
    const down = data(500_000, 2)
    const r = runProxied(net, up, down)
    t.ok(r.ok, 'transfer completed')
    t.equal(r.server?.received, up.length)
    t.equal(r.client.received, down.length)
    t.equal(r.server?.digest(), sha(up))
    t.equal(r.client.digest(), sha(down))
    t.equal(net.fw.stats.closed, 1, 'the session ended')
    t.equal(net.fw.stats.active, 0)
  })

  for (const mode of ['fwd', 'ipfwd'] as const) {
    t.test(`${layout}: splice to ${mode} as soon as the server answers`, async t => {
      const net = proxyNet(plug(s => s.splice({ mode })), { forwarder: { layout } })
      const up = data(300_000, 3)
      const down = data(500_000, 4)
      const r = runProxied(net, up, down)
      t.ok(r.ok, 'transfer completed')
      t.equal(r.server?.digest(), sha(up))
      t.equal(r.client.digest(), sha(down))
      t.equal(net.fw.stats.splices, 1, 'spliced once')
      t.equal(net.fw.stats.spliceFailures, 0)
    })

    t.test(`${layout}: splice to ${mode} mid-transfer with data buffered`, async t => {
      let sess: ProxySessionApi | null = null
      const net = proxyNet(plug(s => { sess = s }), { forwarder: { layout } })
      const up = data(2_000_000, 5)
      const down = data(3_000_000, 6)
      let spliced = false
      const r = runProxied(net, up, down, {
        during: () => {
          const s = sess as ProxySessionApi | null
          if (!spliced && s !== null && s.bytes.fromServer > 500_000) {
            spliced = true
            s.splice({ mode })
          }
        },
      })
      t.ok(spliced, 'splice requested mid-transfer')
      t.ok(r.ok, 'transfer completed')
      t.equal(r.server?.digest(), sha(up))
      t.equal(r.client.digest(), sha(down))
      t.equal(net.fw.stats.splices, 1, JSON.stringify(net.fw.stats))
    })
  }
}


t.test('a server that speaks first is relayed with no client traffic to drive the proxy', async t => {
  const net = proxyNet(plug())
  net.tcpS.listen(SERVER_PORT, conn => {
    conn.stage.app = { onData() {} }
    conn.stage.tcb.write(new Uint8Array(1000).fill(7)) // a banner, sent at once
  })
  const c = net.tcpC.connect(parseIPv4(PROXY_A), PROXY_PORT) // the client only listens
  let got = 0
  const buf = new Uint8Array(65536)
  c.stage.app = { onData: () => { for (let n; (n = c.stage.tcb.read(buf)) > 0;) got += n } }
  net.sched.runFor(10_000)
  t.equal(got, 1000, 'the client got the 1000-byte banner')
})
