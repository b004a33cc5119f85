/**
 * Two of our TCPs moving data one way, in ns per data segment and segments per second,
 * for 1-byte and 1460-byte segments:
 *
 * - TCB pair: two control blocks handing segments to each other directly (no IP, no
 *   checksums): the cost of the protocol logic, buffers and ACK processing alone;
 * - hosts on a memory wire: two {@link Host}s with ETH, IP and TCP stages, the classifier,
 *   checksums, the scheduler and the wire (virtual time), as in the e2e tests.
 *
 * Every round writes 64 segments' worth, delivers them, reads them at the receiver and
 * lets the ACKs come back (1-byte segments: noDelay, ACKed by the delayed-ACK timer once
 * per round; 1460-byte segments: an ACK every second segment). Scout (Table II) reports
 * 68.5 / 101.1 µs per 1-byte / 1460-byte segment for its 2-path proxy on 1999 hardware.
 *
 * Run: `npm run bench -- --only tcp [--quick]` (the shared runner writes the JSON,
 * RESULTS.md and charts under `benchmarks/results/<date>/`).
 * @module
 */
import { parseIPv4 } from '../core/bytes.js'
import { ManualClock } from '../core/clock.js'
import type { Msg } from '../core/msg.js'
import { Scheduler } from '../core/scheduler.js'
import { TimerQueue } from '../core/timers.js'
import { MemoryWire } from '../drivers/memory/wire.js'
import { Host } from '../paths/host.js'
import { TcpModule, type TcpConnection } from '../stages/tcp/module.js'
import { Tcb, type TcbHost } from '../stages/tcp/tcb.js'
import { timeOps, type BenchFigure } from './lib/report.js'
import type { Suite, SuiteContext } from './lib/suite.js'

const SEGS = 64
// No timestamps, so a 1460-byte segment carries 1460 bytes (as in Scout's measurement).
const CONFIG = { noDelay: true, sndBuf: 1 << 20, rcvBuf: 1 << 20, minRtoMs: 200, timestamps: false }

/** A host whose output goes into an array (the pair hands them over). */
class PairHost implements TcbHost {
  readonly out: Msg[] = []
  constructor(private readonly clock: ManualClock, private readonly timers: TimerQueue) {}
  now(): number {
    return this.clock.now()
  }
  timer(cb: (now: number) => void) {
    return this.timers.timer(cb)
  }
  output(msg: Msg): void {
    this.out.push(msg)
  }
  drop(msg: Msg): void {
    if (msg.live) msg.free()
    throw new Error('benchmark segment dropped')
  }
}

function tcbPair(): { a: Tcb; b: Tcb; ha: PairHost; hb: PairHost; settle: () => void; clock: ManualClock; timers: TimerQueue } {
  const clock = new ManualClock()
  const timers = new TimerQueue(clock)
  const ha = new PairHost(clock, timers)
  const hb = new PairHost(clock, timers)
  const a = new Tcb(ha, 40000, 80, 1000, CONFIG)
  const b = new Tcb(hb, 80, 40000, 9000, CONFIG)
  const settle = (): void => {
    for (let guard = 0; guard < 100000 && (ha.out.length > 0 || hb.out.length > 0); guard++) {
      const x = ha.out.splice(0)
      for (const m of x) b.input(m)
      const y = hb.out.splice(0)
      for (const m of y) a.input(m)
    }
  }
  b.listen()
  a.connect()
  settle()
  if (a.state !== 'ESTABLISHED' || b.state !== 'ESTABLISHED') throw new Error('pair did not connect')
  return { a, b, ha, hb, settle, clock, timers }
}

async function measurePair(size: number, quick: boolean): Promise<BenchFigure> {
  const p = tcbPair()
  const data = new Uint8Array(size * SEGS)
  const sink = new Uint8Array(1 << 20)
  let t = 0
  const fig = await timeOps(`TCB pair, ${size}-byte segments`, () => {
    if (size === 1) for (let i = 0; i < SEGS; i++) p.a.write(data, i, 1)
    else p.a.write(data)
    p.settle()
    while (p.b.read(sink) > 0) { /* drain */ }
    p.settle()
    // Delayed ACKs (1-byte segments) and nothing else: step virtual time past them.
    t += 50
    p.clock.set(t)
    p.timers.runDue(t)
    p.settle()
  }, SEGS, quick)
  const snap = p.a.snapshot()
  if (snap.sndBuffered !== 0) throw new Error(`pair left ${snap.sndBuffered} bytes unacknowledged`)
  return fig
}

function hostPair(): { sched: Scheduler; clock: ManualClock; client: TcpConnection; server: () => TcpConnection | null } {
  const clock = new ManualClock()
  const sched = new Scheduler({ clock })
  const wire = new MemoryWire(sched, {})
  const a = new Host(sched, { name: 'a' })
  const b = new Host(sched, { name: 'b' })
  const ia = a.addInterface(wire.a, { address: '10.0.0.1/24', announce: false })
  const ib = b.addInterface(wire.b, { address: '10.0.0.2/24', announce: false })
  ia.arp.setStatic(parseIPv4('10.0.0.2'), wire.b.mac)
  ib.arp.setStatic(parseIPv4('10.0.0.1'), wire.a.mac)
  const ta = new TcpModule(a, { config: CONFIG })
  const tb = new TcpModule(b, { config: CONFIG })
  let server: TcpConnection | null = null
  tb.listen(80, c => {
    server = c
    c.stage.app = { onData: () => {} }
  })
  const client = ta.connect(parseIPv4('10.0.0.2'), 80)
  client.stage.app = { onData: () => {} }
  sched.runFor(10)
  if (client.stage.tcb.state !== 'ESTABLISHED' || server === null) throw new Error('hosts did not connect')
  return { sched, clock, client, server: () => server }
}

async function measureHosts(size: number, quick: boolean): Promise<BenchFigure> {
  const h = hostPair()
  const srv = h.server()!.stage.tcb
  const cli = h.client.stage.tcb
  const data = new Uint8Array(size * SEGS)
  const sink = new Uint8Array(1 << 20)
  const fig = await timeOps(`hosts on a memory wire, ${size}-byte segments`, () => {
    if (size === 1) for (let i = 0; i < SEGS; i++) cli.write(data, i, 1)
    else cli.write(data)
    h.sched.runFor(0)
    while (srv.read(sink) > 0) { /* drain */ }
    h.sched.runFor(50)
  }, SEGS, quick)
  if (cli.snapshot().sndBuffered !== 0) throw new Error('hosts left data unacknowledged')
  return fig
}

interface Row {
  figure: BenchFigure
  size: number
}

/** The TCP suite (register it in `benchmarks/run.ts` to include it in `npm run bench`). */
export const tcpSuite: Suite = {
  id: 'tcp',
  title: 'TCP: two of our TCPs, one way',
  async run(ctx: SuiteContext) {
    ctx.progress(0, 'warm-up')
    await measurePair(1460, true)
    await measureHosts(1460, true)
    const rows: Row[] = []
    const steps: [string, () => Promise<BenchFigure>, number][] = [
      ['pair 1 B', () => measurePair(1, ctx.quick), 1],
      ['pair 1460 B', () => measurePair(1460, ctx.quick), 1460],
      ['hosts 1 B', () => measureHosts(1, ctx.quick), 1],
      ['hosts 1460 B', () => measureHosts(1460, ctx.quick), 1460],
    ]
    for (let i = 0; i < steps.length; i++) {
      ctx.progress(i / steps.length, steps[i]![0])
      rows.push({ figure: await steps[i]![1](), size: steps[i]![2] })
    }
    ctx.progress(1, 'done')
    return {
      tables: [{
        title: 'ns per data segment (rounds of 64 segments, ACKs included)',
        columns: ['case', 'ns/segment', 'k segments/s', 'MB/s payload', 'p99 ns'],
        rows: rows.map(r => [r.figure.name, r.figure.nsPerOp, r.figure.opsPerSec / 1e3, (r.figure.opsPerSec * r.size) / 1e6, r.figure.p99]),
        notes: [
          'TCB pair: protocol logic only (no IP, no checksums). Hosts: ETH + IP + TCP stages, classifier, checksums, scheduler, memory wire in virtual time.',
          'Scout (Table II): 68.5 / 101.1 µs per 1-byte / 1460-byte segment for its 2-path proxy (two TCPs) on 1999 hardware.',
        ],
      }],
      data: rows,
    }
  },
}
