// Seeded fuzzing of every parser on the receive side: valid frames of each kind, then
// truncated, bit-flipped, field-smashed (checksums sometimes fixed up so deeper code
// runs). Invariants: no exception escapes a stage, nothing leaks from the frame pool,
// and the router path accounts for every datagram (forwarded or dropped with a reason).
import t from 'tap'
import { framePool, type Msg } from '../../../core/msg.js'
import { ManualClock } from '../../../core/clock.js'
import { Scheduler } from '../../../core/scheduler.js'
import { NO_OFFLOADS, type Device, type DeviceStats, type ReceiveHandler } from '../../../core/device.js'
import { parseIPv4, set16 } from '../../../core/bytes.js'
import { Random, testSeed } from '../../../core/random.js'
import { Path } from '../../../core/path.js'
import { Host } from '../../../paths/host.js'
import { IpRouter } from '../../../paths/ip-router.js'
import { ARP, ArpOp, writeArp } from '../../../stages/arp/index.js'
import { ETH, emitEth } from '../../../stages/eth/index.js'
import { emitIcmp, emitIpv4, fillIpv4Checksum, fragmentDatagram, IP } from '../../../stages/ip/index.js'
import { Msg as MsgClass } from '../../../core/msg.js'
import { ARP_DROPS } from '../../../stages/arp/stage.js'
import { ETH_DROPS } from '../../../stages/eth/stage.js'
import { ROUTER_DROPS } from '../../../stages/router/stage.js'
import { ICMP_DROPS, IP_DROPS, REASM_DROPS } from '../../../stages/ip/index.js'

const seed = testSeed()
t.comment(`seed=${seed}`)
const rng = new Random(seed)

class FakeDevice implements Device {
  readonly offloads = NO_OFFLOADS
  readonly mtu = 1500
  handler: ReceiveHandler | null = null
  sent = 0
  constructor(readonly name: string, readonly mac: Uint8Array) {}
  send(batch: Msg[], count: number): void {
    for (let i = 0; i < count; i++) batch[i]!.free()
    this.sent += count
  }
  onReceive(h: ReceiveHandler | null): void {
    this.handler = h
  }
  stats(): DeviceStats {
    return { rxFrames: 0, rxBytes: 0, txFrames: this.sent, txBytes: 0, drops: {} }
  }
  async close(): Promise<void> {}
  inject(bytes: Uint8Array): void {
    const m = framePool.allocFrom(bytes)
    this.handler!([m], 1)
  }
}

const US = Uint8Array.of(2, 0, 0, 0, 0, 1)
const PEER = Uint8Array.of(2, 0, 0, 0, 0, 2)
const US_IP = parseIPv4('10.0.0.1')
const PEER_IP = parseIPv4('10.0.0.2')
const FAR_IP = parseIPv4('10.0.9.9')

function baseFrames(dstMac: Uint8Array, dstIp: number): Uint8Array[] {
  const eth = (type: number, p: Uint8Array, dst = dstMac) => emitEth({ dst, src: PEER, type }, p)
  const arp = (op: number, tpa: number) => {
    const b = new Uint8Array(ARP.LEN)
    writeArp(b, 0, { op, sha: PEER, spa: PEER_IP, tha: new Uint8Array(6), tpa })
    return b
  }
  const ip = (o: Partial<Parameters<typeof emitIpv4>[0]>) => emitIpv4({ src: PEER_IP, dst: dstIp, protocol: 1, ttl: 64, payload: emitIcmp({ type: 8, code: 0, rest: 0x10001, data: new Uint8Array(24) }), ...o })
  const frames = [
    eth(0x0806, arp(ArpOp.REQUEST, US_IP), new Uint8Array(6).fill(0xff)),
    eth(0x0806, arp(ArpOp.REPLY, US_IP)),
    eth(0x0806, arp(ArpOp.REQUEST, FAR_IP)),
    eth(0x0800, ip({})),
    eth(0x0800, ip({ protocol: 6, payload: new Uint8Array(40) })),
    eth(0x0800, ip({ protocol: 17, payload: new Uint8Array(16) })),
    eth(0x0800, ip({ options: Uint8Array.of(0x94, 4, 0, 0, 1, 0) })),
    eth(0x0800, ip({ ttl: 1 })),
    eth(0x0800, ip({ protocol: 1, payload: emitIcmp({ type: 3, code: 4, rest: 1400, data: ip({}).subarray(0, 28) }) })),
    eth(0x8100, new Uint8Array(50)),
  ]
  // Fragments of a large echo request.
  const big = MsgClass.from(ip({ payload: emitIcmp({ type: 8, code: 0, rest: 0x10002, data: new Uint8Array(3000) }) }))
  fragmentDatagram(big, 1000, f => {
    frames.push(eth(0x0800, f.bytes().slice()))
    f.free()
  })
  return frames
}

function mutate(f: Uint8Array): Uint8Array {
  let b = Uint8Array.from(f)
  const n = rng.int(0, 3)
  for (let k = 0; k < n; k++) {
    switch (rng.int(0, 5)) {
      case 0:
        b = b.slice(0, rng.int(0, b.length))
        break
      case 1:
        if (b.length > 0) b[rng.int(0, b.length - 1)]! ^= 1 << rng.int(0, 7)
        break
      case 2:
        if (b.length > 0) b[rng.int(0, b.length - 1)] = rng.int(0, 255)
        break
      case 3: {
        // Smash an IP header field with an extreme value.
        const at = ETH.HLEN + [0, 2, 6, 8, 9][rng.int(0, 4)]!
        if (b.length >= at + 2) set16(b, at, [0, 0xffff, 0x4f00, 0x2000, 0x1fff, rng.int(0, 0xffff)][rng.int(0, 5)]!)
        break
      }
      case 4: {
        const tail = rng.bytes(new Uint8Array(rng.int(1, 40)))
        const c = new Uint8Array(b.length + tail.length)
        c.set(b)
        c.set(tail, b.length)
        b = c
        break
      }
      default:
        break
    }
  }
  // Half the time, repair the IP checksum so the validation after it is reached.
  if (rng.chance(0.5) && b.length >= ETH.HLEN + IP.HLEN && b[12] === 8 && b[13] === 0) {
    const ihl = (b[ETH.HLEN]! & 0xf) * 4
    if (ihl >= 20 && ETH.HLEN + ihl <= b.length) fillIpv4Checksum(b, ETH.HLEN)
  }
  return b
}

function allowed(reasons: readonly string[]): Set<string> {
  return new Set([...reasons, 'unlinked'])
}

t.test('host receive side: no exception, no leak, reasons from the declared lists', async t => {
  const before = framePool.stats().inUse
  const sched = new Scheduler({ clock: new ManualClock() })
  const host = new Host(sched, { name: 'fz' })
  const dev = new FakeDevice('fz0', US)
  const iface = host.addInterface(dev, { address: '10.0.0.1/24' })
  // A registered protocol whose path just sinks what it gets.
  const sink = new Path([], { name: 'sink' })
  sched.adopt(sink)
  sink.connect(1, { name: 'drain', send: (b, n) => { for (let i = 0; i < n; i++) b[i]!.free() } })
  host.registerProtocol(6, sink.ends[0])
  const bases = baseFrames(US, US_IP)
  const N = 20000
  for (let i = 0; i < N; i++) {
    dev.inject(mutate(bases[rng.int(0, bases.length - 1)]!))
    if (i % 64 === 0) sched.runFor(rng.int(0, 50))
  }
  sched.runFor(60_000)
  const paths = [iface.arpPath, iface.icmpPath, iface.reasmPath, sink]
  t.equal(paths.reduce((s, p) => s + p.exceptions, 0), 0, 'no exception escaped any stage')
  const ok = allowed([...ETH_DROPS, ...ARP_DROPS, ...IP_DROPS, ...ICMP_DROPS, ...REASM_DROPS])
  const seen: Record<string, number> = {}
  for (const p of paths) for (const s of p.stages) for (const [r, n] of Object.entries(s.drops)) {
    seen[r] = (seen[r] ?? 0) + n
    if (!ok.has(r)) t.fail(`undeclared drop reason ${r} in ${s.name}`)
  }
  const b = iface.binding.stats
  t.equal(b.classified + b.unclaimed, N + host.reassembler.stats().completed, 'every frame was classified or counted as unclaimed')
  t.ok(Object.keys(seen).length >= 8, `drops seen: ${JSON.stringify(seen)}`)
  t.ok(iface.icmp.echoAnswered > 0, `${iface.icmp.echoAnswered} echo requests still answered`)
  host.close()
  sink.close()
  t.equal(framePool.stats().inUse, before, 'every frame returned to the pool')
})

t.test('router path: every datagram forwarded or dropped with a reason; no exception, no leak', async t => {
  const before = framePool.stats().inUse
  const sched = new Scheduler({ clock: new ManualClock() })
  const da = new FakeDevice('ra', Uint8Array.of(2, 0, 0, 0, 1, 1))
  const db = new FakeDevice('rb', Uint8Array.of(2, 0, 0, 0, 1, 2))
  const r = new IpRouter(sched, { sides: [{ device: da, address: '10.0.0.254/24' }, { device: db, address: '10.0.9.254/24' }], icmpRate: { perSecond: 1e9, burst: 1e9 } })
  r.sides[0].arp.setStatic(PEER_IP, PEER)
  r.sides[1].arp.setStatic(FAR_IP, PEER)
  const bases = baseFrames(da.mac, FAR_IP)
  const N = 20000
  for (let i = 0; i < N; i++) {
    da.inject(mutate(bases[rng.int(0, bases.length - 1)]!))
    if (i % 64 === 0) sched.runFor(1)
  }
  sched.runFor(60_000)
  const [e1, router, e2] = r.path.stages as [typeof r.path.stages[0], typeof r.router, typeof r.path.stages[0]]
  t.equal(r.path.exceptions, 0)
  const sum = (d: Record<string, number>) => Object.values(d).reduce((a, b) => a + b, 0)
  const entered = r.path.ends[0].inPkts
  t.ok(entered > N / 4, `${entered} frames reached the router path`)
  t.equal(sum(e1.drops) + sum(router.drops) + router.forwarded, entered, 'entered = ETH drops + ROUTER drops + forwarded')
  t.same(e2.drops, {}, 'the egress ETH had a MAC for every next hop')
  for (const k of Object.keys(router.drops)) if (!allowed(ROUTER_DROPS).has(k)) t.fail(`undeclared router drop ${k}`)
  t.ok(router.forwarded > 0 && router.icmpSent > 0, `forwarded ${router.forwarded}, ICMP errors ${router.icmpSent}`)
  t.equal(r.host.interfaces.reduce((s, i) => s + i.arpPath.exceptions + i.icmpPath.exceptions + i.reasmPath.exceptions, 0), 0)
  r.close()
  t.equal(framePool.stats().inUse, before, 'every frame returned to the pool')
})
