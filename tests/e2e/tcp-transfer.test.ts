import t from 'tap'
import { Random, testSeed } from '../../core/random.js'
import { parseIPv4 } from '../../core/bytes.js'
import { IP_B, runTransfer, sha, twoTcpHosts } from '../helpers/tcp-net.js'
import { bytes } from '../helpers/tcp-harness.js'

t.test('clean wire: 1 MB each way, digests equal, both sides reach CLOSED', async t => {
  const net = twoTcpHosts()
  const a = new Random(1).bytes(new Uint8Array(1 << 20))
  const b = new Random(2).bytes(new Uint8Array(1 << 20))
  const r = runTransfer(net, a, b)
  t.ok(r.ok, 'transfer finished')
  t.equal(r.server?.received, a.length)
  t.equal(r.client.received, b.length)
  t.equal(r.server?.digest(), sha(a))
  t.equal(r.client.digest(), sha(b))
  t.equal(r.conn.stage.tcb.counters.retransmits, 0, 'no retransmissions on a clean wire')
  t.ok(r.conn.stage.tcb.sackOk && r.conn.stage.tcb.tsOk, 'SACK and timestamps negotiated')
})

t.test('small transfer', async t => {
  const net = twoTcpHosts()
  const r = runTransfer(net, bytes(100), bytes(10))
  t.ok(r.ok)
  t.equal(r.server?.received, 100)
})

t.test('every frame duplicated: one connection per 4-tuple, every byte once', async t => {
  const net = twoTcpHosts({ impair: { duplicate: 1 }, seed: 3 })
  const a = new Random(4).bytes(new Uint8Array(100_000))
  const b = new Random(5).bytes(new Uint8Array(50_000))
  const r = runTransfer(net, a, b)
  t.ok(r.ok)
  t.equal(r.server?.digest(), sha(a))
  t.equal(r.client.digest(), sha(b))
  t.equal(net.tcpB.listeners.get(8080)?.stats.accepted, 1, 'the duplicate SYN did not open a second connection')
  t.ok(r.server!.conn.stage.tcb.counters.dupSegsIn > 0, 'duplicates were seen and discarded')
})

t.test('window scaling, SACK and timestamps off on one side each: still a clean transfer', async t => {
  for (const [configA, configB] of [
    [{ windowScaling: false }, {}], [{}, { windowScaling: false }], [{ sack: false }, { timestamps: false }], [{ timestamps: false, sack: false, windowScaling: false }, {}],
  ] as const) {
    const net = twoTcpHosts({ configA, configB, impair: { loss: 0.03 }, seed: 11 })
    const a = new Random(6).bytes(new Uint8Array(200_000))
    const r = runTransfer(net, a, bytes(10))
    t.ok(r.ok && r.server?.digest() === sha(a), `A ${JSON.stringify(configA)} B ${JSON.stringify(configB)}`)
    const tcb = r.conn.stage.tcb
    t.equal(tcb.sndWscale > 0, configA.windowScaling !== false && (configB as { windowScaling?: boolean }).windowScaling !== false, 'scaling only when both offer it')
  }
})

t.test('2 MB each way under 5% loss, reordering and duplication (long recoveries, bounded SACK state)', async t => {
  const base = testSeed()
  t.comment(`seed=${base}`)
  for (let i = 0; i < 3; i++) {
    const seed = (base + i) >>> 0
    const net = twoTcpHosts({ impair: { loss: 0.05, reorder: 0.05, reorderDelayMs: 5, duplicate: 0.02, delayMs: 10, jitterMs: 2 }, seed, configA: { minRtoMs: 200 }, configB: { minRtoMs: 200 } })
    const a = new Random(seed).bytes(new Uint8Array(2 << 20))
    const b = new Random(seed + 1).bytes(new Uint8Array(2 << 20))
    const r = runTransfer(net, a, b)
    t.ok(r.ok && r.server?.digest() === sha(a) && r.client.digest() === sha(b), `seed=${seed}: both directions intact`)
    const c = r.conn.stage.tcb.counters
    t.ok(c.fastRetransmits > 0, `seed=${seed}: ${c.fastRetransmits} fast recoveries, ${c.rtoTimeouts} timeouts, ${c.retransmits} retransmissions`)
  }
})

t.test('100 concurrent connections under 2% loss: each gets its own bytes back intact', async t => {
  const net = twoTcpHosts({ impair: { loss: 0.02, delayMs: 3, jitterMs: 1 }, seed: 21, configA: { minRtoMs: 200 }, configB: { minRtoMs: 200 } })
  const N = 100
  // Echo server: every connection sends back what it received, then closes.
  net.tcpB.listen(7, conn => {
    const tcb = conn.stage.tcb
    const buf = new Uint8Array(65536)
    const pump = (): void => {
      for (;;) {
        const room = tcb.writableLength
        if (room === 0 || tcb.readableLength === 0) break
        const n = tcb.read(buf, 0, Math.min(room, buf.length))
        tcb.write(buf, 0, n)
      }
      if (tcb.peerFinished && tcb.readableLength === 0) tcb.close()
    }
    conn.stage.app = { onData: pump }
    tcb.events = { data: pump, end: pump, writable: pump }
  })
  const clients: { data: Uint8Array; got: number[]; done: boolean; port: number }[] = []
  for (let i = 0; i < N; i++) {
    const data = new Random(100 + i).bytes(new Uint8Array(5000 + i * 37))
    const c = net.tcpA.connect(parseIPv4(IP_B), 7)
    const st = { data, got: [] as number[], done: false, port: c.stage.tcb.localPort }
    clients.push(st)
    const tcb = c.stage.tcb
    let sent = 0
    const buf = new Uint8Array(65536)
    const write = (): void => {
      if (sent < data.length) sent += tcb.write(data, sent)
      if (sent === data.length) tcb.shutdown()
    }
    const read = (): void => {
      for (;;) {
        const n = tcb.read(buf)
        if (n === 0) break
        for (let k = 0; k < n; k++) st.got.push(buf[k]!)
      }
      if (tcb.peerFinished) st.done = true
    }
    c.stage.app = { onData: read }
    tcb.events = { connected: write, writable: write, data: read, end: read }
  }
  net.sched.runUntil(() => clients.every(c => c.done), net.clock.now() + 600_000)
  t.equal(new Set(clients.map(c => c.port)).size, N, 'distinct ephemeral ports')
  const bad = clients.filter(c => !c.done || c.got.length !== c.data.length || c.got.some((v, k) => v !== c.data[k]))
  t.equal(bad.length, 0, `every echo intact (${bad.length} bad)`)
})
