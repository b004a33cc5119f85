/**
 * The resplice (MSOCKS §III-A Fig. 6, §III-B.3-B.5): a RECONNECT moves a spliced server
 * connection from the old client connection A–C onto a new one E–F. The server side is
 * FWD state and stays so; only the client half of each FWD direction is replaced.
 *
 * ```
 *  old session:  [ETH IP FWD(A<->B) IP ETH]           flows A–C, D–B
 *  new session:  [ETH IP TCP(F) PROXY]                 SOCKS5 greeting/auth, RECONNECT
 *   1 the old path is gated (nothing more reaches A), the basepoints are chosen from its
 *     FWD state (resplicePoints: splice_irs = max(snd_una_C, data_read), data_salvage,
 *     data_write), the OK reply is queued on F
 *   2 between messages: [TCP(F) PROXY] becomes [REFWD(E<->B) IP ETH]; flow D–B points at
 *     the new path (with the server segments the old path held); flow A–C is forgotten
 *     (A's next segment gets a RST from the listener) and the old session ends 'moved'
 *   3 F's TCB drains (the OK reply and older replies acknowledged) and E's rewrite has
 *     passed everything A ever forwarded to the server (until then REFWD lowers server
 *     ACKs to what E sent: the server may hold more of the stream than E has re-sent, and
 *     an ACK of unsent data makes E drop the segment), then the final FWD
 * ```
 * Server→client: octets below splice_irs are chopped (already read, or salvaged from the
 * old socket); splice_irs maps to the octet after the OK reply. Client→server: F's next
 * receive octet maps to snd_una_D, where the client's rewrite of the last data_write
 * octets starts (the hole of Fig. 10; octets the server already has are duplicates it
 * discards). Nothing on the server connection changes: no TCB is rebuilt.
 *
 * A session still in REFWD (its last move's TCB draining) moves at once; one still splicing
 * (or asked to unsplice) is waited for; one in control
 * mode (a splice failed, or it was unspliced) is asked to splice first, then moved. If
 * that does not finish within `waitMs` (the old client is gone and never drains), the
 * RECONNECT is refused with X'82' and may be retried.
 * @module
 */
import { ConfigError } from '../../core/errors.js'
import { seqAdd, seqMax } from '../../core/seq.js'
import { Dir } from '../../core/stage.js'
import type { Path } from '../../core/path.js'
import { TsMode, type FwdDirectionConfig, type FwdDirection } from '../../stages/fwd/rewrite.js'
import { RespliceFwdStage } from '../../stages/fwd/resplice.js'
import { FwdStage, type FwdEnd } from '../../stages/fwd/stage.js'
import { PreliminaryFwdStage } from '../../stages/fwd/preliminary.js'
import { MsocksRep, resplicePoints, type MsocksMover, type MsocksReconnect, type MsocksReconnectReply, type MsocksService } from '../../stages/proxy/handlers/msocks.js'
import { SHARED_NO_UNSPLICE, type ProxySession, type ProxySessionApi } from '../../stages/proxy/session.js'
import type { TcpConnection } from '../../stages/tcp/module.js'
import type { ProxyForwarder, Wiring } from './forwarder.js'

const IPPROTO_TCP = 6
/** How often a RECONNECT waiting for its old session to be spliced looks again (ms). */
const WAIT_POLL_MS = 5
/** Margin added to a TSval nobody saw (the server's TS.Recent may be anywhere above what we recorded). */
const TS_MARGIN = 1 << 24

/** Options of a {@link Resplicer}. */
export interface ResplicerOptions {
  /** Wait this long for an old session to be spliced before refusing the RECONNECT (X'82') [3000]. */
  waitMs?: number
  /** Keep a respliced connection's FWD state this long after both FINs were acked [2000]. */
  lingerMs?: number
  /** End a respliced connection after this long without a segment [0: never]. */
  idleMs?: number
}

/** Counters of a {@link Resplicer}. */
export interface ResplicerStats {
  /** Sessions moved. */
  moved: number
  /** Moves that finished draining the new connection's TCB (final FWD in place). */
  finalized: number
  /** Moves of a session still in REFWD (moved again before its last move finished draining). */
  chained: number
  /** Octets the clients were told to salvage, in total. */
  salvaged: number
  /** Octets the clients were told to rewrite, in total. */
  rewritten: number
  /** Moves in the case of Fig. 8 (acked octets the client had not read: salvaged). */
  salvageMoves: number
  /** Moves in the case of Fig. 9 (octets read before their ACK reached the proxy). */
  readAheadMoves: number
  /** Sum of the time from RECONNECT request to the reply (ms): waiting for a splice shows here. */
  replyMsTotal: number
  /**
   * Client ACKs the resplice FWD carried where the server accepts them while the client
   * rewrote octets the server may already hold (RespliceFwdStage.rewriteAcks, summed at
   * each final FWD).
   */
  rewriteAcks: number
}

/** The stream bases of a session, fixed at its MCONNECT (they survive moves). */
interface Bases {
  /** Server seq of octet 0 of data_read. */
  readBase: number
  /** Towards-server seq of octet 0 of data_written. */
  writeBase: number
  /** The server connection negotiated timestamps. */
  serverTs: boolean
  /** ... and SACK. */
  serverSack: boolean
  /** The proxy's last TSval to the server when it opened (a floor). */
  serverTsSeen: number
  /** The server's TSval when it opened (a floor). */
  serverTsRecent: number
}

/** Moves spliced sessions of one forwarder between client connections (the {@link MsocksMover}). */
export class Resplicer implements MsocksMover {
  /** Counters. */
  readonly stats: ResplicerStats = { moved: 0, finalized: 0, chained: 0, salvaged: 0, rewritten: 0, salvageMoves: 0, readAheadMoves: 0, replyMsTotal: 0, rewriteAcks: 0 }
  private readonly fw: ProxyForwarder
  private readonly bases = new Map<ProxySessionApi, Bases>()
  private readonly waitMs: number
  private readonly lingerMs: number
  private readonly idleMs: number

  /** Attaches itself to `service`. Throws a ConfigError for a forwarder whose sessions cannot move (mode 'ipfwd-shared'). */
  constructor(fw: ProxyForwarder, service: MsocksService, opts: ResplicerOptions = {}) {
    if (fw.mode === 'ipfwd-shared') {
      throw new ConfigError("MSOCKS: the forwarder's mode 'ipfwd-shared' keeps only a table row per spliced connection, and RECONNECT moves a spliced session's server connection (it needs the per-connection FWD state); use mode 'fwd' or 'ipfwd'")
    }
    this.fw = fw
    this.waitMs = opts.waitMs ?? 3000
    this.lingerMs = opts.lingerMs ?? 2000
    this.idleMs = opts.idleMs ?? 0
    service.attach(this)
  }

  private get now(): number {
    return this.fw.host.scheduler.now()
  }

  /** MsocksMover: the server connection opened; nothing has been read from or written to it. */
  opened(s: ProxySessionApi): void {
    const w = this.fw.wiring(s as ProxySession)
    const t = w.b!.stage.tcb.snapshot()
    this.bases.set(s, {
      readBase: seqAdd(t.irs, 1), writeBase: seqAdd(t.iss, 1), serverTs: t.tsOk, serverSack: t.sackOk,
      serverTsSeen: t.tsLastSent, serverTsRecent: t.tsRecent,
    })
  }

  /** MsocksMover: forgets a closed session. */
  forget(s: ProxySessionApi): void {
    this.bases.delete(s)
  }

  /** MsocksMover: moves `from`'s server connection onto `to`'s client connection. */
  move(from: ProxySessionApi, to: ProxySessionApi, req: MsocksReconnect, reply: (r: MsocksReconnectReply, reason: string) => void): void {
    const started = this.now
    const fail = (rep: number, reason: string): void => reply({ rep, dataSalvage: 0, dataWrite: 0 }, reason)
    const wTo = this.fw.sessions.get(to as ProxySession)
    if (wTo === undefined || wTo.b !== null || to.state !== 'control') return fail(MsocksRep.GeneralFailure, 'the new connection already has a server connection')
    let asked = false
    const attempt = (): void => {
      const wFrom = this.fw.sessions.get(from as ProxySession)
      const bases = this.bases.get(from)
      if (wTo.done) return
      if (wFrom === undefined && (from as ProxySession).shared) return fail(MsocksRep.NotMovable, SHARED_NO_UNSPLICE(from.id))
      if (wFrom === undefined || wFrom.done || bases === undefined) return fail(MsocksRep.UnknownId, 'the session ended')
      const f = wFrom.fwd
      // A session still in REFWD can move again at once (a hard hand-off right after a
      // move): its draining TCB holds only the proxy's replies, no stream octets.
      const ready = f !== null && f.ended === null && !(f instanceof PreliminaryFwdStage) && (from.state === 'spliced' || f instanceof RespliceFwdStage)
      if (!ready) {
        if (this.now - started >= this.waitMs) return fail(MsocksRep.NotMovable, `the session was not spliced within ${this.waitMs} ms (state ${from.state})`)
        // Control mode (a failed splice, or unspliced): splice it first, then move it.
        if (from.state === 'control' && !asked && !(from as ProxySession).splicePending) {
          asked = true
          try {
            from.splice()
          } catch (err) {
            return fail(MsocksRep.NotMovable, `cannot splice the session: ${(err as Error).message}`)
          }
        }
        const t = this.fw.host.scheduler.timer(attempt)
        t.set(WAIT_POLL_MS)
        return
      }
      if (f.ab.finSeen || f.ba.finSeen) return fail(MsocksRep.NotMovable, 'the session is closing (a FIN was forwarded)')
      // Step 1: nothing more goes to the old client; the FWD state is now fixed.
      wFrom.pathA.gate()
      const pts = resplicePoints({
        readBase: bases.readBase, writeBase: bases.writeBase,
        sndUnaC: (f.ab.lastAck - f.ab.ackOffset) >>> 0, serverHigh: f.ba.highSeq, sndUnaD: f.ba.lastAck,
      }, req.dataRead, req.dataWritten)
      if (!pts.ok) {
        wFrom.pathA.ungate()
        return fail(MsocksRep.BadCounters, pts.reason)
      }
      this.stats.replyMsTotal += this.now - started
      if (pts.figure === 'salvage') this.stats.salvageMoves++
      else if (pts.figure === 'read-ahead') this.stats.readAheadMoves++
      reply({ rep: MsocksRep.Succeeded, dataSalvage: pts.dataSalvage, dataWrite: pts.dataWrite }, 'moved')
      // The replies are a handshake: Nagle would hold the last one for the client's
      // (delayed) ACK of the earlier ones, adding ~40 ms to every move.
      wTo.a.stage.tcb.setNoDelay(true)
      wTo.pathA.betweenMessages(() => this.swap(wFrom, wTo, f, bases, pts.spliceIrs, pts.rewriteFrom, pts.dataSalvage, pts.dataWrite))
    }
    attempt()
  }

  /** Step 2: the new path forwards; the old session ends. */
  private swap(wFrom: Wiring, wTo: Wiring, f: FwdStage, bases: Bases, spliceIrs: number, rewriteFrom: number, salvage: number, write: number): void {
    const fw = this.fw
    if (wTo.done || wFrom.done || wFrom.fwd !== f || f.ended !== null) {
      // Something ended in between: the move cannot happen; the client retries or gives up.
      if (!wFrom.done) wFrom.pathA.ungate()
      fw.reset(wTo.session)
      return
    }
    const F = wTo.a.stage
    const fs = F.tcb.snapshot()
    const s = wTo.session
    if (fs.rcvBuffered > 0 || s.toClientQ.bytes > 0 || fs.state !== 'ESTABLISHED') {
      wFrom.pathA.ungate()
      fw.reset(s)
      return
    }
    const host = fw.host
    const oldB = wFrom.b!
    const clientTs = fs.tsOk
    const tsMode = clientTs && bases.serverTs ? TsMode.Map : clientTs || bases.serverTs ? TsMode.Nop : TsMode.None
    const sack = fs.sackOk && bases.serverSack
    // What the server last saw and sent (timestamps), for PAWS on both sides.
    const serverSaw = f.ab.tsMode === TsMode.Map ? seqAdd(f.ab.tsLastIn, f.ab.tsvalOffset) : seqAdd(bases.serverTsSeen, TS_MARGIN)
    const serverLast = f.ba.tsMode === TsMode.Map ? f.ba.tsLastIn : bases.serverTsRecent
    const abOffset = (rewriteFrom - fs.rcvNxt) >>> 0
    const baOffset = (fs.sndEnd - spliceIrs) >>> 0
    const abTs = tsMode === TsMode.Map ? (serverSaw - fs.tsRecent) >>> 0 : 0
    const baTs = tsMode === TsMode.Map ? (fs.tsLastSent - serverLast) >>> 0 : 0
    const ab: FwdDirectionConfig = {
      outSrcIp: f.ab.outSrcIp, outDstIp: f.ab.outDstIp, outSrcPort: f.ab.outSrcPort, outDstPort: f.ab.outDstPort,
      seqOffset: abOffset, ackOffset: baOffset, inShift: Math.max(0, fs.sndWscale), outShift: f.ab.outShift,
      tsMode, tsvalOffset: abTs, tsecrOffset: baTs, sack, base: fs.rcvNxt, highSeq: fs.rcvNxt, window: fs.sndWnd,
      lastAck: fs.sndUna, tsLastIn: fs.tsRecent,
    }
    const ba: FwdDirectionConfig = {
      outSrcIp: wTo.a.localIp, outDstIp: wTo.a.remoteIp, outSrcPort: fs.localPort, outDstPort: fs.remotePort,
      seqOffset: baOffset, ackOffset: abOffset, inShift: f.ba.inShift, outShift: Math.max(0, fs.rcvWscale),
      tsMode, tsvalOffset: baTs, tsecrOffset: abTs, sack, base: spliceIrs, highSeq: f.ba.highSeq, window: f.ba.window,
      lastAck: f.ba.lastAck, tsLastIn: f.ba.tsLastIn,
    }
    const pre = new RespliceFwdStage({
      ab, ba, trustChecksums: fw.tcp.trustChecksums, onEnd: why => this.teardown(wTo, why),
      client: { tcp: F, drainEnd: fs.sndEnd, tsLastOut: fs.tsLastSent },
      clampUntil: f instanceof RespliceFwdStage ? seqMax(f.clampUntil, seqAdd(f.ab.highSeq, f.ab.seqOffset)) : seqAdd(f.ab.highSeq, f.ab.seqOffset),
    })
    const path = wTo.pathA
    path.gate()
    const ns = host.netStages(oldB.remoteIp, IPPROTO_TCP, { up: Dir.Backward })
    path.replace(F, wTo.proxyA, [pre, ...ns.stages])
    host.attach(path, ns.iface, 1)
    // The server's segments the old path held go on through the new one.
    const q = wFrom.pathA.ends[1].input
    for (let m = q.shift(); m !== undefined; m = q.shift()) path.ends[1].enqueue(m)
    // The old session ends: its flows go (A's next segment meets the listener: RST).
    f.onEnd = null
    if (f instanceof RespliceFwdStage) {
      f.onReady = null
      this.stats.chained++
      this.stats.rewriteAcks += f.rewriteAcks
    }
    wFrom.fwd = null
    fw.stats.spliced--
    fw.finish(wFrom, 'moved')
    const tb = oldB.stage.tcb
    const entB: TcpConnection = { path, end: path.ends[1], stage: oldB.stage, localIp: oldB.localIp, remoteIp: oldB.remoteIp, listener: null }
    fw.tcp.setFlow(oldB.localIp, tb.localPort, oldB.remoteIp, tb.remotePort, entB)
    wTo.b = entB
    wTo.ifaceB = wFrom.ifaceB
    wTo.bConnected = true
    wTo.fwd = pre
    wTo.mode = 'fwd'
    s.server = wFrom.session.server
    s.state = 'splicing'
    fw.stats.spliced++
    F.app = { onData() {} }
    pre.onReady = () => path.betweenMessages(() => this.finalize(wTo, pre))
    F.tcb.events = { error: why => this.teardown(wTo, why) }
    F.tcb.ownerEvents = {}
    this.bases.set(s, bases)
    this.bases.delete(wFrom.session)
    this.stats.moved++
    this.stats.salvaged += salvage
    this.stats.rewritten += write
    path.ungate()
    // Paced: the salvage can be megabytes (what the old connection forwarded and the
    // client never acknowledged); sent at once, it overflows the queue in front of the
    // client (a kernel run stalled after an unpaced 2.6 MB salvage; paced, as before,
    // the move test passed 25 of 25 runs under load).
    F.tcb.startDrain({ paced: true })
  }

  /** Step 3: F drained: the final FWD. */
  private finalize(w: Wiring, pre: RespliceFwdStage): void {
    if (w.done || w.fwd !== pre || pre.ended !== null) return
    const path: Path = w.pathA
    path.gate()
    pre.settleTimestamps()
    const fin = new FwdStage({
      ab: pre.ab as FwdDirection, ba: pre.ba as FwdDirection, scheduler: this.fw.host.scheduler, trustChecksums: pre.trustChecksums,
      ...(this.idleMs > 0 ? { idleMs: this.idleMs } : {}), onEnd: why => this.ended(w, why),
    })
    path.replace(pre, pre, [fin])
    pre.onEnd = null
    pre.client.tcp.tcb.dispose()
    w.fwd = fin
    path.ungate()
    this.stats.finalized++
    this.stats.rewriteAcks += pre.rewriteAcks
    w.session.setState('spliced', 'spliced')
    if (fin.finsAcked()) fin.end('fin')
  }

  private ended(w: Wiring, why: FwdEnd): void {
    if (why === 'fin' && this.lingerMs > 0) {
      const t = this.fw.host.scheduler.timer(() => this.teardown(w, why))
      t.set(this.lingerMs)
    } else this.teardown(w, why)
  }

  private teardown(w: Wiring, why: string): void {
    this.fw.engine.teardown(w, why)
  }
}
