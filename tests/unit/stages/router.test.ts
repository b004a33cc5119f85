import t from 'tap'
import { Msg } from '../../../core/msg.js'
import { Path } from '../../../core/path.js'
import { ManualClock } from '../../../core/clock.js'
import { parseIPv4, get16 } from '../../../core/bytes.js'
import { fold, sumBytes } from '../../../core/checksum.js'
import { RouteTable, emitIpv4, fillIpv4Checksum, parseIpv4, parseIcmp, type IpLink } from '../../../stages/ip/index.js'
import { RouterStage } from '../../../stages/router/index.js'

const sideA: IpLink = { name: 'a', address: parseIPv4('10.0.1.254'), prefixLength: 24, mtu: 1500 }
const sideB: IpLink = { name: 'b', address: parseIPv4('10.0.2.254'), prefixLength: 24, mtu: 1500 }
const H1 = parseIPv4('10.0.1.1')
const H2 = parseIPv4('10.0.2.1')

function setup(rate?: { perSecond?: number; burst?: number }) {
  const clock = new ManualClock()
  const routes = new RouteTable<IpLink>()
  routes.add('10.0.1.0/24', sideA)
  routes.add('10.0.2.0/24', sideB)
  routes.add('172.16.0.0/12', sideB, parseIPv4('10.0.2.100'))
  const router = new RouterStage({ routes, sides: [sideA, sideB], clock, ...(rate ? { icmpRate: rate } : {}) })
  const path = new Path([router])
  const out: Msg[][] = [[], []]
  path.connect(0, { name: 'A', send: (b, n) => { for (let i = 0; i < n; i++) out[0]!.push(b[i]!) } })
  path.connect(1, { name: 'B', send: (b, n) => { for (let i = 0; i < n; i++) out[1]!.push(b[i]!) } })
  const fromA = (d: Uint8Array) => {
    // As ETH leaves it: the (popped) Ethernet header, unicast to us, still in front.
    const m = Msg.from(d)
    m.buf.fill(0, m.off - 14, m.off)
    path.ends[0].enqueue(m)
    path.run()
    path.flush()
  }
  return { clock, routes, router, path, out, fromA }
}

const dg = (o: Partial<Parameters<typeof emitIpv4>[0]> = {}) => emitIpv4({ src: H1, dst: H2, protocol: 17, ttl: 64, payload: new Uint8Array(32), ...o })

t.test('forwards: TTL - 1, checksum still valid, next hop set, padding trimmed', async t => {
  const { router, out, fromA } = setup()
  const d = dg()
  const padded = new Uint8Array(d.length + 7)
  padded.set(d)
  fromA(padded)
  fromA(dg({ dst: parseIPv4('172.16.5.5') }))
  fromA(dg({ options: Uint8Array.of(1, 1, 1, 0) }))
  t.equal(out[1]!.length, 3)
  const f = out[1]![0]!
  t.equal(f.length, d.length)
  t.equal(f.nextHop, H2)
  t.match(parseIpv4(f.buf, f.off, f.end), { ttl: 63 })
  t.equal(fold(sumBytes(f.buf, f.off, 20)), 0xffff)
  t.equal(out[1]![1]!.nextHop, parseIPv4('10.0.2.100'), 'via the gateway')
  t.match(parseIpv4(out[1]![2]!.buf, out[1]![2]!.off, out[1]![2]!.end), { ttl: 63 }, 'options path')
  t.equal(router.forwarded, 3)
})

t.test('hairpin: a route back out of the ingress side goes back', async t => {
  const { out, fromA } = setup()
  fromA(dg({ src: H1, dst: parseIPv4('10.0.1.2') }))
  t.equal(out[0]!.length, 1)
})

t.test('every refusal is a counted drop, with ICMP where RFC 1812 asks', async t => {
  const { router, out, fromA, routes, path } = setup()
  fromA(new Uint8Array(10))
  fromA(Uint8Array.of(...dg().subarray(0, 2), 0, 10, ...dg().subarray(4)))
  const badSum = dg()
  badSum[15]! ^= 1
  fromA(badSum)
  const rsv = dg()
  rsv[6] = 0x80
  fillIpv4Checksum(rsv, 0)
  fromA(rsv)
  fromA(dg({ src: parseIPv4('224.1.1.1') }))
  fromA(dg({ src: parseIPv4('127.0.0.1') }))
  fromA(dg({ src: 0 }))
  fromA(dg({ dst: parseIPv4('127.0.0.1') }))
  fromA(dg({ dst: parseIPv4('0.1.2.3') }))
  fromA(dg({ dst: 0xffffffff }))
  fromA(dg({ dst: parseIPv4('239.0.0.1') }))
  fromA(dg({ dst: parseIPv4('10.0.2.255') }))
  fromA(dg({ ttl: 1 }))
  fromA(dg({ dst: parseIPv4('192.168.0.1') }))
  fromA(dg({ options: Uint8Array.of(0x44, 9, 0, 0) }))
  routes.add('8.0.0.0/8', { name: 'elsewhere', address: 1, prefixLength: 8, mtu: 1500 })
  fromA(dg({ dst: parseIPv4('8.8.8.8') }))
  const bc = Msg.from(dg())
  bc.buf.fill(0xff, bc.off - 14, bc.off - 8)
  path.ends[0].enqueue(bc)
  path.run()
  t.same(router.stats().drops, {
    short: 1, 'bad-length': 1, 'bad-checksum': 1, 'reserved-flag': 1, 'bad-src': 1, 'martian-src': 2, 'martian-dst': 2,
    'not-forwardable': 2, 'directed-broadcast': 1, 'ttl-exceeded': 1, 'no-route': 1, 'bad-options': 1, 'wrong-interface': 1, 'link-broadcast': 1,
  })
  t.equal(path.exceptions, 0)
  t.equal(out[1]!.length, 0)
  t.equal(out[0]!.length, 2, 'time exceeded and net unreachable went back to A')
  const te = parseIpv4(out[0]![0]!.buf, out[0]![0]!.off, out[0]![0]!.end)
  t.match(te, { src: sideA.address, dst: H1, protocol: 1 })
  if (typeof te !== 'string') t.match(parseIcmp(te.payload), { type: 11, code: 0 })
  t.equal(out[0]![0]!.nextHop, H1)
})

t.test('MTU: fragments without DF; ICMP 3/4 with the MTU with DF', async t => {
  const { router, out, fromA, path } = setup()
  const small: IpLink = { ...sideB, mtu: 576 }
  const routes = new RouteTable<IpLink>()
  routes.add('10.0.1.0/24', sideA)
  routes.add('10.0.2.0/24', small)
  const r2 = new RouterStage({ routes, sides: [sideA, small], clock: new ManualClock() })
  path.replace(router, router, [r2])
  fromA(dg({ payload: new Uint8Array(1400) }))
  t.equal(out[1]!.length, 3)
  t.equal(r2.fragmentsOut, 3)
  t.ok(out[1]!.every(f => f.length <= 576 && f.buf[f.off + 8] === 63))
  fromA(dg({ payload: new Uint8Array(1400), df: true }))
  t.equal(r2.drops['needs-frag'], 1)
  const icmp = out[0]![0]!
  const p = parseIpv4(icmp.buf, icmp.off, icmp.end)
  if (typeof p !== 'string') {
    t.match(parseIcmp(p.payload), { type: 3, code: 4 })
    t.equal(get16(p.payload, 6), 576, 'next-hop MTU (RFC 1191)')
  }
})

t.test('ICMP errors are rate-limited by a token bucket', async t => {
  const { router, out, fromA, clock } = setup({ perSecond: 10, burst: 3 })
  for (let i = 0; i < 10; i++) fromA(dg({ ttl: 1 }))
  t.equal(out[0]!.length, 3)
  t.equal(router.icmpRateLimited, 7)
  clock.set(200)
  for (let i = 0; i < 5; i++) fromA(dg({ ttl: 0 }))
  t.equal(out[0]!.length, 5, '2 tokens refilled in 200 ms')
  t.equal(router.drops['ttl-exceeded'], 15)
  t.same(router.extraStats(), { forwarded: 0, fragmentsOut: 0, icmpSent: 5, icmpRateLimited: 10 })
})

t.test('GSO super-frames pass whole: the egress device segments them', async t => {
  const { router, out, path } = setup()
  const m = Msg.from(dg({ payload: new Uint8Array(8000), df: true }))
  m.vnet = { flags: 1, gsoType: 1, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 }
  path.ends[0].enqueue(m)
  path.run()
  path.flush()
  t.equal(out[1]!.length, 1)
  t.equal(out[1]![0]!.length, 8020)
  t.same(router.drops, {})
})
