/**
 * Randomized splice scenarios through the proxy network of proxy-net.ts (our TCP at both
 * ends, memory wires, virtual time): one seed picks the layout, the final stage, the sizes
 * each way, the moment of the splice, the impairments of each wire, each TCB's options and
 * the teardown; {@link runScenario} runs it and reports what the test asserts.
 */
import type { Impairments } from '../../core/impair.js'
import { parseIPv4 } from '../../core/bytes.js'
import { Random } from '../../core/random.js'
import type { ProxyLayout } from '../../paths/proxy/forwarder.js'
import type { ProxyHandler, ProxySession, ProxySessionApi, SpliceMode } from '../../stages/proxy/session.js'
import type { Tcb, TcbConfig } from '../../stages/tcp/tcb.js'
import { PROXY_A, PROXY_PORT, proxyNet, SERVER, SERVER_PORT } from './proxy-net.js'
import { Pump, randomTcbConfig, sha } from './tcp-net.js'

/** When the splice is requested. */
export type SpliceWhen =
  /** As the server connection opens (no data yet; with a banner: after it, like SOCKS). */
  | 'open'
  /** As the server's first byte (or its FIN) reaches the proxy. */
  | 'answer'
  /** Once `midBytes` of one direction reached the proxy: data in flight and buffered everywhere. */
  | 'mid'
  /** Once one peer's FIN reached the proxy (a half-closed connection). */
  | 'late'

/** How the connection ends. */
export type Teardown = 'fin' | 'rst-client' | 'rst-server'

/** One randomized run. */
export interface Scenario {
  seed: number
  layout: ProxyLayout
  mode: SpliceMode
  /** Bytes client to server, server to client. */
  up: number
  down: number
  when: SpliceWhen
  /** 'mid': the threshold, counted in the direction `midDir`. */
  midBytes: number
  midDir: 'up' | 'down'
  /** The handler copies both streams through the session (held in its queues) instead of relaying. */
  inspect: boolean
  /** Bytes the proxy writes to the client before the server's (a SOCKS-style reply), splicing after them. */
  banner: number
  impair1: Impairments
  impair2: Impairments
  client: TcbConfig
  proxy: TcbConfig
  server: TcbConfig
  /** The forwarder offers the server the client's options. */
  mirror: boolean
  teardown: Teardown
  /** RST: the aborting end aborts once it received this many bytes and the splice began. */
  rstAt: number
  /** ISNs and TSval clocks start just below 2^32. */
  wrap: boolean
  /**
   * Unsplice/resplice cycles after the first splice: for each, the unsplice is asked for
   * `unspliceAfterMs` after the session became spliced, and the splice again
   * `respliceAfterMs` after it is back in control mode (0: at once, inside `onUnspliced`,
   * the TCBs just rebuilt from FWD state and nothing sent yet).
   */
  cycles?: { unspliceAfterMs: number; respliceAfterMs: number }[]
}

/** Options of {@link randomScenario}. */
export interface ScenarioOptions {
  /** Allow loss and corruption (else only reordering, duplication, delay and jitter). */
  lossy: boolean
  /** Largest transfer size one way. */
  maxBytes: number
  /** The share of seeds that unsplice and splice again [0.4]. */
  cycles?: number
}

function size(r: Random, max: number): number {
  const p = r.next()
  if (p < 0.15) return 0
  if (p < 0.4) return r.int(1, 2000)
  if (p < 0.85) return r.int(2000, Math.max(2001, max >> 2))
  return r.int(max >> 2, max)
}

function tcbConfig(r: Random): TcbConfig {
  // Draws in the same order as before (the base fields, then the MSS): seeds replay.
  return {
    ...randomTcbConfig(r),
    ...(r.chance(0.25) ? { mss: r.int(536, 1460) } : {}),
    // Linux accepts segments without timestamps after they were negotiated; a splice
    // between a connection with timestamps and one without needs that (DESIGN §5).
    strictTimestamps: false,
  }
}

function impairments(r: Random, lossy: boolean): Impairments {
  const delayMs = r.int(1, 10)
  if (r.chance(0.4)) return { delayMs }
  return {
    delayMs,
    jitterMs: r.int(0, 3),
    reorder: r.next() * 0.05,
    reorderDelayMs: r.int(1, 10),
    duplicate: r.next() * 0.03,
    ...(lossy ? { loss: r.next() * 0.03, corrupt: r.next() * 0.01 } : {}),
  }
}

/** The scenario of one seed. */
export function randomScenario(seed: number, o: ScenarioOptions): Scenario {
  const r = new Random(seed)
  const up = size(r, o.maxBytes)
  const down = size(r, o.maxBytes)
  const whens: SpliceWhen[] = ['open', 'answer', 'mid', 'mid', 'late']
  const when = whens[r.int(0, whens.length - 1)]!
  const midDir = r.chance(0.5) ? 'up' : 'down'
  const midTotal = midDir === 'up' ? up : down
  const teardownP = r.next()
  const teardown: Teardown = teardownP < 0.75 ? 'fin' : teardownP < 0.875 ? 'rst-client' : 'rst-server'
  // The aborting end must still expect data from its peer, so that the peer learns of the
  // reset even if the RST itself is lost (its retransmission draws another).
  const peerBytes = teardown === 'rst-client' ? down : up
  const s: Scenario = {
    seed,
    layout: r.chance(0.5) ? '1-path' : '2-path',
    mode: r.chance(0.5) ? 'fwd' : 'ipfwd',
    up,
    down,
    when,
    midBytes: midTotal > 1 ? r.int(1, midTotal - 1) : 0,
    midDir,
    inspect: r.chance(0.3),
    banner: r.chance(0.2) ? r.int(1, 300) : 0,
    impair1: impairments(r, o.lossy),
    impair2: impairments(r, o.lossy),
    client: tcbConfig(r),
    proxy: tcbConfig(r),
    server: tcbConfig(r),
    mirror: r.chance(0.6),
    teardown: peerBytes > 20_000 ? teardown : 'fin',
    rstAt: peerBytes > 20_000 ? r.int(0, peerBytes - 20_000) : 0,
    wrap: r.chance(0.3),
  }
  // Drawn from a second generator so that the seeds without cycles replay as before.
  const rc = new Random((seed ^ 0x2545f491) >>> 0)
  if (rc.chance(o.cycles ?? 0.4)) {
    const n = rc.int(1, 3)
    s.cycles = []
    // An unsplice is refused once a FIN was forwarded: give both directions data to carry
    // past the first splice (the earlier draws, midBytes and rstAt, stay valid).
    if (s.up < 50_000) s.up = rc.int(50_000, Math.max(50_001, o.maxBytes))
    if (s.down < 50_000) s.down = rc.int(50_000, Math.max(50_001, o.maxBytes))
    for (let i = 0; i < n; i++) {
      s.cycles.push({ unspliceAfterMs: rc.chance(0.3) ? 0 : rc.int(1, 25), respliceAfterMs: rc.chance(0.5) ? 0 : rc.int(1, 25) })
    }
  }
  // Half the IP/FWD seeds go to the shared IP/FWD path instead (those with cycles unsplice
  // from a row: the forwarder keeps the wiring, sharedUnsplice); from a third generator, so
  // every other draw replays as before.
  if (s.mode === 'ipfwd' && new Random((seed ^ 0x5bd1e995) >>> 0).chance(0.5)) s.mode = 'ipfwd-shared'
  return s
}

/** What {@link runScenario} observed. */
export interface ScenarioResult {
  /** Every check that failed, in words (empty: the run passed). */
  problems: string[]
  /** Virtual ms from the first SYN to the end (both FINs acked, or the reset seen). */
  elapsedMs: number
  /** Longest virtual time without progress at either end (ms). */
  longestStallMs: number
  /** The largest RTO (backoff included) of the TCBs still sending when that stall began (ms). */
  stallRtoMs: number
  /** The splice's latency (request to final FWD), or -1. */
  spliceMs: number
  /** The splice completed. */
  spliced: boolean
  /** The splice was refused for a legitimate reason (both directions had finished), with that reason. */
  refused: string | null
  /** RTO timeouts at the two ends and at the proxy's old TCBs. */
  rtoTimeouts: number
  /** Retransmissions at all four TCBs. */
  retransmits: number
  /** The run ended with a RST from one end. */
  aborted: boolean
  /** Unsplices completed (back in control mode). */
  unsplices: number
  /** Unsplices refused or timed out, with the reasons. */
  unspliceFailures: string[]
}

/** How long a splice waits for out-of-order data in a proxy TCB to clear (the forwarder's `spliceWaitMs`). */
const SPLICE_WAIT_MS = 10_000

/** Loss or corruption configured on either wire. */
export function lossy(s: Scenario): boolean {
  return [s.impair1, s.impair2].some(i => (i.loss ?? 0) > 0 || (i.corrupt ?? 0) > 0)
}

/** Runs one scenario to its end (or a virtual-time limit) and checks it. */
export function runScenario(s: Scenario, o: { limitMs?: number } = {}): ScenarioResult {
  const problems: string[] = []
  const rng = new Random(s.seed ^ 0x5bd1e995)
  const upData = rng.bytes(new Uint8Array(s.up))
  const downData = rng.bytes(new Uint8Array(s.down))
  const banner = rng.bytes(new Uint8Array(s.banner))
  let sess: ProxySessionApi | null = null
  let requestedAt = -1
  let refused: string | null = null
  /** Both peers' FINs had reached the proxy when the splice was asked for: nothing left to splice. */
  let bothFinished = false
  const proxyTcbs: Tcb[] = []
  // Unsplice/resplice cycles: when the session became spliced, the unsplices asked for and
  // completed, when the next splice is due, splices asked for in all.
  let splicedAt = -1
  let unsplicesAsked = 0
  let unsplices = 0
  let respliceDue = -1
  let splicesAsked = 0
  const unspliceFailures: string[] = []
  /** Why the session closed (onClose), or null. */
  let closedWhy: string | null = null
  const requestSplice = (api: ProxySessionApi): void => {
    if (requestedAt >= 0 || api.state !== 'control') return
    requestedAt = net.clock.now()
    splicesAsked++
    const w = wiring()
    bothFinished = w !== undefined && w.a.stage.tcb.peerFinished && w.b !== null && w.b.stage.tcb.peerFinished
    if (s.banner > 0 && s.when === 'open') {
      api.splice({ mode: s.mode, afterClientBytes: banner.length })
      api.writeToClient(banner)
    } else api.splice({ mode: s.mode })
  }
  const handler: ProxyHandler = {
    name: 'random',
    onClientOpen: api => {
      sess = api
      // A banner is written now unless it is the splice's "OK message" (SOCKS style).
      if (s.banner > 0 && s.when !== 'open') api.writeToClient(banner)
      api.connect(parseIPv4(SERVER), SERVER_PORT)
    },
    onServerOpen: api => {
      if (s.when === 'open') requestSplice(api)
    },
    onSpliced: () => {
      splicedAt = net.clock.now()
    },
    onUnspliced: api => {
      const c = s.cycles?.[unsplices++]
      if (c === undefined) return
      if (c.respliceAfterMs === 0) {
        splicesAsked++
        api.splice({ mode: s.mode })
      }
      else respliceDue = net.clock.now() + c.respliceAfterMs
    },
    onUnspliceFailed: (_api, why) => {
      unspliceFailures.push(why)
    },
    onClose: (_api, why) => {
      closedWhy = why
    },
    onSpliceFailed: (_api, why) => {
      refused = why
      // A splice that waited for out-of-order data to clear may find both peers finished.
      const w = wiring()
      bothFinished ||= w !== undefined && w.a.stage.tcb.peerFinished && w.b !== null && w.b.stage.tcb.peerFinished
    },
    ...(s.inspect ? {
      onClientData: (api: ProxySessionApi, d: Uint8Array) => api.writeToServer(d),
      onServerData: (api: ProxySessionApi, d: Uint8Array) => api.writeToClient(d),
    } : {}),
  }
  const net = proxyNet(handler, {
    seed: s.seed, impair1: s.impair1, impair2: s.impair2, client: s.client, proxy: s.proxy, server: s.server,
    // With a RST teardown, a lost RST may leave the splice without traffic: the idle timer ends it.
    forwarder: { layout: s.layout, mode: s.mode, mirrorOptions: s.mirror, sharedUnsplice: (s.cycles?.length ?? 0) > 0, spliceWaitMs: SPLICE_WAIT_MS, ...(s.teardown === 'fin' ? {} : { idleMs: 20_000 }) },
  })
  // Deterministic ISNs and TSval offsets (ephemeral ports are random), near 2^32 in some
  // seeds so sequence numbers and TSvals wrap during the run.
  const wrap = s.wrap
  for (const m of [net.tcpC, net.tcpP, net.tcpS]) {
    m.isn = (localIp, _lp, remoteIp) => {
      const r = new Random((s.seed * 31 + localIp * 7 + remoteIp) >>> 0)
      const pick = (): number => (wrap ? (0xffffffff - r.int(0, 60000)) >>> 0 : r.nextU32())
      return { iss: pick(), tsOffset: pick() }
    }
  }
  let server: Pump | null = null
  net.tcpS.listen(SERVER_PORT, conn => {
    server = new Pump(conn, downData, rng)
  })
  const client = new Pump(net.tcpC.connect(parseIPv4(PROXY_A), PROXY_PORT), upData, rng)
  const wiring = () => (sess === null ? undefined : net.fw.sessions.get(sess as ProxySession))

  // Progress: bytes delivered or acknowledged at either end, FINs, session states.
  let lastSig = -1
  let lastProgress = 0
  let longestStall = 0
  let rtoAtProgress = 0
  let stallRto = 0
  // What a stall may be measured against: the RTOs of the ends and of the proxy's TCBs
  // that still send (a drained or closed TCB's RTO is no timer anyone waits for).
  const largestRto = (): number => {
    let m = client.conn.stage.tcb.rto
    const st = (server as Pump | null)?.conn.stage.tcb
    if (st !== undefined && st.rto > m) m = st.rto
    for (const t of proxyTcbs) if (!t.drained && t.state !== 'CLOSED' && t.rto > m) m = t.rto
    return m
  }
  let aborted: 'client' | 'server' | null = null
  const signature = (): number => {
    const sv = server as Pump | null
    const ct = client.conn.stage.tcb
    const st = sv?.conn.stage.tcb
    return client.received + (sv?.received ?? 0) + (client.gotEnd ? 1 : 0) + (sv?.gotEnd ? 1 : 0) +
      (ct.sndUna >>> 0) + (st === undefined ? 0 : st.sndUna >>> 0) + ct.state.length * 7 + (st?.state.length ?? 0) * 11
  }
  const finished = (): boolean => {
    const sv = server as Pump | null
    if (sv === null) return false
    if (aborted !== null) {
      const other = aborted === 'client' ? sv : client
      const st = other.conn.stage.tcb.state
      return other.error !== null || st === 'CLOSED' || ((st === 'FIN-WAIT-2' || st === 'TIME-WAIT') && other.conn.stage.tcb.sndBuf.length === 0 && lossy(s))
    }
    const closedOrWaiting = (t: Tcb) => t.state === 'CLOSED' || t.state === 'TIME-WAIT'
    return client.gotEnd && sv.gotEnd && client.received === s.down + s.banner && sv.received === s.up &&
      closedOrWaiting(client.conn.stage.tcb) && closedOrWaiting(sv.conn.stage.tcb)
  }
  const triggers = (): void => {
    const api = sess as ProxySessionApi | null
    const w = wiring()
    if (api !== null && w !== undefined) {
      for (const c of [w.a, w.b]) if (c !== null && !proxyTcbs.includes(c.stage.tcb)) proxyTcbs.push(c.stage.tcb)
      if (requestedAt < 0 && api.state === 'control' && w.bConnected) {
        const b = w.b!.stage.tcb
        const a = w.a.stage.tcb
        if (s.when === 'answer' && (api.bytes.fromServer > 0 || b.peerFinished)) requestSplice(api)
        else if (s.when === 'mid' && (s.midDir === 'up' ? api.bytes.fromClient : api.bytes.fromServer) >= s.midBytes) requestSplice(api)
        else if (s.when === 'late' && (a.peerFinished || b.peerFinished)) requestSplice(api)
      }
    }
    // Unsplice/resplice: a session on the shared IP/FWD path has no wiring while spliced.
    if (api !== null) {
      const now = net.clock.now()
      const c = s.cycles?.[unsplicesAsked]
      if (c !== undefined && api.state === 'spliced' && splicedAt >= 0 && now >= splicedAt + c.unspliceAfterMs) {
        unsplicesAsked++
        api.unsplice()
      }
      if (respliceDue >= 0 && now >= respliceDue && api.state === 'control') {
        respliceDue = -1
        splicesAsked++
        api.splice({ mode: s.mode })
      }
    }
    // The splice began: a FWD stage in the wiring, or (ipfwd-shared) no wiring left at all.
    const begun = (w !== undefined && w.fwd !== null) || (api !== null && api.state === 'spliced')
    if (s.teardown !== 'fin' && aborted === null && begun) {
      // Once the splice began, and while the peer still has unacknowledged data: it keeps
      // retransmitting until it hears the reset, even if the RST itself is lost.
      const sv = server as Pump | null
      const who = s.teardown === 'rst-client' ? client : sv
      const peer = s.teardown === 'rst-client' ? sv : client
      const peerLen = s.teardown === 'rst-client' ? s.down + s.banner : s.up
      if (who !== null && peer !== null && who.received >= s.rstAt && who.received < peerLen && peer.conn.stage.tcb.sndBuf.length > 0) {
        aborted = s.teardown === 'rst-client' ? 'client' : 'server'
        who.conn.stage.tcb.abort()
      }
    }
  }
  const start = net.clock.now()
  const limit = start + (o.limitMs ?? 600_000)
  let lastNow = -1
  const ok = net.sched.runUntil(() => {
    triggers()
    const now = net.clock.now()
    if (now !== lastNow) {
      lastNow = now
      const sig = signature()
      if (sig !== lastSig) {
        lastSig = sig
        lastProgress = now
        rtoAtProgress = largestRto()
      } else if (now - lastProgress > longestStall) {
        longestStall = now - lastProgress
        stallRto = rtoAtProgress
      }
    }
    return finished() || (aborted === null && (client.error !== null || (server as Pump | null)?.error != null))
  }, limit)
  const elapsedMs = net.clock.now() - start
  const sv = server as Pump | null
  if (!ok || !finished()) {
    problems.push(`did not finish within ${limit - start} ms virtual: client ${client.conn.stage.tcb.state} got ${client.received}/${s.down + s.banner}` +
      ` err=${client.error}, server ${sv?.conn.stage.tcb.state ?? '-'} got ${sv?.received ?? 0}/${s.up} err=${sv?.error ?? null}, session ${sess === null ? '-' : (sess as ProxySessionApi).state}`)
  }
  if (aborted === null && sv !== null && ok) {
    if (sv.digest() !== sha(upData)) problems.push('server digest differs')
    if (client.digest() !== sha(concat(banner, downData))) problems.push('client digest differs')
  } else if (aborted !== null) {
    // RFC 9293 §3.10.7.4: a RST in LAST-ACK or CLOSING closes without an error report.
    // A peer whose whole stream was acknowledged (in flight before the abort) sends nothing
    // more: it learns of the reset only from the RST itself, which a lossy wire may drop.
    const other = aborted === 'client' ? sv : client
    const ot = other?.conn.stage.tcb
    const why = ot?.trace.at(-1) ?? ''
    const idle = ot !== undefined && (ot.state === 'FIN-WAIT-2' || ot.state === 'TIME-WAIT') && lossy(s)
    if (other !== null && other.error !== 'reset' && !/-> CLOSED \(RST in/.test(why) && !idle) {
      problems.push(`the ${aborted === 'client' ? 'server' : 'client'} saw ${other.error ?? why} instead of a reset`)
    }
  }
  // Let the forwarder settle (linger after the FINs, a proxy TCB's TIME-WAIT): no session may stay.
  net.sched.runUntil(() => net.fw.stats.active === 0, net.clock.now() + 65_000)
  net.sched.runFor(100)
  const st = net.fw.stats
  if (st.active !== 0 || st.splicing !== 0 || st.spliced !== 0) problems.push(`forwarder not idle: ${JSON.stringify(st)}`)
  const spliced = st.splices >= 1
  if (requestedAt >= 0 && st.splices < splicesAsked && aborted === null) {
    // Refused legitimately: both peers had finished; or, under loss, a hole in a proxy
    // TCB's receive buffer outlived the splice's wait (SPLICE_WAIT_MS) because the
    // connection itself made no progress for that long (RTO backoff, within the lossy
    // stall bound; e.g. a lost SYN-ACK left an RTT sample of 1 s and an RTO of 3 s).
    // Or the connection ended normally before the splice could complete: both TCBs closed
    // while the splice waited for a hole to fill ('closed'), or FIN both ways while the old
    // TCBs drained ('fin'). Nothing is left to splice; the handler hears onClose.
    const legit = (refused !== null && (bothFinished || (lossy(s) && /out-of-order data did not clear/.test(refused) && longestStall >= SPLICE_WAIT_MS))) ||
      (refused === null && (closedWhy === 'closed' || closedWhy === 'fin'))
    if (!legit) problems.push(`${splicesAsked} splices requested (the first at ${requestedAt - start} ms), ${st.splices} completed: ${refused ?? 'still splicing'}`)
  }
  if (st.unsplices !== unsplices) problems.push(`forwarder counted ${st.unsplices} unsplices, the handler saw ${unsplices}`)
  // An unsplice is refused once a FIN was forwarded (the connection is closing); without
  // loss the peers acknowledge well within unspliceTimeoutMs.
  for (const why of unspliceFailures) {
    if (!/a FIN was forwarded/.test(why) && !(lossy(s) && /unspliceTimeoutMs/.test(why))) problems.push(why)
  }
  if (requestedAt < 0 && aborted === null && s.when !== 'late') problems.push('the splice was never requested')
  const ends = [client.conn.stage.tcb, ...(sv === null ? [] : [sv.conn.stage.tcb])]
  const all = [...ends, ...proxyTcbs]
  return {
    problems,
    elapsedMs,
    longestStallMs: longestStall,
    stallRtoMs: stallRto,
    spliceMs: spliced ? st.spliceMsTotal : -1,
    spliced,
    refused: spliced ? null : refused,
    rtoTimeouts: all.reduce((n, t) => n + t.counters.rtoTimeouts, 0),
    retransmits: all.reduce((n, t) => n + t.counters.retransmits, 0),
    aborted: aborted !== null,
    unsplices,
    unspliceFailures,
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
