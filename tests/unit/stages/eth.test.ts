import t from 'tap'
import { Msg } from '../../../core/msg.js'
import { Path } from '../../../core/path.js'
import { Scheduler } from '../../../core/scheduler.js'
import { ManualClock } from '../../../core/clock.js'
import { Dir } from '../../../core/stage.js'
import { parseIPv4 } from '../../../core/bytes.js'
import { ArpCache } from '../../../stages/arp/cache.js'
import { BROADCAST_MAC, ETH, EtherType, EthStage, emitEth, ethTypeDemux, isGroupMac, parseEth } from '../../../stages/eth/index.js'
import { Classifier } from '../../../core/classifier.js'

const ME = Uint8Array.of(2, 0, 0, 0, 0, 1)
const PEER = Uint8Array.of(2, 0, 0, 0, 0, 2)

t.test('parseEth / emitEth round-trip, padding, VLAN tags, 802.3 lengths', async t => {
  const f = emitEth({ dst: PEER, src: ME, type: EtherType.IPv4 }, Uint8Array.of(1, 2, 3))
  t.equal(f.length, ETH.MIN_FRAME, 'padded to 60 bytes')
  const r = parseEth(f)
  t.not(typeof r, 'string')
  if (typeof r === 'string') return
  t.same([...r.dst], [...PEER])
  t.same([...r.src], [...ME])
  t.equal(r.type, EtherType.IPv4)
  t.equal(r.vlan, -1)
  t.equal(r.headerLength, 14)
  t.equal(emitEth({ dst: PEER, src: ME, type: 0x0800 }, new Uint8Array(100), false).length, 114)
  const tagged = Uint8Array.of(...PEER, ...ME, 0x81, 0x00, 0x00, 0x2a, 0x08, 0x06, 0, 0)
  const v = parseEth(tagged)
  t.match(v, { vlan: 42, type: EtherType.ARP, headerLength: 18 })
  t.equal(parseEth(tagged.subarray(0, 16)), 'short')
  t.equal(parseEth(new Uint8Array(13)), 'short')
  const lenField = Uint8Array.of(...PEER, ...ME, 0x00, 0x40)
  t.equal(parseEth(lenField), 'length-field')
  t.ok(isGroupMac(BROADCAST_MAC, 0))
  t.notOk(isGroupMac(ME, 0))
})

function setup() {
  const sched = new Scheduler({ clock: new ManualClock() })
  const sent: Msg[] = []
  const arp = new ArpCache(sched, { mac: ME, ip: parseIPv4('10.0.0.1'), transmit: m => sent.push(m) })
  const eth = new EthStage({ mac: ME, arp })
  const path = new Path([eth])
  const out: Msg[][] = [[], []]
  path.connect(0, { name: 'dev', send: (b, n) => { for (let i = 0; i < n; i++) out[0]!.push(b[i]!) } })
  path.connect(1, { name: 'up', send: (b, n) => { for (let i = 0; i < n; i++) out[1]!.push(b[i]!) } })
  return { sched, arp, eth, path, out, sent }
}

t.test('ETH up: accepts our unicast and broadcast of its type, strips 14 bytes', async t => {
  const { eth, path, out } = setup()
  for (const dst of [ME, BROADCAST_MAC]) {
    path.ends[0].enqueue(Msg.from(emitEth({ dst, src: PEER, type: 0x0800 }, Uint8Array.of(0x45, 9, 9))))
  }
  path.run()
  path.flush()
  t.equal(out[1]!.length, 2)
  t.equal(out[1]![0]!.buf[out[1]![0]!.off], 0x45, 'off at the payload')
  t.same(eth.stats().drops, {})
})

t.test('ETH up: every malformed or foreign frame is a counted drop', async t => {
  const { eth, path, out } = setup()
  const frames = [
    new Uint8Array(10),
    emitEth({ dst: PEER, src: ME, type: 0x0800 }, new Uint8Array(4)),
    emitEth({ dst: ME, src: PEER, type: 0x8100 }, new Uint8Array(4)),
    emitEth({ dst: ME, src: PEER, type: 0x88a8 }, new Uint8Array(4)),
    emitEth({ dst: ME, src: PEER, type: 0x86dd }, new Uint8Array(4)),
  ]
  for (const f of frames) path.ends[0].enqueue(Msg.from(f))
  path.run()
  path.flush()
  t.equal(out[1]!.length, 0)
  t.same(eth.stats().drops, { short: 1, 'not-for-us': 1, vlan: 2, 'wrong-type': 1 })
  t.equal(path.exceptions, 0)
})

t.test('ETH down: resolved next hop gets its MAC; unresolved is parked, then released', async t => {
  const { arp, path, out, sent } = setup()
  const nh = parseIPv4('10.0.0.2')
  const m = Msg.from(Uint8Array.of(0x45, 1, 2, 3))
  m.nextHop = nh
  path.ends[1].enqueue(m)
  path.run()
  path.flush()
  t.equal(out[0]!.length, 0, 'parked, not sent')
  t.equal(sent.length, 1, 'one ARP request went out')
  t.same(parseEth(sent[0]!.bytes()), { dst: BROADCAST_MAC, src: ME, type: EtherType.ARP, vlan: -1, headerLength: 14 })
  arp.learn(nh, PEER, 0, true)
  t.equal(sent.length, 2, 'the parked frame was released on resolution')
  const r = parseEth(sent[1]!.bytes())
  t.match(r, { type: 0x0800 })
  if (typeof r !== 'string') t.same([...r.dst], [...PEER])
  // Now resolved: straight through the path.
  const m2 = Msg.from(Uint8Array.of(0x45))
  m2.nextHop = nh
  path.ends[1].enqueue(m2)
  const b = Msg.from(Uint8Array.of(0x45))
  b.nextHop = 0xffffffff
  path.ends[1].enqueue(b)
  path.run()
  path.flush()
  t.equal(out[0]!.length, 2)
  t.same([...out[0]![0]!.buf.subarray(out[0]![0]!.off, out[0]![0]!.off + 6)], [...PEER])
  t.same([...out[0]![1]!.buf.subarray(out[0]![1]!.off, out[0]![1]!.off + 6)], [...BROADCAST_MAC])
})

t.test('ETH down: no headroom is a drop; describe names the type', async t => {
  const { eth, path } = setup()
  const m = Msg.from(Uint8Array.of(1), 4)
  m.nextHop = 1
  path.ends[1].enqueue(m)
  path.run()
  t.equal(eth.drops['no-headroom'], 1)
  t.equal(eth.describe(), 'eth#1(0800)')
  t.equal(eth.up, Dir.Forward)
})

t.test('ethTypeDemux classifies by EtherType and refuses short frames', async t => {
  const { path } = setup()
  const d = ethTypeDemux().set(0x0806, path.ends[0])
  const c = new Classifier('c', d)
  t.equal(c.classify(Msg.from(emitEth({ dst: ME, src: PEER, type: 0x0806 }, new Uint8Array(28)))), path.ends[0])
  t.equal(c.classify(Msg.from(new Uint8Array(12))), null)
  t.match(c.describe(), /0x0806 -> path\d+\.end0/)
})

t.test('ETH down: the one-entry resolution cache follows ARP table changes', async t => {
  const { arp, path, out, eth } = setup()
  const nh = parseIPv4('10.0.0.2')
  arp.learn(nh, PEER, 0, true)
  const send = () => {
    const m = Msg.from(Uint8Array.of(0x45))
    m.nextHop = nh
    path.ends[1].enqueue(m)
    path.run()
    path.flush()
    const f = out[0]![out[0]!.length - 1]!
    return [...f.buf.subarray(f.off, f.off + 6)]
  }
  t.same(send(), [...PEER])
  t.same(send(), [...PEER], 'cached')
  const NEW = Uint8Array.of(2, 0, 0, 0, 0, 9)
  arp.learn(nh, NEW)
  t.same(send(), [...NEW], 'a changed binding is picked up')
  arp.clear()
  const m = Msg.from(Uint8Array.of(0x45))
  m.nextHop = nh
  path.ends[1].enqueue(m)
  path.run()
  t.equal(arp.entry(nh)?.state, 'INCOMPLETE', 'a removed binding is not used from the cache')
  t.same(eth.drops, {})
})
