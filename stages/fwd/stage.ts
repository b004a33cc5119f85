/**
 * FWD: forwards one spliced TCP connection without a TCB (Scout §III-C final FWD).
 * Consumes: TCP segments of connection A (forward) or B (backward); `msg.off` at the TCP
 *           header, `msg.l3` at the IPv4 header (the IP stage below popped it).
 * Produces: the segment for the other connection: ports, seq/ack, SACK, TS and window
 *           rewritten, checksum updated incrementally (RFC 1624) incl. the pseudo-header;
 *           the IP stage on the other side pushes a fresh IP header. No allocation.
 * Drops:    'bad-checksum' | 'syn-on-spliced' | 'blind-injection' | 'truncated' | 'below-splice-base' |
 *           'closed' | 'no-l3' | 'unsplice-overflow' (more new data than {@link MAX_HELD_BYTES}
 *           arrived while waiting to unsplice)
 * Holds:    while unsplicing, segments carrying new data (beyond what was forwarded), for
 *           the TCBs that replace this stage ({@link FwdStage.quiesceThen}).
 * State:    per direction: seq/ack/TS offsets, window shifts, highest seq, last ack and
 *           window (for unsplicing), FIN seen; a simplified state machine (FIN each way, RST).
 * Inspect:  stats(), state(); an idle timer ends the splice after `idleMs` of silence.
 * @module
 */
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import { checksum, fold, pseudoHeaderSum, transportChecksumOk } from '../../core/checksum.js'
import { checksumVouched, VNET_F_NEEDS_CSUM, type Msg } from '../../core/msg.js'
import type { Scheduler } from '../../core/scheduler.js'
import { seqAdd, seqDiff, seqGe, seqGt, seqLt } from '../../core/seq.js'
import { Dir, Stage, type Dir as DirT } from '../../core/stage.js'
import type { Timer } from '../../core/timers.js'
import { TcpField, TcpFlag } from '../tcp/segment.js'
import { FwdDirection, fixVnet, rewriteSegment, type FwdDirectionConfig } from './rewrite.js'
import { findOption, findTimestamps } from './segment-edit.js'

/** Why a splice ended. */
export type FwdEnd = 'fin' | 'rst' | 'idle'

/** Which way spliced bytes flow, for {@link FwdConfig.tap}: from A's peer (forward) or from B's. */
export type FwdTapDir = 'ab' | 'ba'

/** Configuration of a {@link FwdStage}. */
export interface FwdConfig {
  /**
   * A -> B: segments travelling forward along the path. A live {@link FwdDirection} is
   * taken over as it is (the final FWD inherits the preliminary FWD's state).
   */
  ab: FwdDirectionConfig | FwdDirection
  /** B -> A: segments travelling backward. */
  ba: FwdDirectionConfig | FwdDirection
  /**
   * Skip verifying the TCP checksum of incoming segments (a device that verified them, or
   * a benchmark) [false]. Verification matters: FWD's state (highest seq, last ack, FIN)
   * must come from intact segments, and a rewrite that recomputes a checksum must not
   * launder a corrupted one. Segments whose virtio-net header says the checksum was
   * checked (or is to be filled in) are trusted anyway.
   */
  trustChecksums?: boolean
  /** A read-only copy of every new spliced byte, per direction (a cache, a logger); off the fast path when unset. */
  tap?: ((dir: FwdTapDir, data: Uint8Array) => void) | null
  /** End the splice after this long without a segment (default: never). */
  idleMs?: number
  /** Needed for the idle timer. */
  scheduler?: Scheduler
  /** Called once when the splice ends (both FINs acked, a RST, or idle). */
  onEnd?: (why: FwdEnd) => void
}

/** One direction of a {@link FwdState}, in that direction's incoming sequence space. */
export interface FwdDirectionState {
  /** Highest seq + len seen. */
  highSeq: number
  /** Last ack seen. */
  lastAck: number
  /** The incoming peer's last window in bytes. */
  window: number
  /** True once the incoming peer sent FIN. */
  finSeen: boolean
  /** Segments rewritten. */
  segments: number
  /** Payload bytes forwarded. */
  bytes: number
  /** Bytes chopped below the splice base. */
  chopped: number
  /** Last TSval seen from the incoming peer. */
  tsLastIn: number
}

/** A snapshot of a splice's state, enough to unsplice (rebuild two TCBs). */
export interface FwdState {
  /** From A. */
  ab: FwdDirectionState
  /** From B. */
  ba: FwdDirectionState
  /** True once the splice ended. */
  ended: boolean
}

/** The quiesce callback once it ran: the stage keeps holding until the owner cancels. */
const KEEP_HOLDING = (): void => {}

function snap(d: FwdDirection): FwdDirectionState {
  return { highSeq: d.highSeq, lastAck: d.lastAck, window: d.window, finSeen: d.finSeen, segments: d.segments, bytes: d.bytes, chopped: d.chopped, tsLastIn: d.tsLastIn }
}

/**
 * Most payload bytes held per direction while an unsplice waits for the peers' ACKs (about
 * a window of new data for one RTT); more is dropped, and its sender retransmits it.
 */
export const MAX_HELD_BYTES = 8 << 20

/** A callback when a direction's stream reaches a sequence number ({@link FwdStage.notifyAt}). */
interface SeqWatch {
  dir: DirT
  seq: number
  fn: () => void
}

/** The final FWD stage of a spliced connection. */
export class FwdStage extends Stage {
  /** A -> B state. */
  readonly ab: FwdDirection
  /** B -> A state. */
  readonly ba: FwdDirection
  /** Set once the splice ended; later segments are dropped as 'closed'. */
  ended: FwdEnd | null = null
  /** @internal */
  protected lastActivity = 0
  private readonly idleMs: number
  /** @internal */
  protected readonly idleTimer: Timer | null
  /** @internal */
  protected readonly scheduler: Scheduler | null
  /** Called once when the splice ends; the owner may replace it. */
  onEnd: ((why: FwdEnd) => void) | null
  /** See {@link FwdConfig.tap}. */
  tap: ((dir: FwdTapDir, data: Uint8Array) => void) | null
  /** See {@link FwdConfig.trustChecksums}. */
  readonly trustChecksums: boolean
  private watch: SeqWatch | null = null
  private quiesce: (() => void) | null = null
  /** Hold new data although no unsplice waits yet ({@link FwdStage.holdNewData}). */
  private holdNew = false
  /** Segments held while unsplicing, in arrival order, and their directions. */
  private held: Msg[] = []
  private heldDirs: DirT[] = []
  private readonly heldBytes = [0, 0]
  /** Per direction: the smallest TSval among the held segments (-1: none), for TS.Recent. */
  private readonly heldTsMin = [-1, -1]

  /** Creates the stage from per-direction configurations (or live directions to take over). */
  constructor(cfg: FwdConfig, kind = 'FWD') {
    super(kind, Dir.Forward)
    this.ab = cfg.ab instanceof FwdDirection ? cfg.ab : new FwdDirection(cfg.ab)
    this.ba = cfg.ba instanceof FwdDirection ? cfg.ba : new FwdDirection(cfg.ba)
    this.tap = cfg.tap ?? null
    this.trustChecksums = cfg.trustChecksums ?? false
    this.idleMs = cfg.idleMs ?? 0
    this.scheduler = cfg.scheduler ?? null
    this.onEnd = cfg.onEnd ?? null
    this.idleTimer = this.idleMs > 0 && this.scheduler !== null ? this.scheduler.timer(now => this.checkIdle(now)) : null
    if (this.idleTimer !== null) {
      this.lastActivity = this.scheduler!.now()
      this.idleTimer.set(this.idleMs)
    }
  }

  /** Rewrites and forwards one segment. */
  deliver(msg: Msg, dir: DirT): void {
    if (this.ended !== null) return this.drop(msg, 'closed')
    if (msg.l3 < 0) return this.drop(msg, 'no-l3')
    const buf = msg.buf
    // Addresses travel as int32 (`| 0`): a call passing an address >= 2^31 (192.168/16)
    // as a uint32 would box it, an allocation per segment. Only their 16-bit halves are used.
    const chop = this.rewrite(msg, dir, msg.off, get32(buf, msg.l3 + 12) | 0, get32(buf, msg.l3 + 16) | 0)
    if (chop < 0) return
    msg.off += chop
    msg.l4 = msg.off
    this.forward(msg, dir, msg.off)
  }

  /** Runs the state machine on a rewritten segment at `tcp`, sends it on, then ends the splice or fires a watch. */
  protected forward(msg: Msg, dir: DirT, tcp: number): void {
    const endNow = this.track(msg, dir, tcp)
    this.send(msg, dir)
    if (endNow !== null) this.end(endNow)
    else if (this.watch !== null || this.quiesce !== null) this.checkWatches()
  }

  /**
   * Calls `fn` once the stream travelling in `dir` has been forwarded up to `bytes` more
   * bytes from now (an HTTP response body's end: unsplice to read the next request). One
   * watch at a time; a new call replaces the old one.
   */
  notifyAt(dir: DirT, bytes: number, fn: () => void): void {
    const d = dir === Dir.Forward ? this.ab : this.ba
    this.watch = { dir, seq: seqAdd(d.highSeq, bytes), fn }
    this.checkWatches()
  }

  /**
   * Unsplice, step 1 (DESIGN §5: "wait for outstanding data to be acked"). From now on
   * each direction's stream ends, for this stage, at what was forwarded so far (`highSeq`):
   * retransmissions below it still pass, so the peers can acknowledge everything; a segment
   * carrying anything beyond it is HELD (not dropped) for the TCB that will replace this
   * stage, and only its part below that point, or its new ACK, is forwarded (a trimmed
   * copy). `fn` runs once each peer has acknowledged everything forwarded to it; then the
   * owner builds the TCBs and feeds them {@link FwdStage.takeHeld}. So no byte crosses the
   * unsplice point unseen by the proxy, none is lost, and the senders need not retransmit
   * (no RTO per unsplice). Pass null to cancel: held segments are forwarded as usual.
   */
  quiesceThen(fn: (() => void) | null): void {
    this.quiesce = fn
    if (fn !== null) return this.checkWatches()
    this.holdNew = false
    const held = this.held
    const dirs = this.heldDirs
    this.clearHeld()
    for (let i = 0; i < held.length; i++) this.deliver(held[i]!, dirs[i]!)
  }

  /**
   * Holds new data from now on, as {@link FwdStage.quiesceThen} does, for an unsplice that
   * is certain to follow but cannot start yet: the preliminary FWD forwarded an HTTP
   * response's last byte while the old TCBs still drain, and the client's next request
   * must reach the proxy, not the server. The final FWD takes the held segments over
   * ({@link FwdStage.adoptHeld}) and unsplices at once; cancelling the quiesce forwards them.
   */
  holdNewData(): void {
    this.holdNew = true
  }

  /** True once {@link FwdStage.holdNewData} was called (and not cancelled). */
  get holdingNewData(): boolean {
    return this.holdNew
  }

  /** Takes over the segments `from` holds (the stage it replaces), and holds new data too. */
  adoptHeld(from: FwdStage): void {
    for (let i = 0; i < from.held.length; i++) {
      this.held.push(from.held[i]!)
      this.heldDirs.push(from.heldDirs[i]!)
    }
    for (const d of [0, 1]) {
      this.heldBytes[d]! += from.heldBytes[d]!
      const t = from.heldTsMin[d]!
      if (t >= 0 && (this.heldTsMin[d]! < 0 || seqGt(this.heldTsMin[d]!, t))) this.heldTsMin[d] = t
    }
    from.clearHeld()
    this.holdNew = true
  }

  /** True while an unsplice waits for the peers' ACKs. */
  get quiescing(): boolean {
    return this.quiesce !== null
  }

  /**
   * The segments held for the TCB receiving from `dir`'s sender, in arrival order, with
   * `msg.off` at the TCP header and `msg.l3` at the IP header; the caller owns them.
   */
  takeHeld(dir: DirT): Msg[] {
    const out: Msg[] = []
    const keep: Msg[] = []
    const keepDirs: DirT[] = []
    for (let i = 0; i < this.held.length; i++) {
      if (this.heldDirs[i] === dir) out.push(this.held[i]!)
      else {
        keep.push(this.held[i]!)
        keepDirs.push(this.heldDirs[i]!)
      }
    }
    this.held = keep
    this.heldDirs = keepDirs
    this.heldBytes[dir] = 0
    return out
  }

  /** The smallest TSval among the segments held from `dir`'s sender, or -1 (the rebuilt TCB's TS.Recent must not exceed it: RFC 7323 §5.3 PAWS). */
  heldTsvalMin(dir: DirT): number {
    return this.heldTsMin[dir]!
  }

  private freeHeld(): void {
    const h = this.held
    for (let i = 0; i < h.length; i++) h[i]!.free()
    this.clearHeld()
  }

  private clearHeld(): void {
    // Fresh arrays only when something was held (a caller may still be walking the old ones).
    if (this.held.length > 0) {
      this.held = []
      this.heldDirs = []
    }
    this.heldBytes[0] = this.heldBytes[1] = 0
    this.heldTsMin[0] = this.heldTsMin[1] = -1
  }

  /** True once everything forwarded each way has been acknowledged by its receiver. */
  get quiet(): boolean {
    const ab = this.ab
    const ba = this.ba
    return seqGe(ba.lastAck, seqAdd(ab.highSeq, ab.seqOffset)) && seqGe(ab.lastAck, seqAdd(ba.highSeq, ba.seqOffset))
  }

  private checkWatches(): void {
    const w = this.watch
    if (w !== null) {
      const d = w.dir === Dir.Forward ? this.ab : this.ba
      if (seqGe(d.highSeq, w.seq)) {
        this.watch = null
        w.fn()
      }
    }
    const q = this.quiesce
    if (q !== null && q !== KEEP_HOLDING && this.ended === null && this.quiet) {
      // Keep holding until the owner takes the held segments and cancels (quiesceThen(null)):
      // it rebuilds the TCBs between messages, and a segment forwarded before that (a FIN,
      // new data) would cross the unsplice point unseen by the rebuilt TCBs.
      this.quiesce = KEEP_HOLDING
      q()
    }
  }

  /**
   * Rewrites the segment at `tcp` for the other connection. Returns the bytes chopped from
   * the front (>= 0), or -1 after dropping the message.
   */
  protected rewrite(msg: Msg, dir: DirT, tcp: number, srcIp: number, dstIp: number): number {
    const v = msg.vnet
    if (!this.trustChecksums && !checksumVouched(v)) {
      const len = msg.end - tcp
      if (len >= 20 && !transportChecksumOk(msg.buf, tcp, len, srcIp, dstIp, 6)) {
        this.drop(msg, 'bad-checksum')
        return -1
      }
    }
    if (this.quiesce !== null || this.holdNew || this.tap !== null) {
      if (this.slowChecks(msg, dir, tcp, srcIp, dstIp)) return -1
    }
    const forward = dir === Dir.Forward
    // Before the rewrite, which updates the direction's state (a dropped segment leaves none).
    if (msg.end - tcp >= 20 && (msg.buf[tcp + TcpField.FLAGS]! & TcpFlag.RST) !== 0 && this.rstBelowWindow(msg.buf, tcp, forward)) {
      this.drop(msg, 'rst-below-window')
      return -1
    }
    const r = rewriteSegment(msg.buf, tcp, msg.end, srcIp, dstIp, forward ? this.ab : this.ba, forward ? this.ba : this.ab)
    if (typeof r === 'string') {
      this.drop(msg, r)
      return -1
    }
    if (v !== null) fixVnet(msg.buf, tcp + r, msg.end, v, forward ? this.ab : this.ba)
    if (this.idleTimer !== null) this.lastActivity = msg.rxTime > 0 ? msg.rxTime : this.scheduler!.now()
    return r
  }

  /**
   * True for a RST (at `tcp`, not yet rewritten) below what its receiver has acknowledged: outside
   * the receiver's window, which drops it silently (RFC 5961 §3.2, RFC 9293 §3.10.7.4).
   * Passed on, it would end the splice for nothing, and the RST that counts (its sender's
   * exact one, reordered behind it) would find no splice left to carry it: the receiver
   * would never hear of the reset. One value below is let through: the sequence number of
   * the FIN forwarded for the RST's sender (a peer answering with its own FIN's seq).
   */
  protected rstBelowWindow(buf: Uint8Array, tcp: number, forward: boolean): boolean {
    const d = forward ? this.ab : this.ba
    const seq = get32(buf, tcp + TcpField.SEQ)
    if (d.finSeen && seq === d.finSeq) return false
    return seqLt(seqAdd(seq, d.seqOffset), this.receiverAck(forward))
  }

  /** The highest ACK the receiver of the `forward` (or backward) direction sent, in that direction's outgoing space. */
  protected receiverAck(forward: boolean): number {
    return (forward ? this.ba : this.ab).lastAck
  }

  /**
   * The simplified state machine, on a rewritten segment at `tcp`: a RST ends the splice
   * once forwarded; so does the ACK of the second FIN. Returns why it ends now, or null.
   */
  protected track(msg: Msg, _dir: DirT, tcp: number): FwdEnd | null {
    if ((msg.buf[tcp + TcpField.FLAGS]! & TcpFlag.RST) !== 0) return 'rst'
    return this.finsAcked() ? 'fin' : null
  }

  /** True once both peers sent FIN and each FIN was acknowledged by the other peer. */
  finsAcked(): boolean {
    const ab = this.ab
    const ba = this.ba
    return ab.finSeen && ba.finSeen &&
      seqGe(ba.lastAck, seqAdd(ab.finSeq, 1 + ab.seqOffset)) && seqGe(ab.lastAck, seqAdd(ba.finSeq, 1 + ba.seqOffset))
  }

  /** Off the fast path: the unsplice hold and the tap. Returns true if it took `msg`. */
  private slowChecks(msg: Msg, dir: DirT, tcp: number, srcIp: number, dstIp: number): boolean {
    const buf = msg.buf
    const d = dir === Dir.Forward ? this.ab : this.ba
    if (msg.end - tcp < 20) return false // rewrite drops it
    const hlen = (buf[tcp + TcpField.DATA_OFF]! >>> 4) << 2
    const seq = get32(buf, tcp + TcpField.SEQ)
    const flags = buf[tcp + TcpField.FLAGS]!
    const len = msg.end - tcp - hlen
    const segEnd = seqAdd(seq, len + ((flags & TcpFlag.FIN) !== 0 ? 1 : 0))
    if ((this.quiesce !== null || this.holdNew) && (flags & (TcpFlag.RST | TcpFlag.SYN)) === 0 && hlen >= 20 && tcp + hlen <= msg.end && seqGt(segEnd, d.highSeq)) {
      this.hold(msg, dir, d, tcp, hlen, seq, len, flags, srcIp, dstIp)
      return true
    }
    if (this.tap !== null && len > 0 && seqGt(seqAdd(seq, len), d.highSeq)) {
      // Only bytes never forwarded before: a retransmission is not new data.
      const from = seqGt(d.highSeq, seq) ? seqDiff(d.highSeq, seq) : 0
      if (from < len) this.tap(dir === Dir.Forward ? 'ab' : 'ba', buf.slice(tcp + hlen + from, msg.end))
    }
    return false
  }

  /**
   * Holds a segment that goes beyond the unsplice point for the TCB that replaces this
   * stage. What the peer on the other side must still get goes now, in a trimmed copy:
   * the bytes below the point (a retransmission that grew), or a new ACK (the peers must
   * be able to acknowledge everything, or the unsplice never completes), or SACK blocks
   * (a receiver with a hole: its sender needs these duplicate ACKs to fast-retransmit
   * instead of waiting for its RTO), or a pure ACK. A data segment's copy with nothing new
   * is not sent: it would be a spurious duplicate ACK (RFC 5681 §2).
   */
  private hold(msg: Msg, dir: DirT, d: FwdDirection, tcp: number, hlen: number, seq: number, len: number, flags: number, srcIp: number, dstIp: number): void {
    const buf = msg.buf
    const keep = seqGt(d.highSeq, seq) ? Math.min(len, seqDiff(d.highSeq, seq)) : 0
    const ack = get32(buf, tcp + TcpField.ACK)
    const tsAt = findTimestamps(buf, tcp)
    const ts = tsAt >= 0 ? get32(buf, tsAt + 2) : -1
    // A pure ACK goes on even when its ACK is not new: it is held only because its sequence
    // number lies beyond lost data, and it may answer a retransmission whose sender missed
    // the first ACK of that data (lost on the other wire); dropping it would leave that
    // sender retransmitting into a receiver that never acknowledges again until the
    // unsplice times out. Unspliced, FWD forwards such duplicate ACKs as they come.
    const pureAck = len === 0 && (flags & TcpFlag.FIN) === 0
    if (keep > 0 || ((flags & TcpFlag.ACK) !== 0 && (pureAck || seqGt(ack, d.lastAck) || findOption(buf, tcp, 5) >= 0))) {
      const c = msg.clone()
      const cb = c.buf
      // FWD reads the addresses from the IP header in front of `off`: the clone needs it.
      if (msg.l3 >= 0 && msg.l3 < msg.off) cb.set(buf.subarray(msg.l3, msg.off), msg.l3)
      c.end = tcp + hlen + keep
      cb[tcp + TcpField.FLAGS] = flags & ~(TcpFlag.FIN | TcpFlag.PSH)
      // A pure ACK from beyond a gap is sent at the unsplice point: in the receiver's window.
      if (keep === 0 && seqGt(seq, d.highSeq)) set32(cb, tcp + TcpField.SEQ, d.highSeq)
      if (msg.off < tcp) {
        // IP/FWD: the IP header is in front; its length and checksum change with the trim.
        const ip = msg.off
        set16(cb, ip + 2, c.end - ip)
        set16(cb, ip + 10, 0)
        set16(cb, ip + 10, checksum(cb, ip, tcp - ip))
      }
      const tlen = c.end - tcp
      const v = msg.vnet
      if (v !== null && v.gsoType !== 0 && keep > v.gsoSize) {
        // Still a super-segment: the device cuts it, and completes the checksum over the
        // pseudo-header sum (virtio spec §5.1.6.2; GSO needs NEEDS_CSUM).
        c.vnet = { ...v, flags: VNET_F_NEEDS_CSUM }
        set16(cb, tcp + TcpField.CHECKSUM, fold(pseudoHeaderSum(srcIp, dstIp, 6, tlen)))
      } else {
        set16(cb, tcp + TcpField.CHECKSUM, 0)
        set16(cb, tcp + TcpField.CHECKSUM, checksum(cb, tcp, tlen, pseudoHeaderSum(srcIp, dstIp, 6, tlen)))
        c.vnet = null
      }
      this.deliver(c, dir)
    }
    if (this.heldBytes[dir]! + len > MAX_HELD_BYTES) return this.drop(msg, 'unsplice-overflow')
    this.heldBytes[dir]! += len
    const min = this.heldTsMin[dir]!
    if (ts >= 0 && (min < 0 || seqGt(min, ts))) this.heldTsMin[dir] = ts
    if (msg.off < tcp) {
      msg.l3 = msg.off
      msg.end = Math.min(msg.end, msg.off + get16(buf, msg.off + 2))
    }
    msg.off = tcp
    msg.l4 = tcp
    this.held.push(msg)
    this.heldDirs.push(dir)
  }

  /** Ends the splice (idempotent): stops the idle timer and tells the owner. */
  end(why: FwdEnd): void {
    if (this.ended !== null) return
    this.ended = why
    this.idleTimer?.cancel()
    this.quiesce = null
    this.freeHeld()
    this.onEnd?.(why)
  }

  /** The state needed to unsplice. */
  state(): FwdState {
    return { ab: snap(this.ab), ba: snap(this.ba), ended: this.ended !== null }
  }

  /** Counters for stats(). */
  override extraStats(): Record<string, number | string | boolean> {
    return {
      segmentsAB: this.ab.segments,
      segmentsBA: this.ba.segments,
      bytesAB: this.ab.bytes,
      bytesBA: this.ba.bytes,
      chopped: this.ab.chopped + this.ba.chopped,
      held: this.held.length,
      ended: this.ended ?? false,
    }
  }

  /** Detaching from the path stops the idle timer and frees what is still held. */
  override detached(): void {
    this.idleTimer?.cancel()
    this.freeHeld()
  }

  private checkIdle(now: number): void {
    if (this.ended !== null) return
    const quiet = now - this.lastActivity
    if (quiet >= this.idleMs) this.end('idle')
    else this.idleTimer!.set(this.idleMs - quiet)
  }
}
