// The host contract the TCP engineer builds on: registerProtocol, netStages, attach, the
// upward (l3/l4/off) and downward (push IP + ETH, ARP parking) conventions, ICMP errors,
// over a memory wire in virtual time; plus configuration errors.
import t from 'tap'
import { ManualClock } from '../../core/clock.js'
import { Scheduler } from '../../core/scheduler.js'
import { MemoryWire } from '../../drivers/memory/wire.js'
import { Host } from '../../paths/host.js'
import { Path, type PathEnd } from '../../core/path.js'
import { Dir, Stage } from '../../core/stage.js'
import { allocMsg, type Msg } from '../../core/msg.js'
import { get16, get32, parseIPv4, set16 } from '../../core/bytes.js'
import { checksum, pseudoHeaderSum } from '../../core/checksum.js'
import { ConfigError } from '../../core/errors.js'
import type { ClassifierNode } from '../../core/classifier.js'
import { testSeed } from '../../core/random.js'

const PROTO = 253 // RFC 3692 experimental protocol number

/** A toy transport: 4-byte header (src port, dst port) + a checksum over the pseudo-header, echoes what it gets. */
class Toy extends Stage {
  got: { l3src: number; l3dst: number; l4: number; off: number; payload: number[] }[] = []
  echo = false
  constructor(readonly local: number, readonly remote: number) {
    super('TOY', Dir.Forward)
  }
  deliver(msg: Msg, dir: Dir): void {
    if (dir === this.down) return this.send(msg, dir)
    const b = msg.buf
    const sum = checksum(b, msg.off, msg.end - msg.off, pseudoHeaderSum(get32(b, msg.l3 + 12), get32(b, msg.l3 + 16), PROTO, msg.end - msg.off))
    if (sum !== 0) return this.drop(msg, 'bad-checksum')
    this.got.push({ l3src: get32(b, msg.l3 + 12), l3dst: get32(b, msg.l3 + 16), l4: msg.l4, off: msg.off, payload: [...b.subarray(msg.off + 6, msg.end)] })
    if (this.echo) this.write([...b.subarray(msg.off + 6, msg.end)])
    msg.free()
  }
  write(payload: number[]): void {
    const m = allocMsg(6 + payload.length)
    const o = m.off
    set16(m.buf, o, 1000)
    set16(m.buf, o + 2, 2000)
    set16(m.buf, o + 4, 0)
    m.buf.set(payload, o + 6)
    m.end = o + 6 + payload.length
    set16(m.buf, o + 4, checksum(m.buf, o, m.end - o, pseudoHeaderSum(this.local, this.remote, PROTO, m.end - o)))
    this.originate(m, this.down)
  }
}

/** A demux node standing in for TCP's 4-tuple node: one path end for everything. */
function node(end: PathEnd, seen: number[]): ClassifierNode {
  return {
    name: 'toy flow',
    classify: (msg, off) => {
      seen.push(get16(msg.buf, off))
      return end
    },
    describe: (indent, out) => out.push(`${indent}toy flow -> ${end.name}`),
  }
}

function setup(impair = {}, seed = 1) {
  const sched = new Scheduler({ clock: new ManualClock() })
  const wire = new MemoryWire(sched, { impair, seed })
  const a = new Host(sched, { name: 'a' })
  const b = new Host(sched, { name: 'b' })
  return { sched, wire, a, b }
}

t.test('netStages + attach + registerProtocol: datagrams both ways with the l3/l4 contract', async t => {
  const { sched, wire, a, b } = setup({ delayMs: 1 })
  const A = parseIPv4('10.0.0.1')
  const B = parseIPv4('10.0.0.2')
  const ifa = a.addInterface(wire.a, { address: '10.0.0.1/24' })
  const ifb = b.addInterface(wire.b, { address: '10.0.0.2/24' })
  const na = a.netStages('10.0.0.2', PROTO)
  t.equal(na.localIp, A)
  t.equal(na.iface, ifa)
  t.equal(na.stages.length, 2)
  const toyA = new Toy(A, B)
  const pa = a.attach(new Path([...na.stages, toyA], { name: 'a/toy' }), na.iface)
  const nb = b.netStages(A, PROTO)
  const toyB = new Toy(B, A)
  toyB.echo = true
  const pb = b.attach(new Path([...nb.stages, toyB], { name: 'b/toy' }), nb.iface)
  const seenA: number[] = []
  const seenB: number[] = []
  b.registerProtocol(PROTO, node(pb.ends[0], seenB))
  a.registerProtocol(PROTO, node(pa.ends[0], seenA))
  toyA.write([1, 2, 3])
  toyA.write([4, 5])
  sched.runFor(100)
  t.equal(toyB.got.length, 2, 'B got both (the first waited for ARP in the bounded queue)')
  const g = toyB.got[0]!
  t.equal(g.l3src, A)
  t.equal(g.l3dst, B)
  t.equal(g.l4, g.off, 'l4 = off = the transport header')
  t.same(g.payload, [1, 2, 3])
  t.same(seenB, [1000, 1000], 'the node was called with off at the transport header')
  t.same(toyA.got.map(x => x.payload), [[1, 2, 3], [4, 5]], 'echoed back')
  t.match(b.describe(), /IP proto\n\s+1 -> b\/mem1\/icmp\.end0\n\s+253\n\s+toy flow -> b\/toy\.end0/)
  t.match(b.describe(), /b\/toy: \[mem1\] -> eth#1\(0800\) -> ip#1\(10\.0\.0\.2 > 10\.0\.0\.1 proto 253\) -> toy#1 -> \[-\]/)
  t.equal(ifb.arp.stats().requestsSent, 1, 'gratuitous ARP on start')
  t.ok(ifa.arp.stats().released >= 1, 'the first datagram was parked and released')
  const errs: number[][] = []
  a.onIcmpError(e => errs.push([e.type, e.code, e.protocol]))
  b.unregisterProtocol(PROTO)
  toyA.write([6])
  sched.runFor(100)
  t.equal(toyB.got.length, 2, 'unregistered: not delivered')
  t.equal(ifb.ipv4.counters.unknownProtocol, 1, 'counted as unknown protocol')
  t.same(errs, [[3, 2, PROTO]], 'answered with protocol unreachable (RFC 1122 §3.2.2.1)')
  t.equal(ifb.icmp.drops['protocol-unreachable'], 1)
  b.detach(pb)
  pb.close()
})

t.test('under loss, duplication and reordering the contract still holds (seeded)', async t => {
  const seed = testSeed()
  t.comment(`seed=${seed}`)
  const { sched, wire, a, b } = setup({ loss: 0.1, duplicate: 0.1, reorder: 0.1, delayMs: 1, jitterMs: 1 }, seed)
  const ia = a.addInterface(wire.a, { address: '10.0.0.1/24' })
  const ib = b.addInterface(wire.b, { address: '10.0.0.2/24' })
  // ARP first, under the same impairment. A can learn B from B's gratuitous ARP while its
  // own request is lost; B then resolves A on its own, one request a second (RFC 1122
  // §2.3.2.1), and the echo replies it parks meanwhile outlive the ping timeout. That is
  // the protocol working, so it is measured apart: both sides resolve within a few tries
  // (a resolution that fails is held FAILED for 20 s, then tried again).
  let tries = 0
  while (tries < 20 && !(ia.arp.entry(parseIPv4('10.0.0.2'))?.state === 'REACHABLE' && ib.arp.entry(parseIPv4('10.0.0.1'))?.state === 'REACHABLE')) {
    tries++
    const warm = a.ping('10.0.0.2', { count: 1, timeoutMs: 5000 })
    sched.runFor(5000)
    await warm
  }
  t.ok(tries < 20, `ARP resolved both ways after ${tries} ping(s)`)
  const p = a.ping('10.0.0.2', { count: 50, intervalMs: 10, timeoutMs: 500 })
  sched.runFor(5000)
  const r = await p
  t.equal(r.sent, 50)
  // Each echo survives with p = 0.9 each way: expect ~40 (binomial, sd 2.8); 25 is over 5 sd below.
  t.ok(r.received >= 25 && r.received <= 50, `${r.received} of 50 replies`)
})

t.test('ICMP errors reach onIcmpError listeners; unsubscribe works', async t => {
  const { sched, wire, a, b } = setup({ delayMs: 1 })
  a.addInterface(wire.a, { address: '10.0.0.1/24' })
  const ib = b.addInterface(wire.b, { address: '10.0.0.2/24' })
  const got: number[] = []
  const off = a.onIcmpError(e => got.push(e.type))
  ib.icmp.sendEcho(parseIPv4('10.0.0.1'), 1, 1) // warm ARP both ways
  sched.runFor(50)
  // B sends A a "time exceeded" about a datagram A sent.
  const { buildIcmpError, emitIpv4 } = await import('../../stages/ip/index.js')
  const offender = emitIpv4({ src: parseIPv4('10.0.0.1'), dst: parseIPv4('10.9.9.9'), protocol: 6, payload: new Uint8Array(20) })
  const err = buildIcmpError(offender, 0, offender.length, 11, 0, 0, parseIPv4('10.0.0.2'))!
  err.off += 20 // hand the ICMP part to the unbound IP stage, which adds the header
  err.nextHop = parseIPv4('10.0.0.1')
  err.l3 = -1
  ib.icmpPath.stages[1]!.deliver(err, Dir.Backward)
  sched.runFor(50)
  t.same(got, [11])
  off()
  t.equal(a.interfaces[0]!.icmp.errorsIn, 1)
})

t.test('configuration errors are typed and say how to fix them', async t => {
  const { sched, wire, a } = setup()
  t.throws(() => a.addInterface(wire.a, { address: '10.0.0/24' }), { name: 'ConfigError', message: /expected a\.b\.c\.d\/len/ })
  t.throws(() => a.addInterface(wire.a, { address: '10.0.0.1/24', mac: 'zz' }), { message: /bad MAC 'zz'/ })
  const i = a.addInterface(wire.a, { address: '10.0.0.1/24', mac: '02:00:00:00:09:09', name: 'eth0' })
  t.equal(a.interface('eth0'), i)
  t.throws(() => a.addInterface(wire.a, { address: '10.0.0.1/24' }), /already has an interface/)
  t.throws(() => a.addRoute('0.0.0.0/0', { via: '192.168.1.1' }), /on no connected network/)
  t.throws(() => a.addRoute('0.0.0.0/0', { via: 'x' }), /bad gateway/)
  t.throws(() => a.addRoute('0.0.0.0/0', {}), /\{ via \} or \{ dev \}/)
  t.throws(() => a.addRoute('0.0.0.0/0', { dev: 'nope' }), /no interface 'nope' \(have eth0\)/)
  t.throws(() => a.netStages('192.168.1.1', 6), /no route to 192\.168\.1\.1/)
  t.throws(() => a.registerProtocol(1, {} as ClassifierNode), /belongs to the host/)
  t.throws(() => a.registerProtocol(300, {} as ClassifierNode), ConfigError)
  await t.rejects(a.ping('192.168.1.1'), /no route/)
  a.addRoute('192.168.0.0/16', { dev: 'eth0' })
  a.addRoute('0.0.0.0/0', { via: '10.0.0.254', dev: 'eth0' })
  t.throws(() => a.addRoute('1.0.0.0/8', { via: '10.0.0.254', dev: 'other' }), /no interface/)
  t.equal(a.route('8.8.8.8')?.gateway, parseIPv4('10.0.0.254'))
  t.equal(a.route(parseIPv4('192.168.3.3'))?.gateway, 0)
  t.ok(a.isLocalAddress(parseIPv4('10.0.0.1')))
  a.close()
  sched.runFor(10)
})

t.test('a registered node that claims nothing is counted apart from unknown protocols', async t => {
  const { sched, wire, a, b } = setup()
  a.addInterface(wire.a, { address: '10.0.0.1/24' })
  const ib = b.addInterface(wire.b, { address: '10.0.0.2/24' })
  b.registerProtocol(PROTO, { name: 'nobody', classify: () => null, describe: () => undefined })
  const na = a.netStages('10.0.0.2', PROTO)
  const toy = new Toy(parseIPv4('10.0.0.1'), parseIPv4('10.0.0.2'))
  a.attach(new Path([...na.stages, toy]), na.iface)
  toy.write([1])
  sched.runFor(50)
  t.same(ib.ipv4.counters, { short: 0, notForUs: 0, unknownProtocol: 0, unclaimedBelow: 1 })
})

t.test('registerProtocol before addInterface applies to interfaces added later', async t => {
  const { wire, a } = setup()
  const p = new Path([])
  a.registerProtocol(PROTO, p.ends[0])
  const i = a.addInterface(wire.a, { address: '10.0.0.1/24', announce: false })
  t.equal(i.ipv4.protocols.get(PROTO), p.ends[0])
  t.equal(i.arp.stats().requestsSent, 0, 'announce: false sends no gratuitous ARP')
})

t.test('VLAN-tagged, IPv6 and 802.3 frames are counted by kind and dropped', async t => {
  const { sched, wire, a } = setup()
  const i = a.addInterface(wire.b, { address: '10.0.0.1/24', announce: false })
  const { emitEth } = await import('../../stages/eth/index.js')
  const { framePool } = await import('../../core/msg.js')
  const send = (type: number) => wire.a.send([framePool.allocFrom(emitEth({ dst: i.mac, src: wire.a.mac, type }, new Uint8Array(46)))], 1)
  send(0x8100)
  send(0x88a8)
  send(0x86dd)
  send(0x0042)
  send(0x1234)
  // An IPv4 datagram for someone else: refused by the IPv4 level, not counted as an EtherType.
  const { emitIpv4 } = await import('../../stages/ip/index.js')
  wire.a.send([framePool.allocFrom(emitEth({ dst: i.mac, src: wire.a.mac, type: 0x0800 }, emitIpv4({ src: 1, dst: 2, protocol: 6, payload: new Uint8Array(8) })))], 1)
  sched.runFor(10)
  t.equal(i.ipv4.counters.notForUs, 1)
  t.same(i.ethDrops.counters, { vlan: 2, ipv6: 1, lengthField: 1, other: 1 })
  t.equal(i.binding.stats.unclaimed, 6)
  t.match(a.describe(), /unclaimed EtherTypes \(counted, dropped\): vlan 2, ipv6 1/)
})

t.test('reassembly timeout: time exceeded (code 1) goes back to the source', async t => {
  const { sched, wire, a, b } = setup({ delayMs: 1 })
  const ia = a.addInterface(wire.a, { address: '10.0.0.1/24' })
  const ib = b.addInterface(wire.b, { address: '10.0.0.2/24' })
  sched.runFor(10)
  const got: { type: number; code: number; dst: number }[] = []
  a.onIcmpError(e => got.push({ type: e.type, code: e.code, dst: e.dst }))
  const { emitIpv4, fragmentDatagram } = await import('../../stages/ip/index.js')
  const { emitEth } = await import('../../stages/eth/index.js')
  const { Msg: M, framePool } = await import('../../core/msg.js')
  const big = M.from(emitIpv4({ src: ia.address, dst: ib.address, protocol: PROTO, id: 4242, payload: new Uint8Array(3000) }))
  const frags: Uint8Array[] = []
  fragmentDatagram(big, 1500, f => {
    frags.push(f.bytes().slice())
    f.free()
  })
  // Only the first fragment arrives.
  wire.a.send([framePool.allocFrom(emitEth({ dst: ib.mac, src: ia.mac, type: 0x0800 }, frags[0]!))], 1)
  sched.runFor(29_000)
  t.equal(got.length, 0, 'nothing before the timeout')
  sched.runFor(2_000)
  t.same(got, [{ type: 11, code: 1, dst: ib.address }])
  t.equal(b.reassembler.stats().timeouts, 1)
})
