import t from 'tap'
import { Msg } from '../../../core/msg.js'
import { Path } from '../../../core/path.js'
import { parseIPv4, get16, set16 } from '../../../core/bytes.js'
import { checksum, fold, sumBytes } from '../../../core/checksum.js'
import { IP, IpStage, RouteTable, checkIpv4, emitIpv4, fillIpv4Checksum, isFragment, optionsWellFormed, parseIpv4, directedBroadcast, type IpLink } from '../../../stages/ip/index.js'

const A = parseIPv4('10.0.0.1')
const B = parseIPv4('10.0.0.2')
const link: IpLink = { name: 'l0', address: A, prefixLength: 24, mtu: 1500 }

t.test('emitIpv4 / parseIpv4 round-trip with options', async t => {
  const d = emitIpv4({ src: A, dst: B, protocol: 6, id: 7, ttl: 9, df: true, tos: 0x10, options: Uint8Array.of(1, 1, 0x94, 4, 0, 0), payload: Uint8Array.of(1, 2, 3) })
  t.equal(d.length, 20 + 8 + 3)
  t.equal(d[0], 0x47)
  t.equal(fold(sumBytes(d, 0, 28)), 0xffff)
  const r = parseIpv4(d)
  t.match(r, { src: A, dst: B, protocol: 6, id: 7, ttl: 9, df: true, mf: false, fragOffset: 0, tos: 0x10 })
  if (typeof r !== 'string') {
    t.same([...r.payload], [1, 2, 3])
    t.equal(r.options.length, 8)
  }
  t.ok(isFragment(emitIpv4({ src: A, dst: B, protocol: 6, mf: true, payload: new Uint8Array(8) }), 0))
  t.ok(isFragment(emitIpv4({ src: A, dst: B, protocol: 6, fragOffset: 8, payload: new Uint8Array(8) }), 0))
  t.notOk(isFragment(d, 0))
})

t.test('checkIpv4: every rule has its reason', async t => {
  const good = emitIpv4({ src: A, dst: B, protocol: 17, payload: new Uint8Array(8) })
  const mut = (f: (b: Uint8Array) => void, fix = true) => {
    const b = Uint8Array.from(good)
    f(b)
    if (fix) fillIpv4Checksum(b, 0)
    return checkIpv4(b, 0, b.length)
  }
  t.equal(checkIpv4(good, 0, good.length), 20)
  t.equal(checkIpv4(good, 0, 19), 'short')
  t.equal(mut(b => (b[0] = 0x65)), 'bad-version')
  t.equal(mut(b => (b[0] = 0x44), false), 'bad-ihl')
  t.equal(mut(b => (b[0] = 0x4f)), 'short')
  t.equal(mut(b => set16(b, 2, 19)), 'bad-length')
  t.equal(mut(b => set16(b, 2, 29)), 'bad-length')
  t.equal(mut(b => (b[15] ^= 1), false), 'bad-checksum')
  t.equal(mut(b => (b[6] |= 0x80)), 'reserved-flag')
  t.equal(mut(b => (b[12] = 224)), 'bad-src')
  t.equal(mut(b => b.fill(255, 12, 16)), 'bad-src')
  // Options: framing checked, padding after EOL ignored.
  const withOpts = (o: number[]) => emitIpv4({ src: A, dst: B, protocol: 17, options: Uint8Array.from(o), payload: new Uint8Array(4) })
  t.equal(checkIpv4(withOpts([1, 1, 1, 0]), 0, 28), 24)
  t.equal(checkIpv4(withOpts([0, 9, 9, 9]), 0, 28), 24)
  t.equal(checkIpv4(withOpts([0x44, 1, 0, 0]), 0, 28), 'bad-options', 'length below 2')
  t.equal(checkIpv4(withOpts([0x44, 8, 0, 0]), 0, 28), 'bad-options', 'runs past the header')
  t.equal(checkIpv4(withOpts([1, 1, 1, 0x44]), 0, 28), 'bad-options', 'no room for the length byte')
  t.ok(optionsWellFormed(Uint8Array.of(0x83, 3, 0, 1), 0, 4))
  // Frame longer than the total length (Ethernet padding) is fine.
  const padded = new Uint8Array(good.length + 10)
  padded.set(good)
  t.equal(checkIpv4(padded, 0, padded.length), 20)
})

t.test('directedBroadcast', async t => {
  t.equal(directedBroadcast(link), parseIPv4('10.0.0.255'))
  t.equal(directedBroadcast({ ...link, prefixLength: 31 }), -1)
  t.equal(directedBroadcast({ ...link, prefixLength: 0 }), 0xffffffff)
})

function ipPath(opts: Partial<ConstructorParameters<typeof IpStage>[0]> = {}) {
  const routes = new RouteTable<IpLink>()
  routes.add('10.0.0.0/24', link)
  routes.add('0.0.0.0/0', link, parseIPv4('10.0.0.254'))
  const ip = new IpStage({ link, routes, protocol: 6, remote: B, firstId: 100, ...opts })
  const path = new Path([ip])
  const out: Msg[][] = [[], []]
  path.connect(0, { name: 'dev', send: (b, n) => { for (let i = 0; i < n; i++) out[0]!.push(b[i]!) } })
  path.connect(1, { name: 'tcp', send: (b, n) => { for (let i = 0; i < n; i++) out[1]!.push(b[i]!) } })
  const run = () => { path.run(); path.flush() }
  return { ip, path, out, run, routes }
}

t.test('IP up: validates, trims padding, sets l3/l4, pops the header', async t => {
  const { path, out, run, ip } = ipPath()
  const d = emitIpv4({ src: B, dst: A, protocol: 6, options: Uint8Array.of(1, 1, 1, 1), payload: Uint8Array.of(9, 8, 7) })
  const framed = new Uint8Array(d.length + 6)
  framed.set(d)
  const m = Msg.from(framed)
  const start = m.off
  path.ends[0].enqueue(m)
  run()
  t.equal(out[1]!.length, 1)
  const u = out[1]![0]!
  t.equal(u.l3, start)
  t.equal(u.off, start + 24)
  t.equal(u.l4, u.off)
  t.equal(u.length, 3, 'padding trimmed to the total length')
  t.same(ip.stats().drops, {})
})

t.test('IP up: counted drops for fragments, wrong protocol, address, source', async t => {
  const { path, run, ip, out } = ipPath()
  const send = (d: Uint8Array) => path.ends[0].enqueue(Msg.from(d))
  send(emitIpv4({ src: B, dst: A, protocol: 6, mf: true, payload: new Uint8Array(8) }))
  send(emitIpv4({ src: B, dst: A, protocol: 17, payload: new Uint8Array(8) }))
  send(emitIpv4({ src: B, dst: parseIPv4('10.0.0.9'), protocol: 6, payload: new Uint8Array(8) }))
  send(emitIpv4({ src: parseIPv4('10.0.0.3'), dst: A, protocol: 6, payload: new Uint8Array(8) }))
  send(new Uint8Array(5))
  run()
  t.equal(out[1]!.length, 0)
  t.same(ip.stats().drops, { fragment: 1, 'wrong-protocol': 1, 'not-for-us': 1, 'wrong-source': 1, short: 1 })
})

t.test('IP down: pushes a valid header, picks the next hop from the route', async t => {
  const { path, out, run, routes, ip } = ipPath()
  const m = Msg.from(Uint8Array.of(1, 2, 3, 4))
  path.ends[1].enqueue(m)
  run()
  const d = out[0]![0]!
  t.equal(d.nextHop, B, 'on-link: the destination itself')
  t.equal(d.l3, d.off)
  const r = parseIpv4(d.buf, d.off, d.end)
  t.match(r, { src: A, dst: B, protocol: 6, ttl: 64, id: 100, df: false })
  // Off-link remote: via the gateway; and the cached route follows table changes.
  const far = ipPath({ remote: parseIPv4('8.8.8.8'), df: true })
  far.path.ends[1].enqueue(Msg.from(new Uint8Array(10)))
  far.run()
  t.equal(far.out[0]![0]!.nextHop, parseIPv4('10.0.0.254'))
  t.match(parseIpv4(far.out[0]![0]!.buf, far.out[0]![0]!.off, far.out[0]![0]!.end), { df: true })
  routes.remove('10.0.0.0/24')
  routes.remove('0.0.0.0/0')
  path.ends[1].enqueue(Msg.from(new Uint8Array(4)))
  run()
  t.equal(ip.drops['no-route'], 1)
  const other: IpLink = { ...link, name: 'other' }
  routes.add('10.0.0.0/24', other)
  path.ends[1].enqueue(Msg.from(new Uint8Array(4)))
  path.ends[1].enqueue(Msg.from(new Uint8Array(4), 8))
  run()
  t.equal(ip.drops['wrong-interface'], 2)
})

t.test('IP down: fragments above the MTU, refuses with DF, drops without headroom', async t => {
  const small: IpLink = { ...link, mtu: 576 }
  const routes = new RouteTable<IpLink>()
  routes.add('10.0.0.0/24', small)
  for (const df of [false, true]) {
    const ip = new IpStage({ link: small, routes, protocol: 17, remote: B, df })
    const path = new Path([ip])
    const out: Msg[] = []
    path.connect(0, { name: 'dev', send: (b, n) => { for (let i = 0; i < n; i++) out.push(b[i]!) } })
    const payload = new Uint8Array(1400).map((_, i) => i & 0xff)
    path.ends[1].enqueue(Msg.from(payload))
    path.ends[1].enqueue(Msg.from(new Uint8Array(8), 10))
    path.run()
    path.flush()
    t.equal(ip.drops['no-headroom'], 1)
    if (df) {
      t.equal(out.length, 0)
      t.equal(ip.drops['needs-frag'], 1)
      continue
    }
    t.equal(out.length, 3)
    t.equal(ip.fragmentsOut, 3)
    let got = 0
    for (const f of out) {
      const r = parseIpv4(f.buf, f.off, f.end)
      if (typeof r === 'string') { t.fail(r); continue }
      t.ok(f.length <= 576)
      t.equal(r.fragOffset, got)
      t.equal(r.mf, got + r.payload.length < 1400)
      t.same([...r.payload], [...payload.subarray(got, got + r.payload.length)])
      got += r.payload.length
    }
    t.equal(got, 1400)
  }
})

t.test('unbound IP (ICMP path): destination from nextHop, source from the answered datagram', async t => {
  const routes = new RouteTable<IpLink>()
  routes.add('10.0.0.0/24', link)
  const other = parseIPv4('10.9.9.9')
  const ip = new IpStage({ link, routes, protocol: 1, isLocal: a => a === A || a === other })
  const path = new Path([ip])
  const out: Msg[][] = [[], []]
  path.connect(0, { name: 'dev', send: (b, n) => { for (let i = 0; i < n; i++) out[0]!.push(b[i]!) } })
  path.connect(1, { name: 'icmp', send: (b, n) => { for (let i = 0; i < n; i++) out[1]!.push(b[i]!) } })
  path.ends[0].enqueue(Msg.from(emitIpv4({ src: B, dst: other, protocol: 1, payload: new Uint8Array(8) })))
  path.run()
  path.flush()
  const up = out[1]![0]!
  t.ok(up, 'a datagram to another of our addresses is accepted (weak host)')
  up.nextHop = B
  path.ends[1].enqueue(up)
  path.run()
  path.flush()
  const r = parseIpv4(out[0]![0]!.buf, out[0]![0]!.off, out[0]![0]!.end)
  t.match(r, { src: other, dst: B, protocol: 1 })
  t.match(ip.describe(), /ip#1\(10\.0\.0\.1 > \* proto 1\)/)
  t.equal(checksum(out[0]![0]!.buf, out[0]![0]!.off, 20), 0)
  t.equal(get16(out[0]![0]!.buf, out[0]![0]!.off + IP.LEN), 28)
})

t.test('IP down: GSO super-frames are not fragmented', async t => {
  const { path, out, run, ip } = ipPath()
  const m = Msg.from(new Uint8Array(9000))
  m.vnet = { flags: 1, gsoType: 1, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 }
  path.ends[1].enqueue(m)
  run()
  t.equal(out[0]!.length, 1)
  t.equal(out[0]![0]!.length, 9020)
  t.equal(ip.fragmentsOut, 0)
})
