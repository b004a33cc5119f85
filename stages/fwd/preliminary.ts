/**
 * The preliminary FWD stage (Scout §III-C, splice steps 2-3): forwards a freshly spliced
 * connection's new segments while the two unlinked TCBs drain what the proxy had queued.
 * Consumes: as {@link FwdStage}: TCP segments (`msg.off` at the TCP header, `msg.l3` at
 *           the IPv4 header) from A's peer (forward) and B's peer (backward).
 * Produces: (1) a copy of every segment but a RST for the old TCB of the connection it
 *           came on, which only processes its ACK (drain mode: it never ACKs new data and
 *           accepts ACKs up to a window beyond what it sent); (2) the rewritten segment for
 *           the other connection, as FWD (held while beyond the receiver's window); (3) the
 *           old TCBs' own (re)transmissions with the latest ACK, window and TSecr, sent to
 *           their peers through the same path (`TcpStage.redirect`).
 * Drops:    FWD's reasons. ACK-only segments that acknowledge only drained data and open
 *           no window go to the old TCB and no further (counted as `absorbed`, not a drop);
 *           a repeat of a held segment is counted as `heldDuplicates`. A RST from a peer whose
 *           connection already ended by FIN both ways is dropped as 'rst-after-fin' while
 *           the other peer's old TCB still owes it data (passed on, it ends the splice).
 * State:    FWD's, plus per leg: the old TCP stage, the end of its send stream, the last
 *           TSval sent to its peer; per peer: its highest ACK and window edge, its latest
 *           TSval, the segments held for it (at most 1 MiB; transient, this stage lives
 *           only while the TCBs drain).
 * Inspect:  stats(): absorbed, held, heldDuplicates, drainedA/B, drainEndA/B.
 *
 * Rules that keep both peers consistent while two senders share one sequence space:
 * - An ACK below the end of the old TCB's send stream concerns data the TCB still owns.
 *   On a data segment it is raised to that end for the other peer (true: the proxy
 *   received everything below it) with the window shrunk by as much and SACK blocks
 *   NOP-ed, so the other peer sees neither old nor duplicate ACKs.
 * - TSvals towards each peer never go backwards (RFC 7323 §5 PAWS would drop the
 *   segment): the TCB's own TSvals are raised to the last one forwarded, and a forwarded
 *   TSval below the last sent raises the direction's offset for good.
 * - Each peer hears one receiver. The old TCB's own segments carry the latest ACK and
 *   TSecr forwarded to its peer, not the ones frozen at the splice (after a window of
 *   forwarded data the peer would refuse them as too old, RFC 5961 §5.2, and the drain
 *   would never end), and the window the other peer offers minus what the old TCB still
 *   has to deliver (DESIGN §5: the clamp), so a peer never sends beyond what the other
 *   peer can take.
 * - A peer's ACK-only segment that only concerns drained data is absorbed unless it
 *   moves its window's right edge (a window update the other peer needs); one that is
 *   forwarded while the other TCB still sends carries that TCB's SND.MAX as its sequence
 *   number, inside the receiver's window (else the receiver drops it unread, RFC 9293
 *   §3.10.7.4).
 * - A peer whose connection ended by FIN both ways (its FIN acknowledged, the FIN towards
 *   it acknowledged) answers a late segment (a window update, a duplicate) with a RST
 *   (RFC 9293 §3.10.7.1: it has no TCB any more). That RST aborts nothing: the other
 *   connection's old TCB may still be delivering that peer's last bytes, and passing the
 *   RST on would end the splice and lose them. It is dropped.
 * - Data for a peer beyond the right edge of its window (sent before the clamp reached
 *   the sender) is held and released as the window opens, instead of being dropped by the
 *   receiver and recovered only by a retransmission timeout.
 * @module
 */
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import { checksum, pseudoHeaderSum } from '../../core/checksum.js'
import { checksumVouched, type Msg } from '../../core/msg.js'
import { seqAdd, seqDiff, seqGe, seqGt, seqLt } from '../../core/seq.js'
import { Dir, type Dir as DirT } from '../../core/stage.js'
import { TcpField, TcpFlag } from '../tcp/segment.js'
import type { TcpStage } from '../tcp/stage.js'
import { TsMode, type FwdDirection } from './rewrite.js'
import { copySegment, findTimestamps, refill, stripSack } from './segment-edit.js'
import { FwdStage, type FwdConfig, type FwdEnd } from './stage.js'

/** One of the two connections being drained. */
export interface DrainingLeg {
  /** The connection's old TCP stage (unlinked from the path, its TCB in drain mode). */
  tcp: TcpStage
  /** The end of its send stream at the splice: its peer's ACKs below it are the TCB's. */
  drainEnd: number
  /** The last TSval sent to its peer. */
  tsLastOut: number
}

/**
 * What one peer has told us while its old TCB drains: its highest ACK and window right
 * edge (in our sending space towards it) and its latest TSval; plus the data held for it.
 */
class PeerView {
  /** Highest acceptable ACK from the peer. */
  ack: number
  /** Highest right edge (ACK + window) of the peer's receive window. */
  right: number
  /** The peer's latest TSval (valid when `hasTs`). */
  tsVal: number
  hasTs: boolean
  /** Rewritten segments for this peer waiting for its window to open, in sequence order. */
  readonly held: Msg[] = []
  /** Payload bytes in `held`. */
  heldBytes = 0

  /** Holds `m` (starting at `seq`), keeping the queue in sequence order (the wire may reorder). */
  hold(m: Msg, seq: number): void {
    const q = this.held
    let i = q.length
    while (i > 0 && seqLt(seq, get32(q[i - 1]!.buf, q[i - 1]!.off + TcpField.SEQ))) i--
    q.splice(i, 0, m)
  }

  /** True if a held segment starts at `seq` and covers `len` (FIN included). */
  holds(seq: number, len: number): boolean {
    for (const m of this.held) {
      const b = m.buf
      const t = m.off
      const n = m.end - t - ((b[t + TcpField.DATA_OFF]! >>> 4) << 2) + ((b[t + TcpField.FLAGS]! & TcpFlag.FIN) !== 0 ? 1 : 0)
      if (get32(b, t + TcpField.SEQ) === seq && n >= len) return true
    }
    return false
  }

  /** Frees what is held. */
  release(): void {
    this.heldBytes = 0
    const q = this.held
    if (q.length === 0) return
    const ms = q.splice(0)
    for (let i = 0; i < ms.length; i++) ms[i]!.free()
  }

  constructor(leg: DrainingLeg) {
    const t = leg.tcp.tcb
    this.ack = t.sndUna
    this.right = seqAdd(t.sndUna, t.sndWnd)
    this.tsVal = t.tsRecent
    this.hasTs = t.tsOk
  }
}

/**
 * Raises direction `d`'s TSval offset so its peer (reached through `to`) never sees TSvals
 * below the last one its old TCB sent (RFC 7323 §5 PAWS); `other` maps TSecr back alike.
 */
function settle(d: FwdDirection, other: FwdDirection, to: DrainingLeg): void {
  if (d.tsMode !== TsMode.Map) return
  const behind = seqDiff(to.tsLastOut, (d.tsLastIn + d.tsvalOffset) >>> 0)
  if (behind > 0) {
    d.tsvalOffset = (d.tsvalOffset + behind) >>> 0
    other.tsecrOffset = d.tsvalOffset
  }
}

/** Most payload bytes held for one peer (beyond that, segments go out and the receiver drops them). */
const MAX_HELD_BYTES = 1 << 20

/** Configuration of a {@link PreliminaryFwdStage}. */
export interface PreliminaryFwdConfig extends FwdConfig {
  /** Connection A (its peer's segments travel forward). */
  a: DrainingLeg
  /** Connection B (its peer's segments travel backward). */
  b: DrainingLeg
}

/** The preliminary FWD stage. */
export class PreliminaryFwdStage extends FwdStage {
  /** Connection A's leg. */
  readonly a: DrainingLeg
  /** Connection B's leg. */
  readonly b: DrainingLeg
  /** ACK-only segments that concerned drained data only (given to the old TCB alone). */
  absorbed = 0
  /** Segments held until the receiver's window opened. */
  heldSegments = 0
  /** Retransmissions of data already held, dropped (the held copy goes out). */
  heldDuplicates = 0
  /** RSTs from a peer whose connection had ended by FIN both ways, dropped ('rst-after-fin'). */
  rstsAfterFin = 0
  /** Called once nothing is held any more (set by the splice engine while it waits to finalize). */
  onReleased: (() => void) | null = null
  private readonly va: PeerView
  private readonly vb: PeerView
  /** Whether A's (B's) old TCB had received its peer's FIN at the splice (and acknowledged it). */
  private readonly finAtSplice: readonly [boolean, boolean]

  /** Creates the stage and points both old TCBs' output at it. */
  constructor(cfg: PreliminaryFwdConfig) {
    super(cfg, 'PREFWD')
    this.a = cfg.a
    this.b = cfg.b
    this.va = new PeerView(cfg.a)
    this.vb = new PeerView(cfg.b)
    this.finAtSplice = [cfg.a.tcp.tcb.peerFinished, cfg.b.tcp.tcb.peerFinished]
    cfg.a.tcp.redirect = m => this.fromTcb(this.a, m, Dir.Backward)
    cfg.b.tcp.redirect = m => this.fromTcb(this.b, m, Dir.Forward)
  }

  /** Feeds a copy to the old TCB, then forwards the segment as FWD does. */
  override deliver(msg: Msg, dir: DirT): void {
    if (this.ended !== null) return this.drop(msg, 'closed')
    if (msg.l3 < 0) return this.drop(msg, 'no-l3')
    const buf = msg.buf
    const tcp = msg.off
    if (msg.end - tcp < 20) return this.drop(msg, 'truncated')
    const fwd = dir === Dir.Forward
    const leg = fwd ? this.a : this.b
    const view = fwd ? this.va : this.vb
    const to = fwd ? this.b : this.a
    const toView = fwd ? this.vb : this.va
    const d = fwd ? this.ab : this.ba
    const srcIp = get32(buf, msg.l3 + 12)
    const dstIp = get32(buf, msg.l3 + 16)
    const v = msg.vnet
    // Verified here, before the old TCB or a checksum recompute below sees it.
    if (!this.trustChecksums && !checksumVouched(v) && checksum(buf, tcp, msg.end - tcp, pseudoHeaderSum(srcIp, dstIp, 6, msg.end - tcp)) !== 0) {
      return this.drop(msg, 'bad-checksum')
    }
    const flags = buf[tcp + TcpField.FLAGS]!
    const hlen = (buf[tcp + TcpField.DATA_OFF]! >>> 4) << 2
    const pure = msg.end - tcp - hlen <= 0 && (flags & (TcpFlag.FIN | TcpFlag.RST | TcpFlag.SYN)) === 0
    // What the peer tells us: its ACK, its window's right edge, its TSval.
    const ack = get32(buf, tcp + TcpField.ACK)
    let opened = false
    if ((flags & (TcpFlag.ACK | TcpFlag.SYN | TcpFlag.RST)) === TcpFlag.ACK && seqGe(ack, seqAdd(view.ack, -0x40000000)) && seqGe(this.sentHigh(fwd), ack)) {
      if (seqGt(ack, view.ack)) view.ack = ack
      const right = seqAdd(ack, get16(buf, tcp + TcpField.WINDOW) * (1 << d.inShift))
      if (seqGt(right, view.right)) {
        view.right = right
        opened = true
      }
    }
    const ts = findTimestamps(buf, tcp)
    if (ts >= 0) {
      const val = get32(buf, ts + 2)
      if (!view.hasTs || seqGe(val, view.tsVal)) view.tsVal = val
      view.hasTs = true
    }
    // Dropped only while the other peer's old TCB still owes it data: once that drained,
    // the RST cuts nothing off, and passing it on ends the splice as any RST does.
    if ((flags & TcpFlag.RST) !== 0 && this.endedByFin(fwd) && !(fwd ? this.b : this.a).tcp.tcb.drained) {
      this.rstsAfterFin++
      return this.drop(msg, 'rst-after-fin')
    }
    if (!leg.tcp.tcb.drained && (flags & TcpFlag.RST) === 0) {
      // Step 3: the old TCB sees every segment, for its ACK only. (Not a RST: the TCB
      // would take it and end the splice before it is passed on to the other peer.)
      leg.tcp.receive(copySegment(msg, tcp))
      if (this.ended !== null) return this.drop(msg, 'closed')
    }
    if ((flags & TcpFlag.ACK) !== 0 && seqLt(ack, leg.drainEnd)) {
      if (pure && !opened) {
        this.absorbed++
        msg.free()
        return
      }
      // The proxy has everything below drainEnd: say so, and keep the right edge.
      const short = seqDiff(leg.drainEnd, ack)
      set32(buf, tcp + TcpField.ACK, leg.drainEnd)
      const wnd = get16(buf, tcp + TcpField.WINDOW) * (1 << d.inShift)
      set16(buf, tcp + TcpField.WINDOW, Math.floor(Math.max(0, wnd - short) / (1 << d.inShift)))
      stripSack(buf, tcp)
      refill(buf, tcp, msg.end, srcIp, dstIp, msg.vnet)
    }
    // Two senders share each stream while draining: a peer's ACK may lag what was sent to
    // it by the old TCB's backlog plus the data held for it. Widen the blind-injection
    // tolerance (twice the largest window) to that span, or its ACKs would be refused and
    // the drain could never finish.
    const span = seqDiff(this.sentHigh(fwd), leg.tcp.tcb.sndUna)
    if (span > d.maxWindow) d.maxWindow = span
    const chop = this.rewrite(msg, dir, tcp, srcIp, dstIp)
    if (chop < 0) return
    msg.off += chop
    msg.l4 = msg.off
    this.keepTsMonotonic(msg, dir)
    const out = msg.off
    const seq = get32(buf, out + TcpField.SEQ)
    const toMax = to.tcp.tcb.sndMax
    if (pure && seqLt(toMax, to.drainEnd) && seqGt(seq, toMax)) {
      // The old TCB has not sent all its stream yet: the receiver's RCV.NXT is at most
      // its SND.MAX, and the mapped sequence number may lie beyond the receiver's window.
      set32(buf, out + TcpField.SEQ, toMax)
      refill(buf, out, msg.end, d.outSrcIp, d.outDstIp, msg.vnet)
    }
    if ((flags & TcpFlag.RST) !== 0 && d.finSeen && seq === seqAdd(d.finSeq, d.seqOffset) && toView.ack === seqAdd(seq, 1)) {
      // A RST at the sequence number of the FIN forwarded for its sender, which the
      // receiver acknowledged: one below its RCV.NXT, so it would be dropped silently (RFC
      // 5961 §3.2). A peer answering an old TCB's segment takes that segment's ACK as its
      // RST's seq (RFC 9293 §3.10.7.1), and a draining TCB's ACK may predate the FIN. Only
      // this one value is moved (to the exact RCV.NXT): no other RST gets easier to forge.
      set32(buf, out + TcpField.SEQ, toView.ack)
      refill(buf, out, msg.end, d.outSrcIp, d.outDstIp, msg.vnet)
    } else if ((flags & TcpFlag.RST) !== 0 && seqGe(seq, toView.right)) {
      // Beyond the receiver's window (data before it is held here): it would drop the RST
      // silently (RFC 5961 §3.2). Just inside, it draws a challenge ACK, which the torn
      // down splice answers with an exact RST from the host.
      set32(buf, out + TcpField.SEQ, seqAdd(toView.right, -1))
      refill(buf, out, msg.end, d.outSrcIp, d.outDstIp, msg.vnet)
    }
    const payload = msg.end - out - ((buf[out + TcpField.DATA_OFF]! >>> 4) << 2)
    const len = payload + ((flags & TcpFlag.FIN) !== 0 ? 1 : 0)
    if (len > 0 && seqGe(seq, toView.right) && toView.heldBytes < MAX_HELD_BYTES) {
      // Beyond the receiver's window: it would drop it unread. Wait for the window.
      // (An earlier copy lay beyond the window too, so it is held: drop a repeat.)
      if (toView.holds(seq, len)) {
        this.heldDuplicates++
        msg.free()
      } else {
        toView.hold(msg, seq)
        toView.heldBytes += payload
        this.heldSegments++
      }
    } else this.forward(msg, dir, out)
    if (opened) this.release(leg, view, fwd)
  }

  /**
   * True once the connection of leg A (`ofA`) or B ended by FIN both ways: its peer's FIN
   * was acknowledged (by the old TCB before the splice, or by the other peer) and so was
   * the FIN sent to that peer (the old TCB's own, or the other peer's forwarded).
   */
  private endedByFin(ofA: boolean): boolean {
    const from = ofA ? this.ab : this.ba
    const to = ofA ? this.ba : this.ab
    const t = (ofA ? this.a : this.b).tcp.tcb
    const peerFinAcked = this.finAtSplice[ofA ? 0 : 1]! || (from.finSeen && seqGe(to.lastAck, seqAdd(from.finSeq, 1 + from.seqOffset)))
    const finToPeerAcked = (t.finQueued && seqGt(t.sndUna, t.finSeq)) || (to.finSeen && seqGe(from.lastAck, seqAdd(to.finSeq, 1 + to.seqOffset)))
    return peerFinAcked && finToPeerAcked
  }

  /** The highest sequence number sent towards the peer of leg A (`fromA`) or B, by its old TCB or forwarded. */
  private sentHigh(fromA: boolean): number {
    const t = (fromA ? this.a : this.b).tcp.tcb.sndMax
    const d = fromA ? this.ba : this.ab
    const f = seqAdd(d.highSeq, d.seqOffset)
    return seqGt(f, t) ? f : t
  }

  /**
   * Sends the segments held for the peer of `leg` that now fit its window, with the
   * latest ACK and window for that peer. `towardsA`: which way they travel.
   */
  private release(leg: DrainingLeg, view: PeerView, towardsA: boolean): void {
    const q = view.held
    let n = 0
    while (n < q.length && seqLt(get32(q[n]!.buf, q[n]!.off + TcpField.SEQ), view.right)) n++
    if (n === 0) return
    const out = q.splice(0, n)
    const d = towardsA ? this.ba : this.ab
    for (const m of out) {
      view.heldBytes -= m.end - m.off - ((m.buf[m.off + TcpField.DATA_OFF]! >>> 4) << 2)
      if (this.ended !== null || this.path === null) {
        m.free()
        continue
      }
      this.stamp(leg, m, false)
      const ts = findTimestamps(m.buf, m.off)
      if (ts >= 0 && seqLt(get32(m.buf, ts + 2), leg.tsLastOut)) set32(m.buf, ts + 2, leg.tsLastOut)
      refill(m.buf, m.off, m.end, d.outSrcIp, d.outDstIp, m.vnet)
      this.forward(m, towardsA ? Dir.Backward : Dir.Forward, m.off)
    }
    const f = this.onReleased
    if (f !== null && !this.holding) {
      this.onReleased = null
      f()
    }
  }

  /**
   * Puts the latest ACK (never lower than the segment's own), the matching window (the
   * other peer's right edge, DESIGN §5 clamp) and, with `tsecr`, TSecr into a segment for
   * the peer of `leg`. The caller recomputes the checksum.
   */
  private stamp(leg: DrainingLeg, m: Msg, tsecr: boolean): void {
    const buf = m.buf
    const tcp = m.off
    if ((buf[tcp + TcpField.FLAGS]! & (TcpFlag.ACK | TcpFlag.RST)) !== TcpFlag.ACK) return
    const toA = leg === this.a
    // The other peer's view, mapped into this peer's sequence space.
    const other = toA ? this.vb : this.va
    const d = toA ? this.ba : this.ab
    let ack = seqAdd(other.ack, -d.ackOffset)
    const own = get32(buf, tcp + TcpField.ACK)
    const floor = seqGt(own, leg.tcp.tcb.rcvNxt) ? own : leg.tcp.tcb.rcvNxt
    if (seqLt(ack, floor)) ack = floor
    const right = seqAdd(other.right, -d.ackOffset)
    const wnd = Math.max(0, seqDiff(right, ack))
    set32(buf, tcp + TcpField.ACK, ack)
    set16(buf, tcp + TcpField.WINDOW, Math.min(0xffff, Math.floor(wnd / (1 << d.outShift))))
    if (tsecr) {
      const view = toA ? this.va : this.vb
      const ts = findTimestamps(buf, tcp)
      if (ts >= 0 && view.hasTs) set32(buf, ts + 6, view.tsVal)
    }
  }

  /**
   * Only a RST ends the splice here: FINs may look acknowledged through the raised ACKs
   * while an old TCB still owes its peer data; the final FWD decides once they drained.
   */
  protected override track(msg: Msg, _dir: DirT, tcp: number): FwdEnd | null {
    return (msg.buf[tcp + TcpField.FLAGS]! & TcpFlag.RST) !== 0 ? 'rst' : null
  }

  /** A forwarded TSval below the last one sent to that peer raises the direction's offset. */
  private keepTsMonotonic(msg: Msg, dir: DirT): void {
    const d = dir === Dir.Forward ? this.ab : this.ba
    if (d.tsMode !== TsMode.Map) return
    const to = dir === Dir.Forward ? this.b : this.a
    const buf = msg.buf
    const ts = findTimestamps(buf, msg.off)
    if (ts < 0) return
    const val = get32(buf, ts + 2)
    const behind = seqDiff(to.tsLastOut, val)
    if (behind > 0) {
      d.tsvalOffset = (d.tsvalOffset + behind) >>> 0
      // The other direction maps echoes of these TSvals back (TSecr) with the same offset.
      const other = dir === Dir.Forward ? this.ba : this.ab
      other.tsecrOffset = d.tsvalOffset
      set32(buf, ts + 2, to.tsLastOut)
      refill(buf, msg.off, msg.end, d.outSrcIp, d.outDstIp, msg.vnet)
    } else to.tsLastOut = val
  }

  /**
   * Before the final FWD takes over (it maps TSvals with fixed offsets): raises each
   * direction's offset so that the next TSval forwarded, at least the last one seen from
   * its sender, is not below what the old TCB last sent that peer.
   */
  settleTimestamps(): void {
    settle(this.ab, this.ba, this.b)
    settle(this.ba, this.ab, this.a)
  }

  /** An old TCB's own segment: latest ACK, window and TSecr; TSval kept monotonic; then sent towards its peer. */
  private fromTcb(leg: DrainingLeg, msg: Msg, toPeer: DirT): void {
    if (this.ended !== null || this.path === null) {
      msg.free()
      return
    }
    const buf = msg.buf
    this.stamp(leg, msg, true)
    const ts = findTimestamps(buf, msg.off)
    if (ts >= 0) {
      const val = get32(buf, ts + 2)
      if (seqLt(val, leg.tsLastOut)) set32(buf, ts + 2, leg.tsLastOut)
      else leg.tsLastOut = val
    }
    refill(buf, msg.off, msg.end, leg.tcp.localIp, leg.tcp.remoteIp, msg.vnet)
    this.originate(msg, toPeer)
  }

  /**
   * The receiver's own highest ACK: while the old TCBs drain, the ACK fields forwarded
   * towards the other peer are raised to the old stream's end, and so is `lastAck`.
   */
  protected override receiverAck(forward: boolean): number {
    return (forward ? this.vb : this.va).ack
  }

  /** True while data waits for a receiver's window (the final FWD, which holds nothing, must wait). */
  get holding(): boolean {
    return this.va.held.length > 0 || this.vb.held.length > 0
  }

  /** Unhooks the old TCBs' output (they are disposed by the splice engine). */
  override detached(): void {
    super.detached()
    this.va.release()
    this.vb.release()
    this.a.tcp.redirect = null
    this.b.tcp.redirect = null
  }

  /** Counters for stats(). */
  override extraStats(): Record<string, number | string | boolean> {
    return {
      ...super.extraStats(),
      absorbed: this.absorbed,
      rstsAfterFin: this.rstsAfterFin,
      held: this.heldSegments,
      heldDuplicates: this.heldDuplicates,
      drainedA: this.a.tcp.tcb.drained,
      drainedB: this.b.tcp.tcb.drained,
      drainEndA: this.a.drainEnd,
      drainEndB: this.b.drainEnd,
    }
  }
}
