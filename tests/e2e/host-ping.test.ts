import t from 'tap'
import { ManualClock } from '../../core/clock.js'
import { Scheduler } from '../../core/scheduler.js'
import { MemoryWire } from '../../drivers/memory/wire.js'
import { Host } from '../../paths/host.js'
import { parseIPv4 } from '../../core/bytes.js'

function twoHosts(impair = {}) {
  const sched = new Scheduler({ clock: new ManualClock() })
  const wire = new MemoryWire(sched, { impair, seed: 7 })
  const a = new Host(sched, { name: 'a' })
  const b = new Host(sched, { name: 'b' })
  const ia = a.addInterface(wire.a, { address: '10.0.0.1/24' })
  const ib = b.addInterface(wire.b, { address: '10.0.0.2/24' })
  return { sched, wire, a, b, ia, ib }
}

t.test('two hosts on a memory wire ping each other', async t => {
  const { sched, a, b, ia, ib } = twoHosts({ delayMs: 1 })
  const p1 = a.ping('10.0.0.2', { count: 3 })
  const p2 = b.ping('10.0.0.1', { count: 2 })
  sched.runFor(2000)
  const r1 = await p1
  const r2 = await p2
  t.equal(r1.sent, 3)
  t.equal(r1.received, 3)
  t.equal(r2.received, 2)
  // First ping waits for ARP (an extra round trip); later ones take one RTT of 2 ms.
  t.equal(r1.rttMs[2], 2)
  t.equal(ia.arp.lookup(parseIPv4('10.0.0.2')) !== null, true)
  t.equal(ib.icmp.echoAnswered, 3)
  t.equal(ia.icmp.echoAnswered, 2)
  t.match(a.describe(), /10\.0\.0\.2\s+02:00:00:00:00:02 REACHABLE/)
})
