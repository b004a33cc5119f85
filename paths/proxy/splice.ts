/**
 * The splice engine: Scout's five steps (§III-C, DESIGN §5) on a session's paths, the
 * final FWD or IP/FWD stage, teardown, and unsplicing back to two live TCBs.
 *
 * ```
 *  splice:   wait until neither TCB holds out-of-order data (the peer believes those
 *            bytes delivered, SACKed, but nobody could pass them on)
 *            1 gate both paths
 *            - move what the proxy holds (hand-over queue, queued writes, unread bytes)
 *              into the other TCB's send buffer: the send streams' ends are now fixed
 *            2 unlink TCP+PROXY+TCP, insert the preliminary FWD (offsets from the TCBs)
 *            - ungate: new segments are forwarded; copies drain the old TCBs (step 3)
 *            4 both drained: replace it by the final FWD, or merge IP+FWD+IP into IP/FWD,
 *              or (ipfwd-shared) move the FWD state into a row of the forwarder's shared
 *              IP/FWD path, hand it the queued frames, and release the session's own path,
 *              TCBs and flow entries
 *            5 ungate
 *  unsplice: each stream's unsplice point is what FWD forwarded so far; FWD holds
 *            segments with data beyond it (forwarding only their ACKs) until each peer
 *            acknowledged everything up to the point, then two TCBs are built from FWD
 *            state (Tcb.established: nothing in flight, slow start), the session's layout
 *            comes back, and the held segments are fed to the new TCBs
 * ```
 * @module
 */
import { seqAdd, seqDiff, seqGt, seqLt } from '../../core/seq.js'
import { Path } from '../../core/path.js'
import { Dir } from '../../core/stage.js'
import type { Timer } from '../../core/timers.js'
import { PreliminaryFwdStage } from '../../stages/fwd/preliminary.js'
import { IpFwdStage } from '../../stages/fwd/ipfwd.js'
import { TsMode, type FwdDirection } from '../../stages/fwd/rewrite.js'
import { FwdStage, type FwdEnd, type FwdTapDir } from '../../stages/fwd/stage.js'
import type { SpliceMode, SpliceOptions } from '../../stages/proxy/session.js'
import type { TcpConnection } from '../../stages/tcp/module.js'
import { TcpStage } from '../../stages/tcp/stage.js'
import type { EstablishedParams, TcbSnapshot } from '../../stages/tcp/tcb.js'
import { SPLICEABLE_STATES, spliceConfig, type SpliceSide } from '../splice/config.js'
import type { Interface } from '../host.js'
import type { ProxyForwarder, SharedKeep, Wiring } from './forwarder.js'
import type { SharedIpFwdPath } from './shared-path.js'
import { EthStage } from '../../stages/eth/stage.js'

/** Tunables of the engine (the forwarder's options). */
export interface SpliceEngineOptions {
  /** See ProxyForwarderOptions.idleMs. */
  idleMs: number
  /** See ProxyForwarderOptions.lingerMs. */
  lingerMs: number
  /** See ProxyForwarderOptions.spliceWaitMs. */
  spliceWaitMs: number
  /** See ProxyForwarderOptions.unspliceTimeoutMs. */
  unspliceTimeoutMs: number
}

/** What a splice keeps about the two connections it replaced (for unsplicing). */
interface SplicedLegs {
  /** A's TCB at the splice. */
  a: TcbSnapshot
  /** B's TCB at the splice. */
  b: TcbSnapshot
  /** The final stage. */
  mode: SpliceMode
  /** When the splice was requested (ms). */
  started: number
  /** Server-stream sequence (B space) at which to unsplice by itself, or null. */
  unspliceAt: number | null
}

const IPPROTO_TCP = 6
/** How often a splice waiting for out-of-order data to clear looks again (ms). */
const SPLICE_RETRY_MS = 5

/** Runs `fn` once every path in `paths[from..]` is between messages (no copies of `paths`: a splice allocates little). */
function whenIdle(paths: readonly Path[], fn: () => void, from = 0): void {
  const p = paths[from]
  if (p === undefined) fn()
  else p.betweenMessages(from + 1 >= paths.length ? fn : () => whenIdle(paths, fn, from + 1))
}

/** What an old TCB's application hears once its stage is unlinked: nothing (shared: a splice allocates little). */
const IGNORE_DATA = Object.freeze({ onData(): void {} })

/** Why a TCB cannot be spliced now, or null. */
function notSpliceable(t: TcpStage, name: string): string | null {
  const st = t.tcb.state
  return SPLICEABLE_STATES.has(st) ? null : `the ${name} connection is ${st}`
}

/** Splices, finalizes, tears down and unsplices the sessions of one forwarder. */
export class SpliceEngine {
  private readonly fw: ProxyForwarder
  private readonly o: SpliceEngineOptions
  private readonly legs = new WeakMap<Wiring, SplicedLegs>()
  /** The splice snapshots of sessions moved to the shared path with `sharedUnsplice`. */
  private readonly kept = new WeakMap<SharedKeep, SplicedLegs>()
  /** Splices whose FINs were both acknowledged, forwarding late retransmissions until the linger time ends. */
  private readonly lingering = new WeakSet<Wiring>()
  /**
   * Sessions whose rebuilt TCBs are still being fed the segments FWD held at the unsplice,
   * with the splice a handler asked for meanwhile (in `onUnspliced`): it waits until they
   * are in, or they would reach TCBs already draining, which never acknowledge new data
   * (the sender would wait for its RTO to resend them through the new splice).
   */
  private readonly feeding = new WeakMap<Wiring, (() => void) | null>()

  /** @internal */
  constructor(fw: ProxyForwarder, o: SpliceEngineOptions) {
    this.fw = fw
    this.o = o
  }

  private get now(): number {
    return this.fw.host.scheduler.now()
  }

  /** Starts a splice (the session is in state `splicing`). */
  splice(w: Wiring, opts: SpliceOptions): void {
    if ((opts.mode ?? this.fw.mode) === 'ipfwd-shared' && (opts.tap !== undefined || opts.unspliceAfterServerBytes !== undefined)) {
      // The forwarder's default mode is shared; the session could not refuse it itself.
      return this.fail(w, `mode 'ipfwd-shared' keeps no per-connection callbacks or state: it cannot ${opts.tap !== undefined ? 'tap' : 'unsplice after n bytes'}; ask for mode 'ipfwd' or 'fwd'`)
    }
    this.attempt(w, opts, this.now, null)
  }

  private attempt(w: Wiring, opts: SpliceOptions, started: number, timer: Timer | null): void {
    if (this.feeding.has(w)) {
      this.feeding.set(w, () => this.attempt(w, opts, started, timer))
      return
    }
    const run = (): void => this.tryNow(w, opts, started, timer)
    const b = w.pathB
    if (b === null) w.pathA.betweenMessages(run)
    else w.pathA.betweenMessages(() => b.betweenMessages(run))
  }

  private tryNow(w: Wiring, opts: SpliceOptions, started: number, retry: Timer | null): void {
    const s = w.session
    if (w.done || s.state !== 'splicing' || w.b === null) return
    const A = w.a.stage
    const B = w.b.stage
    const bad = (w.bConnected ? null : 'the server connection is not established') ?? notSpliceable(A, 'client') ?? notSpliceable(B, 'server')
    if (bad !== null) return this.fail(w, bad)
    if (A.tcb.ooo.bytes() > 0 || B.tcb.ooo.bytes() > 0) {
      if (this.now - started >= this.o.spliceWaitMs) return this.fail(w, `out-of-order data did not clear within ${this.o.spliceWaitMs} ms`)
      const t = retry ?? this.fw.host.scheduler.timer(() => this.attempt(w, opts, started, t))
      t.set(SPLICE_RETRY_MS)
      return
    }
    retry?.cancel()
    const pathB = w.pathB
    // Step 1.
    w.pathA.gate()
    pathB?.gate()
    this.moveHeldBytes(w, A, B)
    // A FIN the proxy received but had not passed on yet goes after the moved bytes.
    if (A.tcb.peerFinished && !B.tcb.finQueued) B.tcb.shutdown()
    if (B.tcb.peerFinished && !A.tcb.finQueued) A.tcb.shutdown()
    const snapA = A.tcb.snapshot()
    const snapB = B.tcb.snapshot()
    let cfg
    try {
      cfg = spliceConfig(this.side(w.a, snapA), this.side(w.b, snapB))
    } catch (err) {
      w.pathA.ungate()
      pathB?.ungate()
      return this.fail(w, (err as Error).message)
    }
    const userTap = opts.tap
    const tap = userTap === undefined ? null : (dir: FwdTapDir, data: Uint8Array) => userTap(dir === 'ab' ? 'toServer' : 'toClient', data)
    // Step 2.
    const pre = new PreliminaryFwdStage({
      ab: cfg.ab, ba: cfg.ba, tap, trustChecksums: this.fw.tcp.trustChecksums,
      a: { tcp: A, drainEnd: snapA.sndEnd, tsLastOut: snapA.tsLastSent },
      b: { tcp: B, drainEnd: snapB.sndEnd, tsLastOut: snapB.tsLastSent },
      onEnd: why => this.ended(w, why),
    })
    const host = this.fw.host
    if (w.layout === '1-path') {
      w.pathA.replace(A, B, [pre])
    } else {
      const ns = host.netStages(w.b.remoteIp, IPPROTO_TCP, { up: Dir.Backward })
      w.pathA.replace(A, w.proxyA, [pre, ...ns.stages])
      host.attach(w.pathA, ns.iface, 1)
      // B's segments now enter path A at end 1; what path B held moves with them.
      const pb = w.pathB!
      const q = pb.ends[0].input
      for (let m = q.shift(); m !== undefined; m = q.shift()) w.pathA.ends[1].enqueue(m)
      w.b.end = w.pathA.ends[1]
      w.pathB = null
      pb.close()
      host.detach(pb)
    }
    const mode = opts.mode ?? this.fw.mode
    const n = opts.unspliceAfterServerBytes
    const at = n === undefined ? null : seqAdd(s.spliceServerMark ?? snapB.rcvNxt, n)
    this.legs.set(w, { a: snapA, b: snapB, mode, started, unspliceAt: at })
    w.fwd = pre
    w.mode = mode
    if (at !== null) {
      // The unsplice point may be reached (or be behind us) while the old TCBs drain:
      // from then on new data is held for the TCBs the unsplice will build (an HTTP
      // client's next request must reach the proxy, not the server).
      const left = seqDiff(at, pre.ba.highSeq)
      if (left <= 0) pre.holdNewData()
      else pre.notifyAt(Dir.Backward, left, () => pre.holdNewData())
    }
    this.fw.stats.splicing++
    this.drainEvents(w, A, B)
    this.drainEvents(w, B, A)
    // Step 3 runs from here: ungated, new segments reach the preliminary FWD.
    w.pathA.ungate()
    A.tcb.startDrain()
    B.tcb.startDrain()
  }

  /** Step 3: `t` drains; once it and `other` are drained, the final stage goes in. */
  private drainEvents(w: Wiring, t: TcpStage, other: TcpStage): void {
    t.app = IGNORE_DATA
    t.tcb.events = {
      drained: () => {
        if (other.tcb.drained) whenIdle([w.pathA], () => this.finalize(w))
      },
      error: why => this.teardown(w, why),
    }
    t.tcb.ownerEvents = {}
  }

  /** Puts every byte the proxy holds into the send buffer of the TCB it is bound for. */
  private moveHeldBytes(w: Wiring, A: TcpStage, B: TcpStage): void {
    const s = w.session
    if (w.pathB !== null) {
      // 2-path: relayed Msgs still in the hand-over queues.
      w.pathA.flush()
      w.pathB.flush()
      for (const [p, t] of [[w.pathB, B], [w.pathA, A]] as const) {
        const q = p.ends[1].input
        for (let m = q.shift(); m !== undefined; m = q.shift()) {
          t.tcb.writeAll(m.buf, m.off, m.end - m.off)
          m.free()
        }
      }
    }
    const toServer = s.takeQueued(true)
    for (let i = 0; i < toServer.length; i++) B.tcb.writeAll(toServer[i]!)
    const toClient = s.takeQueued(false)
    for (let i = 0; i < toClient.length; i++) A.tcb.writeAll(toClient[i]!)
    this.moveUnread(A, B)
    this.moveUnread(B, A)
  }

  /** Bytes `from` received that the proxy did not read yet go to `to`'s send buffer. */
  private moveUnread(from: TcpStage, to: TcpStage): void {
    const n = from.tcb.readableLength
    if (n === 0) return
    const buf = new Uint8Array(n)
    from.tcb.read(buf)
    to.tcb.writeAll(buf)
  }

  private side(c: TcpConnection, tcb: TcbSnapshot): SpliceSide {
    return { addrs: { localIp: c.localIp, remoteIp: c.remoteIp, localPort: tcb.localPort, remotePort: tcb.remotePort }, tcb }
  }

  private fail(w: Wiring, why: string): void {
    this.fw.stats.spliceFailures++
    w.session.setState('control', `splice failed: ${why}`)
  }

  /** Steps 4 and 5: both TCBs drained. */
  private finalize(w: Wiring): void {
    const pre = w.fwd
    const legs = this.legs.get(w)
    if (w.done || !(pre instanceof PreliminaryFwdStage) || pre.ended !== null || legs === undefined) return
    if (pre.holding) {
      // Data still waits for a receiver's window; the final FWD holds nothing.
      pre.onReleased = () => whenIdle([w.pathA], () => this.finalize(w))
      return
    }
    const path = w.pathA
    path.gate()
    pre.settleTimestamps()
    if (legs.mode === 'ipfwd-shared' && this.moveToShared(w, pre, legs)) return
    const base = {
      ab: pre.ab, ba: pre.ba, tap: pre.tap, scheduler: this.fw.host.scheduler, trustChecksums: pre.trustChecksums,
      ...(this.o.idleMs > 0 ? { idleMs: this.o.idleMs } : {}), onEnd: (why: FwdEnd) => this.ended(w, why),
    }
    const fin: FwdStage = legs.mode === 'fwd'
      ? new FwdStage(base)
      : new IpFwdStage({ ...base, abNextHop: this.nextHop(w.b!.remoteIp), baNextHop: this.nextHop(w.a.remoteIp) })
    // Before the replace: a detached FWD frees what it holds.
    if (pre.holdingNewData) fin.adoptHeld(pre)
    if (legs.mode === 'fwd') path.replace(pre, pre, [fin])
    else path.replace(path.stages[pre.index - 1]!, path.stages[pre.index + 1]!, [fin])
    pre.onEnd = null
    // Drained: the old TCBs own no bytes; their rings (up to 2 x 256 KiB each) go now.
    pre.a.tcp.tcb.releaseBuffers()
    pre.b.tcp.tcb.releaseBuffers()
    w.fwd = fin
    path.ungate()
    const st = this.fw.stats
    st.splicing--
    st.spliced++
    st.splices++
    st.spliceMsTotal += this.now - legs.started
    w.session.setState('spliced', 'spliced')
    // Both FINs may have been acknowledged while the TCBs drained.
    if (fin.finsAcked()) fin.end('fin')
    if (legs.unspliceAt !== null && !w.done && w.session.state === 'spliced') {
      const left = seqDiff(legs.unspliceAt, fin.ba.highSeq)
      if (left <= 0) w.session.unsplice()
      else fin.notifyAt(Dir.Backward, left, () => w.session.state === 'spliced' && w.session.unsplice())
    }
  }

  /**
   * Step 4 for `ipfwd-shared`: the drained splice's two directions become a row of the
   * shared path between the connections' interfaces; frames queued at the old path's ends
   * go to the shared path's ends facing the same devices; the session's path, TCBs and
   * flow entries are released (the shared path's claim selects it from now on). Returns
   * false (per-connection IP/FWD is used instead) if an end of the path is not an interface.
   */
  private moveToShared(w: Wiring, pre: PreliminaryFwdStage, legs: SplicedLegs): boolean {
    const fw = this.fw
    const path = w.pathA
    const ifaceOf = (e: 0 | 1): Interface | undefined => fw.host.interfaces.find(i => i.device === path.ends[e].target)
    const x = ifaceOf(0)
    const y = ifaceOf(1)
    if (x === undefined || y === undefined) {
      legs.mode = 'ipfwd'
      return false
    }
    const sp = fw.sharedPath(x, y)
    // What the preliminary FWD sent goes out first; queued input moves with its device.
    path.flush()
    const s = w.session
    // End 0 of the old path faced A's device: reversed when A's interface is the shared path's end 1.
    const row = sp.stage.add(pre.ab, pre.ba, this.nextHop(w.b!.remoteIp), this.nextHop(w.a.remoteIp), s.id, sp.x !== x)
    for (const [e, iface] of [[0, x], [1, y]] as const) {
      const q = path.ends[e].input
      const to = sp.endFacing(iface)
      for (let m = q.shift(); m !== undefined; m = q.shift()) to.enqueue(m)
    }
    pre.onEnd = null
    pre.a.tcp.tcb.releaseBuffers()
    pre.b.tcp.tcb.releaseBuffers()
    w.fwd = null
    this.legs.delete(w)
    const keep: SharedKeep | null = fw.sharedUnsplice
      ? {
          session: w.session, layout: w.layout, proxyA: w.proxyA, proxyB: w.proxyB, ifaceA: w.ifaceA, ifaceB: w.ifaceB,
          a: { localIp: w.a.localIp, remoteIp: w.a.remoteIp }, b: { localIp: w.b!.localIp, remoteIp: w.b!.remoteIp },
        }
      : null
    if (keep !== null) this.kept.set(keep, legs)
    // Flow entries, TCBs and the path go (the path closes between messages: it is idle).
    fw.release(w)
    const st = fw.stats
    st.splicing--
    st.spliced++
    st.splices++
    st.spliceMsTotal += this.now - legs.started
    fw.movedToShared(s, sp, row, keep)
    return true
  }

  /**
   * Unsplice from a shared row (`sharedUnsplice`): the row leaves the table as a
   * per-connection IP/FWD stage on a path of its own, `[ETH(A) IPFWD ETH(B)]`, exactly the
   * path an `ipfwd` splice ends with, and the connection's flow entries point at it again;
   * the session has a wiring again (its flow entries hold stand-in TCP stages built from the
   * splice's snapshots, timers off, until the unsplice rebuilds the real ones), and
   * {@link SpliceEngine.unsplice} runs as usual. Returns null (the unsplice failed, the row
   * stays) when a FIN was forwarded.
   */
  materialize(keep: SharedKeep, sp: SharedIpFwdPath, row: number): Wiring | null {
    const fw = this.fw
    const legs = this.kept.get(keep)
    const st = sp.stage.rowState(row)
    const refuse = (why: string): null => {
      fw.stats.unspliceFailures++
      keep.session.setState('spliced', `unsplice failed: ${why}`)
      return null
    }
    if (legs === undefined || st === null) return refuse('the session is not on the shared path')
    if (st.ab.finSeen || st.ba.finSeen) return refuse('a FIN was forwarded: the connection is closing')
    const got = sp.stage.take(row)!
    this.kept.delete(keep)
    const [ifA, ifB] = got.reversed ? [sp.y, sp.x] : [sp.x, sp.y]
    const host = fw.host
    legs.mode = 'ipfwd'
    let w: Wiring // assigned below; the stage's end callback runs only later
    const fin = new IpFwdStage({
      ab: got.ab, ba: got.ba, tap: null, scheduler: host.scheduler, trustChecksums: fw.tcp.trustChecksums,
      ...(this.o.idleMs > 0 ? { idleMs: this.o.idleMs } : {}), onEnd: (why: FwdEnd) => this.ended(w, why),
      abNextHop: this.nextHop(keep.b.remoteIp), baNextHop: this.nextHop(keep.a.remoteIp),
    })
    const path = new Path([new EthStage({ mac: ifA.mac, arp: ifA.arp, up: Dir.Forward }), fin, new EthStage({ mac: ifB.mac, arp: ifB.arp, up: Dir.Backward })],
      { name: `${host.name}/proxy:${legs.a.localPort}>${legs.b.remotePort}` })
    host.attach(path, ifA, 0)
    host.attach(path, ifB, 1)
    // Stand-ins for the flow entries (a flow names its TCP stage): inert, buffers freed.
    const now = Math.floor(this.now)
    const standIn = (c: { localIp: number; remoteIp: number }, snap: TcbSnapshot, inD: FwdDirection, outD: FwdDirection): TcpStage => {
      const t = this.tcpFrom(c, snap, inD, outD, -1, now, Dir.Forward)
      t.tcb.releaseBuffers()
      return t
    }
    const a: TcpConnection = { path, end: path.ends[0], stage: standIn(keep.a, legs.a, got.ab, got.ba), localIp: keep.a.localIp, remoteIp: keep.a.remoteIp, listener: null }
    const b: TcpConnection = { path, end: path.ends[1], stage: standIn(keep.b, legs.b, got.ba, got.ab), localIp: keep.b.localIp, remoteIp: keep.b.remoteIp, listener: null }
    w = {
      session: keep.session, layout: keep.layout, a, b, pathA: path, pathB: null, proxyA: keep.proxyA, proxyB: keep.proxyB,
      ifaceA: keep.ifaceA, ifaceB: keep.ifaceB, bConnected: true, closedA: false, closedB: false, fwd: fin, mode: 'ipfwd', done: false, bind: null,
    }
    fw.tcp.setFlow(a.localIp, legs.a.localPort, a.remoteIp, legs.a.remotePort, a)
    fw.tcp.setFlow(b.localIp, legs.b.localPort, b.remoteIp, legs.b.remotePort, b)
    fw.sessions.set(keep.session, w)
    this.legs.set(w, legs)
    return w
  }

  private nextHop(ip: number): number {
    const r = this.fw.host.route(ip)
    return r !== undefined && r.gateway !== 0 ? r.gateway : ip
  }

  /** The FWD stage saw the end: both FINs acked (linger for late retransmissions), a RST, or idle. */
  private ended(w: Wiring, why: FwdEnd): void {
    const f = w.fwd
    if (this.lingering.has(w) && why !== 'fin') {
      // A RST (or the idle timer) after both FINs were acknowledged: it was passed on; the
      // connection had ended by FIN.
      this.teardown(w, 'fin')
      return
    }
    if (why === 'fin' && this.o.lingerMs > 0 && f !== null) {
      // Keep forwarding while lingering: the ACK of a FIN may have been lost, or carried
      // by a segment its receiver refused (RFC 9293 §3.10.7.4 ignores the ACK field of an
      // unacceptable segment); the FIN's sender retransmits, and only the other peer can
      // acknowledge it again. A RST still ends the splice at once.
      f.ended = null
      if (this.lingering.has(w)) return
      this.lingering.add(w)
      const t = this.fw.host.scheduler.timer(() => this.teardown(w, why))
      t.set(this.o.lingerMs)
    } else this.teardown(w, why)
  }

  /** Ends a splicing or spliced session. */
  teardown(w: Wiring, why: string): void {
    if (w.done) return
    const f = w.fwd
    if (f !== null) {
      if (f instanceof PreliminaryFwdStage) this.fw.stats.splicing--
      else this.fw.stats.spliced--
      f.onEnd = null
      f.end(why === 'fin' || why === 'idle' ? why : 'rst')
    }
    this.fw.finish(w, why)
  }

  // ------------------------------------------------------------------ unsplice

  /**
   * Starts an unsplice (the session is in state `unsplicing`). Why wait for the ACKs and
   * hold new data, rather than build the TCBs at once: a TCB can only take over a byte it
   * can retransmit. Bytes FWD forwarded but the receiver has not acknowledged are in no
   * buffer of ours; only their sender can resend them, so the rebuilt receiving TCB would
   * have to start below them and the rebuilt sending TCB would see ACKs for bytes it never
   * sent (and the proxy would read bytes the other peer already has). Waiting costs about
   * one RTT; holding (not dropping) what arrives meanwhile costs no retransmission.
   */
  unsplice(w: Wiring): void {
    const f = w.fwd
    const legs = this.legs.get(w)
    if (f === null || f instanceof PreliminaryFwdStage || legs === undefined) return this.unspliceFailed(w, 'the session is not spliced')
    if (f.ab.finSeen || f.ba.finSeen) return this.unspliceFailed(w, 'a FIN was forwarded: the connection is closing')
    const started = this.now
    const timer = this.fw.host.scheduler.timer(() => {
      if (w.done || w.fwd !== f || !f.quiescing) return
      const why = this.unackedWhy(f)
      // The held segments are forwarded as usual: the splice goes on, nothing is lost.
      w.pathA.betweenMessages(() => f.quiesceThen(null))
      this.unspliceFailed(w, `${why} within ${this.o.unspliceTimeoutMs} ms (unspliceTimeoutMs)`)
    })
    timer.set(this.o.unspliceTimeoutMs)
    f.quiesceThen(() => {
      timer.cancel()
      whenIdle([w.pathA], () => this.rebuild(w, f, legs, started))
    })
  }

  /** What an unsplice still waits for, for its timeout's message. */
  private unackedWhy(f: FwdStage): string {
    const toServer = seqDiff(seqAdd(f.ab.highSeq, f.ab.seqOffset), f.ba.lastAck)
    const toClient = seqDiff(seqAdd(f.ba.highSeq, f.ba.seqOffset), f.ab.lastAck)
    const parts: string[] = []
    if (toServer > 0) parts.push(`the server did not acknowledge the last ${toServer} bytes forwarded to it`)
    if (toClient > 0) parts.push(`the client did not acknowledge the last ${toClient} bytes forwarded to it`)
    return parts.length > 0 ? parts.join(' and ') : 'the peers did not acknowledge everything forwarded'
  }

  private unspliceFailed(w: Wiring, why: string): void {
    this.fw.stats.unspliceFailures++
    w.session.setState('spliced', `unsplice failed: ${why}`)
  }

  /** Two TCBs from FWD state, the session's layout back, control mode, then the held segments. */
  private rebuild(w: Wiring, f: FwdStage, legs: SplicedLegs, started: number): void {
    if (w.done || w.fwd !== f || f.ended !== null) return
    const fw = this.fw
    const host = fw.host
    const path = w.pathA
    path.gate()
    const now = Math.floor(this.now)
    // Taken before the replace: a detached FWD frees what it still holds.
    const heldA = f.takeHeld(Dir.Forward)
    const heldB = f.takeHeld(Dir.Backward)
    const twoPath = w.layout === '2-path'
    const A = this.tcpFrom(w.a, legs.a, f.ab, f.ba, f.heldTsvalMin(Dir.Forward), now, Dir.Forward)
    const b = w.b!
    const B = this.tcpFrom(b, legs.b, f.ba, f.ab, f.heldTsvalMin(Dir.Backward), now, twoPath ? Dir.Forward : Dir.Backward)
    f.quiesceThen(null)
    const proxyA = w.proxyA
    const proxyB = w.proxyB!
    const ipfwd = legs.mode === 'ipfwd'
    const ipA = ipfwd ? [host.netStages(w.a.remoteIp, IPPROTO_TCP, { local: w.a.localIp }).ip] : []
    let entB: TcpConnection
    if (!twoPath) {
      const ipB = ipfwd ? [host.netStages(b.remoteIp, IPPROTO_TCP, { up: Dir.Backward }).ip] : []
      path.replace(f, f, [...ipA, A, proxyA, B, ...ipB])
      entB = { path, end: path.ends[1], stage: B, localIp: b.localIp, remoteIp: b.remoteIp, listener: null }
    } else {
      const last = path.stages[path.stages.length - 1]!
      path.replace(f, last, [...ipA, A, proxyA])
      const ns = host.netStages(b.remoteIp, IPPROTO_TCP)
      const pb = new Path([...ns.stages, B, proxyB], { name: `${host.name}/proxy:${legs.b.localPort}>${legs.b.remotePort}` })
      host.attach(pb, ns.iface)
      // B's frames queued at path A's end 1 (it faced B's device) belong to path B now;
      // left there they would run into PROXY a as if they were relayed bytes.
      // And what FWD sent towards B's device must still go there, before end 1 is re-targeted.
      path.flush()
      const q = path.ends[1].input
      for (let m = q.shift(); m !== undefined; m = q.shift()) pb.ends[0].enqueue(m)
      path.connect(1, pb.ends[1])
      pb.connect(1, path.ends[1])
      w.pathB = pb
      entB = { path: pb, end: pb.ends[0], stage: B, localIp: b.localIp, remoteIp: b.remoteIp, listener: null }
    }
    const entA: TcpConnection = { path, end: path.ends[0], stage: A, localIp: w.a.localIp, remoteIp: w.a.remoteIp, listener: null }
    fw.tcp.setFlow(entA.localIp, legs.a.localPort, entA.remoteIp, legs.a.remotePort, entA)
    fw.tcp.setFlow(entB.localIp, legs.b.localPort, entB.remoteIp, legs.b.remotePort, entB)
    f.onEnd = null
    w.fwd = null
    this.legs.delete(w)
    fw.setLegs(w, entA, entB)
    path.ungate()
    fw.stats.spliced--
    fw.stats.unsplices++
    fw.stats.unspliceMsTotal += this.now - started
    this.feeding.set(w, null)
    w.session.setState('control', 'unspliced')
    // What arrived beyond the unsplice points, now for the new TCBs (in arrival order).
    for (const m of heldA) {
      if (w.done) m.free()
      else A.receive(m)
    }
    for (const m of heldB) {
      if (w.done) m.free()
      else B.receive(m)
    }
    const next = this.feeding.get(w)
    this.feeding.delete(w)
    if (next != null && !w.done) next()
  }

  /**
   * A TCB for one connection from FWD state: `inD` carries its peer's segments, `outD`
   * the segments forwarded to its peer. Nothing is in flight (the peers acked it all).
   * `heldTs` is the smallest TSval among the segments held for it (-1: none).
   */
  private tcpFrom(c: Pick<TcpConnection, 'localIp' | 'remoteIp'>, snap: TcbSnapshot, inD: FwdDirection, outD: FwdDirection, heldTs: number, now: number, up: Dir): TcpStage {
    // TSvals continue above the last one the peer saw (RFC 7323 §5 PAWS): the other peer's
    // TSvals as mapped by FWD, and the old TCB's own, which it kept sending while it drained
    // (with timestamps NOP-ed they are all the peer saw): its clock now bounds them.
    let lastOut = (now + snap.tsOffset) >>> 0
    if (outD.tsMode === TsMode.Map && seqGt(seqAdd(outD.tsLastIn, outD.tsvalOffset), lastOut)) lastOut = seqAdd(outD.tsLastIn, outD.tsvalOffset)
    // TS.Recent: the peer's last TSval, but no newer than the held segments' (the trimmed
    // copies FWD forwarded carried theirs), or PAWS would drop them.
    let tsRecent = inD.tsMode === TsMode.Map ? inD.tsLastIn : snap.tsRecent
    if (heldTs >= 0 && seqLt(heldTs, tsRecent)) tsRecent = heldTs
    const params: EstablishedParams = {
      localPort: snap.localPort,
      remotePort: snap.remotePort,
      sndNxt: seqAdd(outD.highSeq, outD.seqOffset),
      rcvNxt: inD.highSeq,
      sndWnd: inD.window,
      rcvWnd: outD.window,
      peerMss: snap.peerMss,
      sndWscale: snap.sndWscale,
      rcvWscale: snap.rcvWscale,
      sackOk: snap.sackOk,
      tsOk: snap.tsOk,
      tsRecent,
      tsOffset: (lastOut + 1 - now) >>> 0,
      tsLastSent: lastOut >>> 0,
      // The old TCB's estimate: without one, a loss right after the unsplice waits 1 s.
      srtt: snap.srtt,
      rttvar: snap.rttvar,
    }
    return new TcpStage({
      time: this.fw.host.scheduler, localIp: c.localIp, remoteIp: c.remoteIp, localPort: snap.localPort, remotePort: snap.remotePort,
      iss: 0, config: this.fw.tcbConfig, up, established: params, trustChecksums: this.fw.tcp.trustChecksums,
    })
  }
}
