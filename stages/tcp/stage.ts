/**
 * TCP: one connection's control block as a stage (the pure {@link Tcb} adapted to
 * `deliver(msg, dir)`).
 * Consumes: up: a segment with `msg.off` at the TCP header and `msg.l3` at the IPv4 header
 *           (the IP stage below popped it); down: application bytes from a stage above
 *           (PROXY), copied into the send buffer.
 * Produces: down: segments with `off` at the TCP header and the checksum filled over the
 *           pseudo-header (localIp, remoteIp); the IP stage below pushes its header.
 *           up: in-order data, to the attached {@link TcpStage.app} (the socket) or, with
 *           none, as Msgs to the stage above.
 * Drops:    'short-header' | 'bad-data-offset' | 'bad-checksum' (segment checks),
 *           'wrong-ports', 'send-buffer-full' (data from above that did not fit), and every
 *           TCB reason: {@link TCP_STAGE_DROP_REASONS} lists them all.
 * State:    the TCB (sequence variables, windows, buffers, negotiated options, timers).
 * Inspect:  stats() (extra: state, seq variables, counters), `tcb.snapshot()`.
 * @module
 */
import { get16 } from '../../core/bytes.js'
import { allocMsg, type Msg } from '../../core/msg.js'
import { Dir, Stage } from '../../core/stage.js'
import type { Timer } from '../../core/timers.js'
import { checkSegment, fillTcpChecksum, SEGMENT_DROP_REASONS } from './segment.js'
import { Tcb, TCB_DROP_REASONS, type EstablishedParams, type TcbConfig, type TcbHost } from './tcb.js'

/** Every reason a {@link TcpStage} drops a message for (counters in `stats().drops`). */
export const TCP_STAGE_DROP_REASONS = [
  ...SEGMENT_DROP_REASONS,
  /** A segment whose ports are not this connection's. */
  'wrong-ports',
  /** Data from the stage above that did not fit the send buffer. */
  'send-buffer-full',
  ...TCB_DROP_REASONS,
] as const
/** One of {@link TCP_STAGE_DROP_REASONS}. */
export type TcpStageDropReason = (typeof TCP_STAGE_DROP_REASONS)[number]

/** Largest data Msg {@link TcpStage.pushUp} sends up (one full-sized segment's payload). */
export const PUSH_CHUNK = 1460

/** Clock and timers a TCP stage runs on (the core Scheduler is one). */
export interface TcpTimeSource {
  /** Current time in ms. */
  now(): number
  /** Creates a re-armable timer. */
  timer(callback: (now: number) => void): Timer
}

/** Something that consumes a connection's received data (the socket). */
export interface TcpApp {
  /** Called after each received segment that left in-order data readable (read it with `tcb.read`). */
  onData(): void
}

/** Options of a {@link TcpStage}. */
export interface TcpStageOptions {
  /** Clock and timers (the scheduler). */
  time: TcpTimeSource
  /** Our address (u32). */
  localIp: number
  /** The peer's address (u32). */
  remoteIp: number
  /** Our port. */
  localPort: number
  /** The peer's port. */
  remotePort: number
  /** Initial send sequence number (RFC 6528; the module computes it). */
  iss: number
  /** TSval clock offset (random per connection). */
  tsOffset?: number
  /** TCB tunables. */
  config?: TcbConfig
  /** Skip checksum verification of received segments (a device that verified them). */
  trustChecksums?: boolean
  /** Direction that is up the stack (default Forward). */
  up?: Dir
  /** Build the TCB in ESTABLISHED from spliced state (unsplice, {@link Tcb.established}). */
  established?: EstablishedParams
}

/** The TCP stage of a connection path. */
export class TcpStage extends Stage implements TcbHost {
  /** The control block. */
  readonly tcb: Tcb
  /** Our address. */
  readonly localIp: number
  /** The peer's address. */
  readonly remoteIp: number
  /** Receives data; when null, data goes up the path as Msgs. */
  app: TcpApp | null = null
  /**
   * Where finished segments go instead of down this stage's path, when set. Splicing
   * unlinks the TCP stage (Scout splice step 2) but its TCB keeps retransmitting while it
   * drains (step 3): the splice engine points this at the spliced path's output.
   */
  redirect: ((msg: Msg) => void) | null = null
  private readonly time: TcpTimeSource
  private readonly trustChecksums: boolean

  /** Creates the stage and its TCB (CLOSED; call `tcb.listen()` / `tcb.connect()`). */
  constructor(opts: TcpStageOptions) {
    super('TCP', opts.up ?? Dir.Forward)
    this.time = opts.time
    this.localIp = opts.localIp >>> 0
    this.remoteIp = opts.remoteIp >>> 0
    this.trustChecksums = opts.trustChecksums ?? false
    this.tcb = opts.established
      ? Tcb.established(this, opts.established, opts.config ?? {})
      : new Tcb(this, opts.localPort, opts.remotePort, opts.iss, opts.config ?? {}, opts.tsOffset ?? 0)
  }

  /** Segments going up are checked and fed to the TCB; data coming down is queued for sending. */
  deliver(msg: Msg, dir: Dir): void {
    if (dir === this.up) this.receive(msg)
    else this.fromAbove(msg)
  }

  /** Feeds one segment (`off` at the TCP header) to the TCB after the header and checksum checks. */
  receive(msg: Msg): void {
    // checkSegment skips the checksum when the device vouches for it (virtio-net flags).
    const bad = checkSegment(msg, this.remoteIp, this.localIp, !this.trustChecksums)
    if (bad !== null) return this.drop(msg, bad)
    const b = msg.buf
    if (get16(b, msg.off) !== this.tcb.remotePort || get16(b, msg.off + 2) !== this.tcb.localPort) return this.drop(msg, 'wrong-ports')
    this.tcb.input(msg)
    if (this.tcb.readableLength > 0) {
      const app = this.app
      if (app === null) this.pushUp(Infinity)
      else app.onData()
    }
  }

  private fromAbove(msg: Msg): void {
    const n = msg.end - msg.off
    const took = this.tcb.write(msg.buf, msg.off, n)
    if (took < n) return this.drop(msg, 'send-buffer-full')
    msg.free()
  }

  /**
   * Sends up to `max` received bytes up the path as Msgs of at most {@link PUSH_CHUNK}
   * bytes (to a PROXY stage); returns how many. Without an app this happens for every
   * byte as it arrives; a proxy with flow control calls it with the room it has.
   */
  pushUp(max: number): number {
    const tcb = this.tcb
    let moved = 0
    while (moved < max && tcb.readableLength > 0) {
      const n = Math.min(tcb.readableLength, PUSH_CHUNK, max - moved)
      const m = allocMsg(n)
      tcb.read(m.buf, m.off, n)
      m.end = m.off + n
      moved += n
      this.originate(m, this.up)
    }
    return moved
  }

  // TcbHost

  /** @internal TcbHost: current time. */
  now(): number {
    return this.time.now()
  }

  /** @internal TcbHost: a timer on the scheduler. */
  timer(callback: (now: number) => void): Timer {
    return this.time.timer(callback)
  }

  /** @internal TcbHost: checksum and send a segment down. */
  output(msg: Msg): void {
    fillTcpChecksum(msg.buf, msg.off, msg.end - msg.off, this.localIp, this.remoteIp)
    const r = this.redirect
    if (r !== null) {
      this.originated++
      r(msg)
      return
    }
    this.originate(msg, this.down)
  }

  /** Per-connection counters and the control block's main variables. */
  override extraStats(): Record<string, number | string | boolean> {
    const s = this.tcb.snapshot()
    return {
      state: s.state, sndUna: s.sndUna, sndNxt: s.sndNxt, sndWnd: s.sndWnd, rcvNxt: s.rcvNxt, rcvWnd: s.rcvWnd,
      sndBuffered: s.sndBuffered, rcvBuffered: s.rcvBuffered, cwnd: s.cwnd, srtt: s.srtt, rto: s.rto,
      ...this.tcb.counters,
    }
  }

  /** `TCP(80 > 40000 ESTABLISHED)`. */
  override describe(): string {
    return `${this.name}(${this.tcb.localPort} > ${this.tcb.remotePort} ${this.tcb.state})`
  }
}
