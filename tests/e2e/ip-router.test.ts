import t from 'tap'
import { ManualClock } from '../../core/clock.js'
import { Scheduler } from '../../core/scheduler.js'
import { MemoryWire } from '../../drivers/memory/wire.js'
import { Host } from '../../paths/host.js'
import { IpRouter } from '../../paths/ip-router.js'
import { IpProto } from '../../stages/ip/header.js'
import { IcmpType, UnreachCode } from '../../stages/ip/icmp.js'
import type { IcmpErrorReport } from '../../stages/ip/icmp-stage.js'

const mac = (n: number) => Uint8Array.of(2, 0, 0, 0, 0, n)

function net(opts: { mtuB?: number; impair?: object; seed?: number } = {}) {
  const sched = new Scheduler({ clock: new ManualClock() })
  const w1 = new MemoryWire(sched, { a: { name: 'a0', mac: mac(1) }, b: { name: 'r0', mac: mac(2) }, impair: opts.impair ?? { delayMs: 1 }, seed: opts.seed ?? 1 })
  const w2 = new MemoryWire(sched, {
    a: { name: 'r1', mac: mac(3), mtu: opts.mtuB ?? 1500 }, b: { name: 'b0', mac: mac(4), mtu: opts.mtuB ?? 1500 },
    impair: opts.impair ?? { delayMs: 1 }, seed: (opts.seed ?? 1) + 1,
  })
  const a = new Host(sched, { name: 'a' })
  const b = new Host(sched, { name: 'b' })
  a.addInterface(w1.a, { address: '10.0.1.1/24' })
  b.addInterface(w2.b, { address: '10.0.2.1/24' })
  a.addRoute('0.0.0.0/0', { via: '10.0.1.254' })
  b.addRoute('0.0.0.0/0', { via: '10.0.2.254' })
  const r = new IpRouter(sched, { sides: [{ device: w1.b, address: '10.0.1.254/24' }, { device: w2.a, address: '10.0.2.254/24' }] })
  return { sched, a, b, r, w1, w2 }
}

t.test('two hosts ping each other through the IP router path', async t => {
  const { sched, a, b, r } = net()
  const p1 = a.ping('10.0.2.1', { count: 5 })
  const p2 = b.ping('10.0.1.1', { count: 5 })
  sched.runFor(3000)
  const [r1, r2] = [await p1, await p2]
  t.equal(r1.received, 5)
  t.equal(r2.received, 5)
  t.equal(r1.rttMs[4], 4, 'two 1 ms hops each way once ARP is warm')
  t.equal(r.router.forwarded, 20, '5 requests + 5 replies each way')
  t.same(r.router.stats().drops, {})
  t.match(r.describe(), /router\/forward: \[r0\] -> eth#1\(0800\) -> router#1 -> eth#2\(0800\) -> \[r1\]/)
})

t.test('the router answers pings to its own addresses', async t => {
  const { sched, a, r } = net()
  const p = a.ping('10.0.2.254', { count: 2 })
  const q = a.ping('10.0.1.254', { count: 2 })
  sched.runFor(2000)
  t.equal((await p).received, 2)
  t.equal((await q).received, 2)
  t.equal(r.router.forwarded, 0)
})

t.test('TTL expiry: ICMP time exceeded comes back from the router', async t => {
  const { sched, a } = net()
  const reports: IcmpErrorReport[] = []
  a.onIcmpError(e => reports.push(e))
  const { stages, iface } = a.netStages('10.0.2.1', IpProto.ICMP, { ttl: 1 })
  const { Path } = await import('../../core/path.js')
  const { allocMsg } = await import('../../core/msg.js')
  const path = a.attach(new Path(stages), iface)
  const m = allocMsg(16)
  m.buf.fill(0, m.off, m.off + 16)
  m.buf[m.off] = 8
  m.end = m.off + 16
  stages[1]!.deliver(m, 1)
  sched.runFor(1000)
  t.equal(reports.length, 1)
  t.equal(reports[0]!.type, IcmpType.TIME_EXCEEDED)
  t.equal(reports[0]!.dst, 0x0a000201)
  path.close()
})

t.test('DF over a small MTU: ICMP fragmentation needed with the next-hop MTU', async t => {
  const { sched, a, b, r } = net({ mtuB: 576 })
  const reports: IcmpErrorReport[] = []
  a.onIcmpError(e => reports.push(e))
  const { Path } = await import('../../core/path.js')
  const { allocMsg } = await import('../../core/msg.js')
  const ns = a.netStages('10.0.2.1', 253, { df: true })
  const path = a.attach(new Path(ns.stages), ns.iface)
  const m = allocMsg(1000)
  m.buf.fill(7, m.off, m.off + 1000)
  m.end = m.off + 1000
  ns.ip.deliver(m, 1)
  sched.runFor(1000)
  t.equal(reports.length, 1)
  t.equal(reports[0]!.type, IcmpType.DEST_UNREACHABLE)
  t.equal(reports[0]!.code, UnreachCode.FRAG_NEEDED)
  t.equal(reports[0]!.mtu, 576)
  t.equal(r.router.drops['needs-frag'], 1)
  // Without DF the router fragments, and b reassembles the ping.
  const p = a.ping('10.0.2.1', { size: 1400 })
  sched.runFor(1000)
  t.equal((await p).received, 1)
  t.ok(r.router.fragmentsOut >= 3)
  t.equal(b.reassembler.stats().completed, 1)
  path.close()
})

t.test('no route: ICMP net unreachable', async t => {
  const { sched, a, r } = net()
  const reports: IcmpErrorReport[] = []
  a.onIcmpError(e => reports.push(e))
  const p = a.ping('192.168.7.7')
  sched.runFor(2000)
  t.equal((await p).received, 0)
  t.equal(r.router.drops['no-route'], 1)
  t.equal(reports[0]?.code, UnreachCode.NET)
})

t.test('createIpRouter with extra routes; addRoute; close detaches forwarding', async t => {
  const { createIpRouter } = await import('../../paths/ip-router.js')
  const sched = new Scheduler({ clock: new ManualClock() })
  const w1 = new MemoryWire(sched, { seed: 3 })
  const w2 = new MemoryWire(sched, { seed: 4 })
  const r = createIpRouter(sched, {
    name: 'r2',
    sides: [{ device: w1.b, address: '10.1.0.254/24' }, { device: w2.a, address: '10.2.0.254/24' }],
    routes: [{ cidr: '172.16.0.0/12', via: '10.2.0.1' }],
    icmpRate: { perSecond: 5, burst: 1 },
  })
  r.addRoute('192.168.0.0/16', { dev: 'mem0' })
  t.match(r.describe(), /172\.16\.0\.0\/12 via 10\.2\.0\.1 dev mem0/)
  t.match(r.describe(), /192\.168\.0\.0\/16 dev mem0/)
  t.equal(r.sides[0].ipv4.forward, r.path.ends[0])
  r.close()
  t.equal(r.sides[0].ipv4.forward, null)
  t.ok(r.path.isClosed)
})
