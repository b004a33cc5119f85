import t from 'tap'
import { Msg } from '../../../core/msg.js'
import { Path } from '../../../core/path.js'
import { Scheduler } from '../../../core/scheduler.js'
import { ManualClock } from '../../../core/clock.js'
import { parseIPv4 } from '../../../core/bytes.js'
import { ConfigError } from '../../../core/errors.js'
import { ARP, ArpCache, ArpOp, ArpStage, buildArpFrame, buildArpRequest, parseArp, writeArp } from '../../../stages/arp/index.js'
import { BROADCAST_MAC, ETH, emitEth, parseEth } from '../../../stages/eth/index.js'

const ME = Uint8Array.of(2, 0, 0, 0, 0, 1)
const PEER = Uint8Array.of(2, 0, 0, 0, 0, 2)
const OTHER = Uint8Array.of(2, 0, 0, 0, 0, 3)
const MY_IP = parseIPv4('10.0.0.1')
const PEER_IP = parseIPv4('10.0.0.2')
const ZERO = new Uint8Array(6)

function setup(opts = {}) {
  const sched = new Scheduler({ clock: new ManualClock() })
  const sent: Msg[] = []
  const cache = new ArpCache(sched, { mac: ME, ip: MY_IP, transmit: m => sent.push(m), ...opts })
  const stage = new ArpStage(cache)
  const path = new Path([stage])
  const out: Msg[] = []
  path.connect(0, { name: 'dev', send: (b, n) => { for (let i = 0; i < n; i++) out.push(b[i]!) } })
  const input = (f: Uint8Array) => {
    path.ends[0].enqueue(Msg.from(f))
    path.run()
    path.flush()
  }
  return { sched, cache, stage, path, out, sent, input }
}

function arpFrame(op: number, sha: Uint8Array, spa: number, tha: Uint8Array, tpa: number, dst = BROADCAST_MAC): Uint8Array {
  const body = new Uint8Array(ARP.LEN)
  writeArp(body, 0, { op, sha, spa, tha, tpa })
  return emitEth({ dst, src: sha, type: 0x0806 }, body)
}

t.test('parseArp / buildArpFrame round-trip and validation', async t => {
  const m = buildArpRequest(ME, MY_IP, PEER_IP)
  const e = parseEth(m.bytes())
  t.match(e, { type: 0x0806 })
  t.equal(m.length, 60)
  const r = parseArp(m.buf, m.off + ETH.HLEN, m.end)
  t.match(r, { op: 1, spa: MY_IP, tpa: PEER_IP })
  const reply = buildArpFrame({ op: ArpOp.REPLY, sha: ME, spa: MY_IP, tha: PEER, tpa: PEER_IP })
  t.same([...reply.buf.subarray(reply.off, reply.off + 6)], [...PEER], 'replies go to the target MAC')
  const body = m.buf.slice(m.off + 14, m.off + 42)
  t.equal(parseArp(body.subarray(0, 27)), 'short')
  const bad = (i: number, v: number) => { const c = Uint8Array.from(body); c[i] = v; return parseArp(c) }
  t.equal(bad(1, 6), 'bad-hw-type')
  t.equal(bad(ARP.HLN, 8), 'bad-hw-type')
  t.equal(bad(ARP.PRO, 0x86), 'bad-proto-type')
  t.equal(bad(ARP.PLN, 16), 'bad-proto-type')
  t.equal(bad(ARP.OP + 1, 3), 'bad-op')
  t.equal(bad(ARP.SHA, 1), 'bad-sender')
})

t.test('answers a request for our address in place, and learns the requester', async t => {
  const { input, out, stage, cache } = setup()
  input(arpFrame(ArpOp.REQUEST, PEER, PEER_IP, ZERO, MY_IP))
  t.equal(out.length, 1)
  const f = out[0]!
  const e = parseEth(f.bytes())
  t.match(e, { type: 0x0806 })
  if (typeof e !== 'string') {
    t.same([...e.dst], [...PEER])
    t.same([...e.src], [...ME])
  }
  const r = parseArp(f.buf, f.off + 14, f.end)
  t.match(r, { op: ArpOp.REPLY, spa: MY_IP, tpa: PEER_IP })
  if (typeof r !== 'string') {
    t.same([...r.sha], [...ME])
    t.same([...r.tha], [...PEER])
  }
  t.same([...cache.lookup(PEER_IP)!], [...PEER], 'RFC 826: the target adds the sender')
  t.equal(stage.answered, 1)
  t.equal(stage.learned, 1)
})

t.test('RFC 826 merge: others\' ARP updates known entries only', async t => {
  const { input, out, cache, stage } = setup()
  const third = parseIPv4('10.0.0.3')
  input(arpFrame(ArpOp.REQUEST, OTHER, third, ZERO, PEER_IP))
  t.equal(cache.lookup(third), null, 'not for us: not added')
  t.equal(stage.drops['not-for-us'], 1)
  cache.learn(third, PEER, 0, true)
  input(arpFrame(ArpOp.REQUEST, OTHER, third, ZERO, PEER_IP))
  t.same([...cache.lookup(third)!], [...OTHER], 'known entry refreshed (merge)')
  t.equal(out.length, 0, 'no reply to a request for someone else')
  // A reply addressed to us resolves pending traffic.
  input(arpFrame(ArpOp.REPLY, PEER, PEER_IP, ME, MY_IP, ME))
  t.equal(stage.repliesIn, 1)
  t.ok(cache.lookup(PEER_IP))
})

t.test('malformed and hostile ARP is counted, never thrown', async t => {
  const { input, stage, path, cache } = setup()
  input(new Uint8Array(8))
  input(emitEth({ dst: BROADCAST_MAC, src: PEER, type: 0x0806 }, new Uint8Array(10), false))
  input(arpFrame(ArpOp.REQUEST, PEER, PEER_IP, ZERO, MY_IP, OTHER))
  input(arpFrame(ArpOp.REQUEST, BROADCAST_MAC, PEER_IP, ZERO, MY_IP))
  input(arpFrame(ArpOp.REQUEST, OTHER, MY_IP, ZERO, MY_IP))
  input(arpFrame(3, PEER, PEER_IP, ZERO, MY_IP))
  t.same(stage.stats().drops, { short: 2, 'not-for-us': 1, 'bad-sender': 1, conflict: 1, 'bad-op': 1 })
  t.equal(path.exceptions, 0)
  t.equal(cache.lookup(MY_IP), null, 'never learns a binding for our own address')
  const m = Msg.from(new Uint8Array(60))
  stage.deliver(m, 1)
  t.equal(stage.drops['from-below'], 1)
})

t.test('resolution: request, retries once per retryMs, gives up, holds FAILED, then forgets', async t => {
  const { sched, cache, sent } = setup({ retryMs: 1000, maxRequests: 3, failedHoldMs: 5000, maxPending: 2 })
  const frames = [0, 1, 2].map(() => Msg.from(new Uint8Array(60)))
  t.equal(cache.park(frames[0]!, PEER_IP), null)
  t.equal(cache.park(frames[1]!, PEER_IP), null)
  t.equal(cache.park(frames[2]!, PEER_IP), null)
  t.equal(frames[0]!.live, false, 'the oldest frame made room in the bounded queue')
  t.equal(cache.stats().pendingOverflow, 1)
  t.equal(sent.length, 1)
  sched.runFor(999)
  t.equal(sent.length, 1, 'no second request within a second (RFC 1122 §2.3.2.1)')
  sched.runFor(1)
  t.equal(sent.length, 2)
  sched.runFor(2000)
  t.equal(sent.length, 3, 'three requests in all')
  t.equal(cache.entry(PEER_IP)?.state, 'FAILED')
  t.equal(cache.stats().unresolvedDrops, 2)
  t.equal(frames[2]!.live, false)
  t.equal(cache.park(Msg.from(new Uint8Array(60)), PEER_IP), 'arp-failed', 'FAILED refuses at once')
  sched.runFor(6000)
  t.equal(cache.entry(PEER_IP), undefined, 'forgotten after the hold time')
  t.equal(cache.stats().failures, 1)
})

t.test('aging: REACHABLE -> STALE (still used, refreshed) -> gone without answers', async t => {
  const { sched, cache, sent } = setup({ reachableMs: 10_000, retryMs: 1000, maxRequests: 2 })
  cache.learn(PEER_IP, PEER, 0, true)
  sched.runFor(10_500)
  t.equal(cache.entry(PEER_IP)?.state, 'STALE')
  t.ok(cache.lookup(PEER_IP), 'a stale binding is still used')
  t.equal(sent.length, 1, 'refresh request sent')
  cache.learn(PEER_IP, OTHER)
  t.equal(cache.entry(PEER_IP)?.state, 'REACHABLE', 'an answer revalidates')
  sched.runFor(14_000)
  t.equal(cache.entry(PEER_IP), undefined, 'no answer to refreshes: removed')
})

t.test('table limit: evicts old bindings, refuses when only INCOMPLETE remain', async t => {
  const { cache } = setup({ maxEntries: 2 })
  cache.learn(1, PEER, 0, true)
  cache.learn(2, PEER, 0, true)
  t.equal(cache.learn(3, PEER, 0, true), true)
  t.equal(cache.size, 2)
  const c2 = setup({ maxEntries: 1 }).cache
  t.equal(c2.park(Msg.from(new Uint8Array(60)), 9), null)
  t.equal(c2.park(Msg.from(new Uint8Array(60)), 10), 'arp-table-full')
  t.equal(c2.learn(11, PEER, 0, true), false)
  t.equal(c2.stats().tableFull, 2)
})

t.test('static entries, gratuitous announcements, describe, clear, bad options', async t => {
  const { cache, sent } = setup()
  const m = Msg.from(new Uint8Array(60))
  cache.park(m, PEER_IP)
  cache.setStatic(PEER_IP, OTHER)
  t.equal(sent.length, 2, 'request, then the parked frame released by the static entry')
  t.equal(cache.learn(PEER_IP, PEER), true)
  t.same([...cache.lookup(PEER_IP)!], [...OTHER], 'permanent entries do not change')
  cache.announce()
  const g = parseArp(sent[2]!.buf, sent[2]!.off + 14, sent[2]!.end)
  t.match(g, { op: 1, spa: MY_IP, tpa: MY_IP }, 'gratuitous: sender = target = our address')
  t.match(cache.describe(), /10\.0\.0\.2\s+02:00:00:00:00:03 PERMANENT/)
  const p2 = Msg.from(new Uint8Array(60))
  cache.park(p2, 77)
  cache.clear()
  t.equal(p2.live, false)
  t.equal(cache.size, 0)
  t.throws(() => setup({ retryMs: 0 }), ConfigError)
})
