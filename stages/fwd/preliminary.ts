/**
 * The preliminary FWD stage (Scout §III-C, splice steps 2-3): forwards a freshly spliced
 * connection's new segments while the two unlinked TCBs drain what the proxy had queued.
 * Consumes: as {@link FwdStage}: TCP segments (`msg.off` at the TCP header, `msg.l3` at
 *           the IPv4 header) from A's peer (forward) and B's peer (backward).
 * Produces: (1) a copy of every segment for the old TCB of the connection it came on,
 *           which only processes its ACK (drain mode: it never ACKs new data and accepts
 *           ACKs up to a window beyond what it sent); (2) the rewritten segment for the
 *           other connection, as FWD; (3) the old TCBs' own (re)transmissions, sent to
 *           their peers through the same path (`TcpStage.redirect`).
 * Drops:    FWD's reasons. ACK-only segments that acknowledge only drained data go to the
 *           old TCB and no further (counted as `absorbed`, not a drop).
 * State:    FWD's, plus per leg: the old TCP stage, the end of its send stream and the
 *           last TSval sent to its peer.
 *
 * Two rules keep both peers consistent while two senders share one sequence space:
 * - An ACK below the end of the old TCB's send stream concerns data the TCB still owns.
 *   On a data segment it is raised to that end for the other peer (true: the proxy
 *   received everything below it) with the window shrunk by as much and SACK blocks
 *   NOP-ed, so the other peer sees neither old nor duplicate ACKs.
 * - TSvals towards each peer never go backwards (RFC 7323 §5 PAWS would drop the
 *   segment): the TCB's own TSvals are raised to the last one forwarded, and a forwarded
 *   TSval below the last sent raises the direction's offset for good.
 * @module
 */
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import { checksum, fold, pseudoHeaderSum } from '../../core/checksum.js'
import { allocMsg, checksumVouched, VNET_F_NEEDS_CSUM, type Msg, type VnetHeader } from '../../core/msg.js'
import { seqDiff, seqLt } from '../../core/seq.js'
import { Dir, type Dir as DirT } from '../../core/stage.js'
import { TcpField, TcpFlag } from '../tcp/segment.js'
import type { TcpStage } from '../tcp/stage.js'
import { TsMode } from './rewrite.js'
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

/** Configuration of a {@link PreliminaryFwdStage}. */
export interface PreliminaryFwdConfig extends FwdConfig {
  /** Connection A (its peer's segments travel forward). */
  a: DrainingLeg
  /** Connection B (its peer's segments travel backward). */
  b: DrainingLeg
}

/**
 * Offset of the next option of `kind` in the TCP header at `tcp`, searching from `from`
 * (default: the first option); -1 if there is none or the options are malformed.
 */
function findOption(buf: Uint8Array, tcp: number, kind: number, from = tcp + 20): number {
  const end = tcp + ((buf[tcp + TcpField.DATA_OFF]! >>> 4) << 2)
  let i = from
  while (i < end) {
    const k = buf[i]!
    if (k === 0) break
    if (k === 1) {
      i++
      continue
    }
    const len = buf[i + 1] ?? 0
    if (len < 2 || i + len > end) break
    if (k === kind) return i
    i += len
  }
  return -1
}

/** Finds the Timestamps option of the TCP header at `tcp`; returns its offset or -1. */
export function findTimestamps(buf: Uint8Array, tcp: number): number {
  const at = findOption(buf, tcp, 8)
  return at >= 0 && buf[at + 1] === 10 ? at : -1
}

/** NOPs out every SACK option of the TCP header at `tcp`. */
function stripSack(buf: Uint8Array, tcp: number): void {
  for (let at = findOption(buf, tcp, 5); at >= 0; at = findOption(buf, tcp, 5, at)) buf.fill(1, at, at + buf[at + 1]!)
}

/** Recomputes the checksum of the TCP segment `buf[tcp..end)` between `src` and `dst`. */
function refill(buf: Uint8Array, tcp: number, end: number, src: number, dst: number, v: VnetHeader | null): void {
  const len = end - tcp
  // NEEDS_CSUM: the field holds only the pseudo-header sum; the device sums the rest (virtio §5.1.6.2).
  if (v !== null && (v.flags & VNET_F_NEEDS_CSUM) !== 0) return set16(buf, tcp + TcpField.CHECKSUM, fold(pseudoHeaderSum(src, dst, 6, len)))
  set16(buf, tcp + TcpField.CHECKSUM, 0)
  set16(buf, tcp + TcpField.CHECKSUM, checksum(buf, tcp, len, pseudoHeaderSum(src, dst, 6, len)))
}

/** The preliminary FWD stage. */
export class PreliminaryFwdStage extends FwdStage {
  /** Connection A's leg. */
  readonly a: DrainingLeg
  /** Connection B's leg. */
  readonly b: DrainingLeg
  /** ACK-only segments that concerned drained data only (given to the old TCB alone). */
  absorbed = 0

  /** Creates the stage and points both old TCBs' output at it. */
  constructor(cfg: PreliminaryFwdConfig) {
    super(cfg, 'PREFWD')
    this.a = cfg.a
    this.b = cfg.b
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
    const leg = dir === Dir.Forward ? this.a : this.b
    const srcIp = get32(buf, msg.l3 + 12)
    const dstIp = get32(buf, msg.l3 + 16)
    const v = msg.vnet
    // Verified here, before the old TCB or a checksum recompute below sees it.
    if (!this.trustChecksums && !checksumVouched(v) && checksum(buf, tcp, msg.end - tcp, pseudoHeaderSum(srcIp, dstIp, 6, msg.end - tcp)) !== 0) {
      return this.drop(msg, 'bad-checksum')
    }
    if (!leg.tcp.tcb.drained) {
      // Step 3: the old TCB sees every segment, for its ACK only.
      const n = msg.end - tcp
      const copy = allocMsg(n)
      copy.buf.set(buf.subarray(tcp, msg.end), copy.off)
      copy.end = copy.off + n
      copy.vnet = msg.vnet
      leg.tcp.receive(copy)
      if (this.ended !== null) return this.drop(msg, 'closed')
    }
    const flags = buf[tcp + TcpField.FLAGS]!
    if ((flags & TcpFlag.ACK) !== 0) {
      const ack = get32(buf, tcp + TcpField.ACK)
      if (seqLt(ack, leg.drainEnd)) {
        const hlen = (buf[tcp + TcpField.DATA_OFF]! >>> 4) << 2
        if (msg.end - tcp - hlen <= 0 && (flags & (TcpFlag.FIN | TcpFlag.RST | TcpFlag.SYN)) === 0) {
          this.absorbed++
          msg.free()
          return
        }
        // The proxy has everything below drainEnd: say so, and keep the right edge.
        const d = dir === Dir.Forward ? this.ab : this.ba
        const short = seqDiff(leg.drainEnd, ack)
        set32(buf, tcp + TcpField.ACK, leg.drainEnd)
        const wnd = get16(buf, tcp + TcpField.WINDOW) * (1 << d.inShift)
        set16(buf, tcp + TcpField.WINDOW, Math.floor(Math.max(0, wnd - short) / (1 << d.inShift)))
        stripSack(buf, tcp)
        refill(buf, tcp, msg.end, srcIp, dstIp, msg.vnet)
      }
    }
    const chop = this.rewrite(msg, dir, tcp, srcIp, dstIp)
    if (chop < 0) return
    msg.off += chop
    msg.l4 = msg.off
    this.keepTsMonotonic(msg, dir)
    this.forward(msg, dir, msg.off)
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
    for (const [d, other, to] of [[this.ab, this.ba, this.b], [this.ba, this.ab, this.a]] as const) {
      if (d.tsMode !== TsMode.Map) continue
      const behind = seqDiff(to.tsLastOut, (d.tsLastIn + d.tsvalOffset) >>> 0)
      if (behind > 0) {
        d.tsvalOffset = (d.tsvalOffset + behind) >>> 0
        other.tsecrOffset = d.tsvalOffset
      }
    }
  }

  /** An old TCB's own segment: TSval kept monotonic, then sent towards its peer. */
  private fromTcb(leg: DrainingLeg, msg: Msg, toPeer: DirT): void {
    if (this.ended !== null || this.path === null) {
      msg.free()
      return
    }
    const buf = msg.buf
    const ts = findTimestamps(buf, msg.off)
    if (ts >= 0) {
      const val = get32(buf, ts + 2)
      if (seqLt(val, leg.tsLastOut)) {
        set32(buf, ts + 2, leg.tsLastOut)
        refill(buf, msg.off, msg.end, leg.tcp.localIp, leg.tcp.remoteIp, msg.vnet)
      } else leg.tsLastOut = val
    }
    this.originate(msg, toPeer)
  }

  /** Unhooks the old TCBs' output (they are disposed by the splice engine). */
  override detached(): void {
    super.detached()
    this.a.tcp.redirect = null
    this.b.tcp.redirect = null
  }

  /** Counters for stats(). */
  override extraStats(): Record<string, number | string | boolean> {
    return {
      ...super.extraStats(),
      absorbed: this.absorbed,
      drainedA: this.a.tcp.tcb.drained,
      drainedB: this.b.tcp.tcb.drained,
      drainEndA: this.a.drainEnd,
      drainEndB: this.b.drainEnd,
    }
  }
}
