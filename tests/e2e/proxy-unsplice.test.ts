/**
 * Unsplice and resplice on the memory wire, our TCP at all three hosts, virtual time:
 * splice -> unsplice -> splice ... at moments picked by a seeded generator while both
 * streams flow (up to the moment the run ends), in both layouts and both final stages,
 * without and with loss/reordering/duplication. Every byte arrives once and in order
 * (digests), no progress stall lasts longer than a few RTOs, and an unsplice whose peers
 * never acknowledge times out with a reason that says so, the splice going on unharmed.
 */
import t, { type Test } from 'tap'
import { parseIPv4 } from '../../core/bytes.js'
import { Random } from '../../core/random.js'
import type { Impairments } from '../../drivers/memory/wire.js'
import type { ProxyLayout } from '../../paths/proxy/forwarder.js'
import type { ProxyHandler, ProxySessionApi } from '../../stages/proxy/session.js'
import { MIN_RTO_MS } from '../../stages/tcp/tcb.js'
import { PROXY_A, PROXY_PORT, proxyNet, runProxied, SERVER, SERVER_PORT } from '../helpers/proxy-net.js'
import { Pump, sha } from '../helpers/tcp-net.js'

const data = (n: number, seed: number): Uint8Array => new Random(seed).bytes(new Uint8Array(n))

/** What a cycling run saw. */
interface CycleResult {
  ok: boolean
  upOk: boolean
  downOk: boolean
  splices: number
  unsplices: number
  /** Virtual ms from each unsplice() to onUnspliced. */
  unspliceMs: number[]
  /** Longest virtual time with no byte received at either end while the run went on. */
  maxStallMs: number
  failures: string[]
  stats: string
}

interface CycleOpts {
  layout: ProxyLayout
  mode: 'fwd' | 'ipfwd'
  seed: number
  /** Splice/unsplice requests to make (alternating, starting with a splice). */
  actions: number
  impair?: Impairments
  up: number
  down: number
  /**
   * The proxy's TCB buffers. Small ones (64 KiB against the peers' 256 KiB) keep the
   * window the client was offered inside the server's at each splice (and vice versa);
   * with equal buffers a splice can leave a peer allowed to send past the other peer's
   * window, whose drops cost an RTO (a splice-side limit, see the README).
   */
  proxyBuf?: number
}

/** A plug gateway whose session is spliced and unspliced at seeded points of the transfer. */
function cycle(o: CycleOpts): CycleResult {
  let sess: ProxySessionApi | null = null
  const failures: string[] = []
  const unspliceMs: number[] = []
  let unspliceAt = 0
  const net = proxyNet({
    name: 'plug',
    onClientOpen: s => s.connect(parseIPv4(SERVER), SERVER_PORT),
    onServerOpen: s => { sess = s },
    onUnspliced: () => unspliceMs.push(net.clock.now() - unspliceAt),
    onSpliceFailed: (_s, why) => failures.push(why),
    onUnspliceFailed: (_s, why) => failures.push(why),
  } satisfies ProxyHandler, {
    seed: o.seed, forwarder: { layout: o.layout, mode: o.mode },
    client: { mslMs: 100 }, server: { mslMs: 100 },
    proxy: { mslMs: 100, ...(o.proxyBuf !== undefined ? { sndBuf: o.proxyBuf, rcvBuf: o.proxyBuf } : {}) },
    ...(o.impair ? { impair1: { delayMs: 2, ...o.impair }, impair2: { delayMs: 2, ...o.impair } } : {}),
  })
  const rnd = new Random(o.seed * 7919 + 13)
  const total = o.up + o.down
  const gap = (): number => rnd.int(Math.floor(total / (3 * o.actions + 3)), Math.floor(total / (1.5 * o.actions + 1.5)))
  let nextAt = gap()
  let done = 0
  let lastProgress = 0
  let lastTotal = -1
  let maxStallMs = 0
  const up = data(o.up, o.seed)
  const down = data(o.down, o.seed + 1)
  const r = runProxied(net, up, down, {
    stepMs: 1,
    limitMs: 120_000,
    during: (now, c, s) => {
      const got = c.received + (s?.received ?? 0)
      if (got !== lastTotal) {
        lastTotal = got
        lastProgress = now
      } else maxStallMs = Math.max(maxStallMs, now - lastProgress)
      const ss = sess as ProxySessionApi | null
      // Act only well before the ends' FINs (an unsplice after a FIN is refused by design).
      if (ss === null || s === null || done >= o.actions || got < nextAt || s.received > 0.9 * o.up || c.received > 0.9 * o.down) return
      if (ss.state === 'control') {
        ss.splice({ mode: o.mode })
        done++
        nextAt = got + gap()
      } else if (ss.state === 'spliced') {
        unspliceAt = now
        ss.unsplice()
        done++
        nextAt = got + gap()
      }
    },
  })
  const st = net.fw.stats
  return {
    ok: r.ok, upOk: r.server?.digest() === sha(up), downOk: r.client.digest() === sha(down),
    splices: st.splices, unsplices: st.unsplices, unspliceMs, maxStallMs, failures, stats: JSON.stringify(st),
  }
}

const CLEAN_STALL_MS = 3 * MIN_RTO_MS
// Lossy: an RTO may back off once or twice (1 s, 2 s, 4 s) when a retransmission is lost too.
const LOSSY_STALL_MS = 7 * MIN_RTO_MS

for (const layout of ['1-path', '2-path'] as const) {
  for (const mode of ['fwd', 'ipfwd'] as const) {
    t.test(`${layout} ${mode}: splice, unsplice, resplice mid-transfer, several cycles in one connection`, async t => {
      const r = cycle({ layout, mode, seed: 11, actions: 6, up: 1_500_000, down: 2_500_000, proxyBuf: 65536 })
      t.ok(r.ok, `transfer completed ${r.stats}`)
      t.ok(r.upOk, 'client -> server digest equal')
      t.ok(r.downOk, 'server -> client digest equal')
      t.ok(r.unsplices >= 2, `unspliced ${r.unsplices} times (>= 2)`)
      t.ok(r.splices === r.unsplices || r.splices === r.unsplices + 1, `spliced ${r.splices} times: each unsplice was followed by a resplice`)
      t.same(r.failures, [], 'no splice or unsplice failed')
      // Without loss an unsplice waits about one RTT (4 ms) for the ACKs; the senders never
      // retransmit for it (held, not dropped).
      t.ok(Math.max(...r.unspliceMs) < 100, `unsplice latencies ${r.unspliceMs.join(', ')} ms < 100 ms`)
      t.ok(r.maxStallMs < CLEAN_STALL_MS, `longest stall ${r.maxStallMs} ms < ${CLEAN_STALL_MS} ms`)
    })
  }
}

const LOSSY: Impairments = { loss: 0.01, reorder: 0.01, reorderDelayMs: 1, duplicate: 0.005 }

/** One lossy run whose layout, mode and sizes come from the seed alone; returns [unsplices, timeouts]. */
function lossyRun(t: Test, seed: number): [number, number] {
  // From the seed alone, so UNSPLICE_SEED=<failing seed> UNSPLICE_SEEDS=1 repeats a run.
  const layout = seed % 2 === 0 ? '1-path' : '2-path'
  const mode = (seed >> 1) % 2 === 0 ? 'fwd' : 'ipfwd'
  const r = cycle({ layout, mode, seed, actions: 5, impair: LOSSY, up: 400_000 + (seed % 7) * 50_000, down: 600_000 + (seed % 5) * 70_000 })
  const tag = `seed ${seed} ${layout} ${mode}`
  t.ok(r.ok && r.upOk && r.downOk, `${tag}: completed, digests equal (${r.splices} splices, ${r.unsplices} unsplices, ${r.stats})`)
  t.ok(r.maxStallMs < LOSSY_STALL_MS, `${tag}: longest stall ${r.maxStallMs} ms < ${LOSSY_STALL_MS} ms`)
  // Under loss RTOs back off (1, 2, 4 s ...): an unsplice may time out waiting for an ACK.
  // That is the clean failure (the splice goes on); anything else is a bug.
  const other = r.failures.filter(f => !/^unsplice failed: the (server|client) did not acknowledge .* within \d+ ms/.test(f))
  t.same(other, [], `${tag}: no failures but unsplice timeouts (${r.failures.length - other.length} of those)`)
  return [r.unsplices, r.failures.length - other.length]
}

t.test('randomized: seeds x layouts x modes under loss, reordering and duplication', async t => {
  const base = Number(process.env.UNSPLICE_SEED ?? 1000)
  const seeds = Number(process.env.UNSPLICE_SEEDS ?? 6)
  t.comment(`seeds ${base}..${base + seeds - 1} (UNSPLICE_SEED, UNSPLICE_SEEDS to change)`)
  let unsplices = 0
  let timeouts = 0
  for (let i = 0; i < seeds; i++) {
    const [u, to] = lossyRun(t, base + i)
    unsplices += u
    timeouts += to
  }
  t.ok(unsplices >= seeds, `${unsplices} unsplices in ${seeds} runs (${timeouts} timed out)`)
})

t.test('lossy 2-path regressions: seeds that once lost bytes after an unsplice', async t => {
  // 1003 (2-path IP/FWD): the rebuilt TCB's first loss waited for an RTO (fixed in the TCB).
  // 3001 (2-path FWD): the third splice began after the server's FIN; while A still
  // drained the response, the server, closed by FIN both ways, answered a forwarded window
  // update with a RST, which the preliminary FWD passed on: the splice ended and A's
  // unsent 267 kB were lost. Such a RST is now dropped ('rst-after-fin').
  for (const seed of [1003, 3001]) {
    const [u] = lossyRun(t, seed)
    t.ok(u >= 2, `seed ${seed}: ${u} unsplices (>= 2)`)
  }
})

t.test('an unsplice whose peers never acknowledge times out cleanly; the splice goes on', async t => {
  for (const layout of ['1-path', '2-path'] as const) {
    let sess: ProxySessionApi | null = null
    const failures: string[] = []
    const net = proxyNet({
      name: 'plug',
      onClientOpen: s => s.connect(parseIPv4(SERVER), SERVER_PORT),
      onServerOpen: s => s.splice(),
      onSpliced: s => { sess = s },
      onUnspliceFailed: (_s, why) => failures.push(why),
    }, { forwarder: { layout, unspliceTimeoutMs: 300 } })
    // A black hole between the server and the proxy: no ACK of the server's reaches FWD.
    const dev = net.w2.a
    const receive = dev.receive.bind(dev)
    let blackhole = false
    dev.receive = (batch, n) => {
      if (!blackhole) return receive(batch, n)
      for (let i = 0; i < n; i++) batch[i]!.free()
    }
    const up = data(4_000_000, 21)
    const down = data(4_000_000, 22)
    let phase = 0
    let failedAt = 0
    let askedAt = 0
    const r = runProxied(net, up, down, {
      during: (now, c) => {
        const s = sess as ProxySessionApi | null
        const f = [...net.fw.sessions.values()][0]?.fwd
        const toServer = f ? (f.ab.highSeq + f.ab.seqOffset - f.ba.lastAck) | 0 : 0
        if (phase === 0 && s !== null && s.state === 'spliced' && c.received > 200_000 && toServer > 0) {
          t.comment(`${layout}: unsplice asked at ${now} ms, ${c.received} bytes received by the client`)
          phase = 1
          blackhole = true
          askedAt = now
          s.unsplice()
        } else if (phase === 1 && (failures.length > 0 || s?.state !== 'unsplicing')) {
          phase = 2
          failedAt = now
          blackhole = false
        }
      },
    })
    t.equal(phase, 2, `${layout}: the unsplice was asked for and failed`)
    t.equal(failures.length, 1, `${layout}: one unsplice failure`)
    t.match(failures[0], /unsplice failed: the server did not acknowledge the last \d+ bytes forwarded to it within 300 ms \(unspliceTimeoutMs\)/, `${layout}: the reason says who did not acknowledge what: ${failures[0]}`)
    t.ok(failedAt - askedAt >= 300 && failedAt - askedAt < 320, `${layout}: failed after the timeout (${failedAt - askedAt} ms)`)
    t.equal(net.fw.stats.unspliceFailures, 1)
    t.equal(net.fw.stats.unsplices, 0)
    t.ok(r.ok, `${layout}: the spliced transfer then completed`)
    t.equal(r.server?.digest(), sha(up), `${layout}: client -> server digest equal`)
    t.equal(r.client.digest(), sha(down), `${layout}: server -> client digest equal`)
  }
})

t.test('unsplice of a session that is not spliced is refused with a state error', async t => {
  let sess: ProxySessionApi | null = null
  const net = proxyNet({ name: 'plug', onClientOpen: s => s.connect(parseIPv4(SERVER), SERVER_PORT), onServerOpen: s => { sess = s } })
  runProxied(net, data(1000, 1), data(1000, 2), { limitMs: 50, during: () => {} })
  const s = sess as ProxySessionApi | null
  t.ok(s !== null)
  t.throws(() => s!.unsplice(), /unsplice\(\) needs state spliced, the session is (control|closed)/)
})

t.test('unspliceAfterServerBytes counts from the splice() call, server bytes relayed before the splice included', async t => {
  // As HTTP keep-alive: the server sends one "response" of FIRST bytes, pauses, then a
  // second of SECOND bytes. The handler asks, 50 kB into the first, to unsplice at its
  // end, with a splice that waits for 100 kB more to the client (relayed meanwhile).
  const FIRST = 400_000
  const SECOND = 100_000
  for (const layout of ['1-path', '2-path'] as const) {
    let f0 = -1
    let atCall = 0
    let tapped = 0
    let seen = 0
    let afterUnsplice = -1
    let relayed = 0
    const failures: string[] = []
    const net = proxyNet({
      name: 'counted',
      onClientOpen: s => s.connect(parseIPv4(SERVER), SERVER_PORT),
      onServerData: (s, d) => {
        seen += d.length
        if (afterUnsplice >= 0) afterUnsplice += d.length
        s.writeToClient(d)
        if (seen >= 50_000 && f0 < 0) {
          f0 = s.bytes.fromServer
          atCall = seen
          s.splice({ afterClientBytes: 100_000, unspliceAfterServerBytes: FIRST - seen, tap: (dir, b) => { if (dir === 'toClient') tapped += b.length } })
        }
      },
      onUnspliced: s => {
        afterUnsplice = 0
        relayed = s.bytes.fromServer - f0
      },
      onUnspliceFailed: (_s, why) => failures.push(why),
    }, { forwarder: { layout } })
    net.tcpS.listen(SERVER_PORT, conn => {
      const tcb = conn.stage.tcb
      const q = [data(FIRST, 41)]
      const flush = (): void => {
        while (q.length > 0) {
          const n = tcb.write(q[0]!)
          if (n === q[0]!.length) q.shift()
          else return void (q[0] = q[0]!.subarray(n))
        }
      }
      tcb.events = { writable: flush }
      conn.stage.app = { onData: () => { while (tcb.read(new Uint8Array(65536)) > 0);} }
      flush()
      const pause = net.sched.timer(() => { q.push(data(SECOND, 42)); flush() })
      pause.set(500)
    })
    // The client keeps sending (an unsplice after its FIN is refused) and counts.
    const client = new Pump(net.tcpC.connect(parseIPv4(PROXY_A), PROXY_PORT), data(3_000_000, 43))
    net.sched.runUntil(() => client.received >= FIRST + SECOND, 20_000)
    t.equal(client.received, FIRST + SECOND, `${layout}: the client got both responses`)
    t.equal(net.fw.stats.unsplices, 1, `${layout}: unspliced once`)
    t.same(failures, [], `${layout}: no unsplice failure`)
    // (Bytes B held unread at the splice go straight into A's send buffer: counted by neither.)
    t.ok(f0 >= 0 && relayed >= 50_000, `${layout}: ${relayed} server bytes were relayed between splice() and the splice (the old count started after them)`)
    t.ok(atCall + relayed + tapped <= FIRST && tapped > 0, `${layout}: seen at the call (${atCall}) + relayed (${relayed}) + spliced (${tapped}) <= the first response (${FIRST})`)
    t.equal(afterUnsplice, SECOND, `${layout}: the handler read the whole second response in control mode (not one byte spliced past the point)`)
  }
})
