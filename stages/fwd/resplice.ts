/**
 * The resplice FWD stage (MSOCKS §III-A Fig. 6, §III-B): forwards a spliced server
 * connection onto a *new* client connection while that connection's own TCB drains the
 * octets the proxy sent on it (the SOCKS replies, the RECONNECT reply). Only one TCB
 * drains, the client one: the server side has been FWD state all along.
 * Consumes: as {@link FwdStage}: segments of the new client connection (forward) and of
 *           the server connection (backward).
 * Produces: (1) a copy of each client segment for the draining TCB, which only processes
 *           its ACK (drain mode); (2) the rewritten segment, as FWD; (3) the draining TCB's
 *           own retransmissions, towards the client; (4) while the client rewrites octets
 *           the server may hold already, its ACKs at a sequence the server accepts
 *           (`rewriteAck`).
 * Drops:    FWD's reasons. Pure ACKs of the TCB's own octets go to it alone (`absorbed`).
 * State:    FWD's, plus the draining leg, the last ACK and TSval sent to the client.
 *
 * Consistency rules (as the preliminary FWD's, for one leg): an ACK from the client below
 * the end of the TCB's stream is raised to it on data segments (the proxy has all of it);
 * TSvals towards the client never go backwards (RFC 7323 §5 PAWS); the TCB's own segments
 * carry the latest ACK forwarded to the client, not the one frozen at the resplice (an
 * ACK older than a window would be dropped by the client, RFC 5961 §5.2).
 * @module
 */
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import { checksum, pseudoHeaderSum } from '../../core/checksum.js'
import { checksumVouched, type Msg } from '../../core/msg.js'
import { seqDiff, seqGe, seqGt, seqLt } from '../../core/seq.js'
import { Dir, type Dir as DirT } from '../../core/stage.js'
import { TcpField, TcpFlag } from '../tcp/segment.js'
import type { TcpStage } from '../tcp/stage.js'
import { copySegment, findTimestamps, refill, stripSack } from './segment-edit.js'
import { TsMode } from './rewrite.js'
import { FwdStage, type FwdConfig, type FwdEnd } from './stage.js'

/** The new client connection's draining TCB. */
export interface RespliceLeg {
  /** Its TCP stage (unlinked from the path, TCB in drain mode). */
  tcp: TcpStage
  /** The end of its send stream (after the RECONNECT reply). */
  drainEnd: number
  /** The last TSval sent to the client. */
  tsLastOut: number
}

/** Configuration of a {@link RespliceFwdStage}: FWD's, plus the draining client leg. */
export interface RespliceFwdConfig extends FwdConfig {
  /** The new client connection (its peer's segments travel forward). */
  client: RespliceLeg
  /**
   * The end of what the old client connection ever forwarded to the server (towards-server
   * sequence space): the server may acknowledge up to here, so until the new connection
   * has sent this far its ACKs must be lowered.
   */
  clampUntil: number
}

/** The resplice FWD stage. */
export class RespliceFwdStage extends FwdStage {
  /** The draining client leg. */
  readonly client: RespliceLeg
  /** Pure ACKs of the TCB's own octets, given to it alone. */
  absorbed = 0
  /** Server ACKs lowered to what the new connection has sent. */
  clamped = 0
  /** Client ACKs carried at `clampUntil` while it rewrote octets the server may hold (`rewriteAck`). */
  rewriteAcks = 0
  /**
   * Called once, when the TCB has drained and the new connection has sent everything the
   * server could acknowledge: the final FWD (which does not clamp) may take over.
   */
  onReady: (() => void) | null = null
  private ackToClient = 0
  private ackKnown = false
  /** See {@link RespliceFwdConfig.clampUntil}. */
  readonly clampUntil: number

  /** Creates the stage and points the draining TCB's output at it. */
  constructor(cfg: RespliceFwdConfig) {
    super(cfg, 'REFWD')
    this.client = cfg.client
    this.clampUntil = cfg.clampUntil >>> 0
    cfg.client.tcp.redirect = m => this.fromTcb(m)
  }

  /** Feeds client segments to the draining TCB, then forwards as FWD does. */
  override deliver(msg: Msg, dir: DirT): void {
    if (this.ended !== null) return this.drop(msg, 'closed')
    if (msg.l3 < 0) return this.drop(msg, 'no-l3')
    const buf = msg.buf
    const tcp = msg.off
    if (msg.end - tcp < 20) return this.drop(msg, 'truncated')
    const srcIp = get32(buf, msg.l3 + 12)
    const dstIp = get32(buf, msg.l3 + 16)
    if (dir === Dir.Forward) {
      const v = msg.vnet
      if (!this.trustChecksums && !checksumVouched(v) && checksum(buf, tcp, msg.end - tcp, pseudoHeaderSum(srcIp, dstIp, 6, msg.end - tcp)) !== 0) {
        return this.drop(msg, 'bad-checksum')
      }
      const leg = this.client
      if (!leg.tcp.tcb.drained) {
        leg.tcp.receive(copySegment(msg, tcp))
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
          const short = seqDiff(leg.drainEnd, ack)
          set32(buf, tcp + TcpField.ACK, leg.drainEnd)
          const wnd = get16(buf, tcp + TcpField.WINDOW) * (1 << this.ab.inShift)
          set16(buf, tcp + TcpField.WINDOW, Math.floor(Math.max(0, wnd - short) / (1 << this.ab.inShift)))
          stripSack(buf, tcp)
          refill(buf, tcp, msg.end, srcIp, dstIp, msg.vnet)
        }
      }
    }
    const chop = this.rewrite(msg, dir, tcp, srcIp, dstIp)
    if (chop < 0) return
    msg.off += chop
    msg.l4 = msg.off
    if (dir === Dir.Backward) this.towardClient(msg)
    else if (this.rewriteAck(msg)) return
    this.forward(msg, dir, msg.off)
    if (this.onReady !== null && this.ready) {
      const f = this.onReady
      this.onReady = null
      f()
    }
  }

  /**
   * While the client rewrites octets the old connection had forwarded (MSOCKS §III-B.5:
   * from snd_una_D on), the server may hold them already. A segment wholly below the
   * server's next expected octet is unacceptable to it, and RFC 9293 §3.10.7.4 ignores
   * the ACK field of an unacceptable segment: the client's ACKs would never reach the
   * server, which then retransmits into the void with its RTO backing off (seen with
   * kernel peers, a 2.6 MB rewrite). So each such segment's ACK travels at `clampUntil`,
   * which no server can be past (nothing was forwarded beyond it) and whose window
   * covered it: octets the server acknowledged already become a pure ACK there; others
   * go as they are (the server may lack them), followed by a pure-ACK copy there.
   * Returns true when it forwarded `msg` itself.
   */
  private rewriteAck(msg: Msg): boolean {
    const buf = msg.buf
    const tcp = msg.off
    const flags = buf[tcp + TcpField.FLAGS]!
    if ((flags & TcpFlag.ACK) === 0 || (flags & (TcpFlag.FIN | TcpFlag.RST | TcpFlag.SYN)) !== 0) return false
    const hlen = (buf[tcp + TcpField.DATA_OFF]! >>> 4) << 2
    const payload = msg.end - tcp - hlen
    const seq = get32(buf, tcp + TcpField.SEQ)
    const end = (seq + payload) >>> 0
    if (!seqLt(end, this.clampUntil)) return false
    const d = this.ab
    if (payload === 0 || !seqGt(end, this.ba.lastAck)) {
      // Nothing the server lacks: the segment becomes its ACK, at the acceptable point.
      msg.end = tcp + hlen
      set32(buf, tcp + TcpField.SEQ, this.clampUntil)
      refill(buf, tcp, msg.end, d.outSrcIp, d.outDstIp, msg.vnet)
      if (payload > 0) this.rewriteAcks++
      this.forward(msg, Dir.Forward, tcp)
      return true
    }
    const ack = copySegment(msg, tcp, tcp + hlen)
    set32(ack.buf, ack.off + TcpField.SEQ, this.clampUntil)
    refill(ack.buf, ack.off, ack.end, d.outSrcIp, d.outDstIp, ack.vnet)
    this.rewriteAcks++
    this.forward(msg, Dir.Forward, tcp)
    if (this.ended === null && this.path !== null) this.originate(ack, Dir.Forward)
    else ack.free()
    return true
  }

  /**
   * True once the TCB drained and the new connection has sent everything the server could
   * acknowledge (all the old connection forwarded): no server ACK needs lowering any more.
   */
  get ready(): boolean {
    return this.client.tcp.tcb.drained && seqGe((this.ab.highSeq + this.ab.seqOffset) >>> 0, this.clampUntil)
  }

  /** Only a RST ends the splice while the TCB drains (the final FWD watches FINs). */
  protected override track(msg: Msg, _dir: DirT, tcp: number): FwdEnd | null {
    return (msg.buf[tcp + TcpField.FLAGS]! & TcpFlag.RST) !== 0 ? 'rst' : null
  }

  /** A rewritten server segment: TSval kept monotonic towards the client, its ACK remembered. */
  private towardClient(msg: Msg): void {
    const buf = msg.buf
    const tcp = msg.off
    if ((buf[tcp + TcpField.FLAGS]! & TcpFlag.ACK) !== 0) {
      let a = get32(buf, tcp + TcpField.ACK)
      // The server may hold more of the client's stream than the new connection has sent
      // yet (the old one's octets, or an ACK the proxy had not seen): acknowledge only
      // what the new connection sent. An ACK of unsent data makes the client drop the
      // whole segment (RFC 9293 §3.10.7.4), and it would never learn of its rewrite.
      const sent = this.ab.highSeq
      if (seqGt(a, sent)) {
        a = sent
        set32(buf, tcp + TcpField.ACK, a)
        stripSack(buf, tcp)
        refill(buf, tcp, msg.end, this.ba.outSrcIp, this.ba.outDstIp, msg.vnet)
        this.clamped++
      }
      if (!this.ackKnown || seqGt(a, this.ackToClient)) {
        this.ackToClient = a
        this.ackKnown = true
      }
    }
    const d = this.ba
    if (d.tsMode !== TsMode.Map) return
    const ts = findTimestamps(buf, tcp)
    if (ts < 0) return
    const leg = this.client
    const val = get32(buf, ts + 2)
    const behind = seqDiff(leg.tsLastOut, val)
    if (behind > 0) {
      d.tsvalOffset = (d.tsvalOffset + behind) >>> 0
      this.ab.tsecrOffset = d.tsvalOffset
      set32(buf, ts + 2, leg.tsLastOut)
      refill(buf, tcp, msg.end, d.outSrcIp, d.outDstIp, msg.vnet)
    } else leg.tsLastOut = val
  }

  /** Before the final FWD takes over: the next TSval forwarded is not below the TCB's last. */
  settleTimestamps(): void {
    const d = this.ba
    if (d.tsMode !== TsMode.Map) return
    const behind = seqDiff(this.client.tsLastOut, (d.tsLastIn + d.tsvalOffset) >>> 0)
    if (behind > 0) {
      d.tsvalOffset = (d.tsvalOffset + behind) >>> 0
      this.ab.tsecrOffset = d.tsvalOffset
    }
  }

  /** The draining TCB's own segment: latest ACK and a monotonic TSval, then towards the client. */
  private fromTcb(msg: Msg): void {
    if (this.ended !== null || this.path === null) {
      msg.free()
      return
    }
    const leg = this.client
    const buf = msg.buf
    const tcp = msg.off
    let changed = false
    if (this.ackKnown && (buf[tcp + TcpField.FLAGS]! & TcpFlag.ACK) !== 0 && seqGt(this.ackToClient, get32(buf, tcp + TcpField.ACK))) {
      set32(buf, tcp + TcpField.ACK, this.ackToClient)
      changed = true
    }
    const ts = findTimestamps(buf, tcp)
    if (ts >= 0) {
      const val = get32(buf, ts + 2)
      if (seqLt(val, leg.tsLastOut)) {
        set32(buf, ts + 2, leg.tsLastOut)
        changed = true
      } else leg.tsLastOut = val
    }
    if (changed) refill(buf, tcp, msg.end, leg.tcp.localIp, leg.tcp.remoteIp, msg.vnet)
    this.originate(msg, Dir.Backward)
  }

  /** Unhooks the TCB's output (the resplicer disposes it). */
  override detached(): void {
    super.detached()
    this.client.tcp.redirect = null
  }

  /** Counters for stats(). */
  override extraStats(): Record<string, number | string | boolean> {
    return { ...super.extraStats(), absorbed: this.absorbed, clamped: this.clamped, rewriteAcks: this.rewriteAcks, drained: this.client.tcp.tcb.drained, drainEnd: this.client.drainEnd }
  }
}
