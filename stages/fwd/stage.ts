/**
 * FWD: forwards one spliced TCP connection without a TCB (Scout §III-C final FWD).
 * Consumes: TCP segments of connection A (forward) or B (backward); `msg.off` at the TCP
 *           header, `msg.l3` at the IPv4 header (the IP stage below popped it).
 * Produces: the segment for the other connection: ports, seq/ack, SACK, TS and window
 *           rewritten, checksum updated incrementally (RFC 1624) incl. the pseudo-header;
 *           the IP stage on the other side pushes a fresh IP header. No allocation.
 * Drops:    'bad-checksum' | 'syn-on-spliced' | 'blind-injection' | 'truncated' | 'below-splice-base' |
 *           'closed' | 'no-l3' | 'unsplicing' (new data while waiting to unsplice)
 * State:    per direction: seq/ack/TS offsets, window shifts, highest seq, last ack and
 *           window (for unsplicing), FIN seen; a simplified state machine (FIN each way, RST).
 * Inspect:  stats(), state(); an idle timer ends the splice after `idleMs` of silence.
 * @module
 */
import { get32 } from '../../core/bytes.js'
import { checksum, pseudoHeaderSum } from '../../core/checksum.js'
import type { Msg } from '../../core/msg.js'
import type { Scheduler } from '../../core/scheduler.js'
import { seqAdd, seqDiff, seqGe, seqGt } from '../../core/seq.js'
import { Dir, Stage, type Dir as DirT } from '../../core/stage.js'
import type { Timer } from '../../core/timers.js'
import { TcpField, TcpFlag } from '../tcp/segment.js'
import { FwdDirection, rewriteSegment, type FwdDirectionConfig } from './rewrite.js'

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

function snap(d: FwdDirection): FwdDirectionState {
  return { highSeq: d.highSeq, lastAck: d.lastAck, window: d.window, finSeen: d.finSeen, segments: d.segments, bytes: d.bytes, chopped: d.chopped, tsLastIn: d.tsLastIn }
}

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
    const chop = this.rewrite(msg, dir, msg.off, get32(buf, msg.l3 + 12), get32(buf, msg.l3 + 16))
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
   * Unsplice, step 1 ("wait for outstanding data to be acked", DESIGN §5): from now on
   * segments carrying new data are dropped as 'unsplicing' (their senders retransmit them
   * to the TCBs that replace this stage); retransmissions and ACKs still pass. `fn` runs
   * once each peer has acknowledged everything forwarded to it. Pass null to cancel.
   */
  quiesceThen(fn: (() => void) | null): void {
    this.quiesce = fn
    if (fn !== null) this.checkWatches()
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
    if (q !== null && this.ended === null && this.quiet) {
      this.quiesce = null
      q()
    }
  }

  /**
   * Rewrites the segment at `tcp` for the other connection. Returns the bytes chopped from
   * the front (>= 0), or -1 after dropping the message.
   */
  protected rewrite(msg: Msg, dir: DirT, tcp: number, srcIp: number, dstIp: number): number {
    const v = msg.vnet
    if (!this.trustChecksums && !(v !== null && (v.flags & 3) !== 0)) {
      const len = msg.end - tcp
      if (len >= 20 && checksum(msg.buf, tcp, len, pseudoHeaderSum(srcIp, dstIp, 6, len)) !== 0) {
        this.drop(msg, 'bad-checksum')
        return -1
      }
    }
    if (this.quiesce !== null || this.tap !== null) {
      if (this.slowChecks(msg, dir, tcp)) return -1
    }
    const forward = dir === Dir.Forward
    const r = rewriteSegment(msg.buf, tcp, msg.end, srcIp, dstIp, forward ? this.ab : this.ba, forward ? this.ba : this.ab)
    if (typeof r === 'string') {
      this.drop(msg, r)
      return -1
    }
    if (this.idleTimer !== null) this.lastActivity = msg.rxTime > 0 ? msg.rxTime : this.scheduler!.now()
    return r
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

  /** Off the fast path: the unsplice quiesce filter and the tap. Returns true if it dropped `msg`. */
  private slowChecks(msg: Msg, dir: DirT, tcp: number): boolean {
    const buf = msg.buf
    const d = dir === Dir.Forward ? this.ab : this.ba
    if (msg.end - tcp < 20) return false // rewrite drops it
    const hlen = (buf[tcp + TcpField.DATA_OFF]! >>> 4) << 2
    const seq = get32(buf, tcp + TcpField.SEQ)
    const flags = buf[tcp + TcpField.FLAGS]!
    const len = msg.end - tcp - hlen
    const segEnd = seqAdd(seq, len + ((flags & TcpFlag.FIN) !== 0 ? 1 : 0))
    if (this.quiesce !== null && (flags & TcpFlag.RST) === 0 && seqGt(segEnd, d.highSeq)) {
      this.drop(msg, 'unsplicing')
      return true
    }
    if (this.tap !== null && len > 0 && seqGt(seqAdd(seq, len), d.highSeq)) {
      // Only bytes never forwarded before: a retransmission is not new data.
      const from = seqGt(d.highSeq, seq) ? seqDiff(d.highSeq, seq) : 0
      if (from < len) this.tap(dir === Dir.Forward ? 'ab' : 'ba', buf.slice(tcp + hlen + from, msg.end))
    }
    return false
  }

  /** Ends the splice (idempotent): stops the idle timer and tells the owner. */
  end(why: FwdEnd): void {
    if (this.ended !== null) return
    this.ended = why
    this.idleTimer?.cancel()
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
      ended: this.ended ?? false,
    }
  }

  /** Detaching from the path stops the idle timer. */
  override detached(): void {
    this.idleTimer?.cancel()
  }

  private checkIdle(now: number): void {
    if (this.ended !== null) return
    const quiet = now - this.lastActivity
    if (quiet >= this.idleMs) this.end('idle')
    else this.idleTimer!.set(this.idleMs - quiet)
  }
}
