/**
 * IPFWD-SHARED: IP/FWD for many spliced connections on one path (Scout §IV: IP/FWD on a
 * new path; issue 6: "a few hundred bytes per connection at most"). Each connection is a
 * row of a {@link FwdTable}; the stage finds the row by the incoming 4-tuple, loads it
 * into a scratch {@link IpFwdStage}'s two directions, runs that stage's own code on the
 * datagram (one implementation of the rewrite: byte for byte IP/FWD's output, drops and
 * counters), and stores the changed fields back.
 * Consumes: IPv4 datagrams, protocol 6, unfragmented, of a connection in the table; `msg.off`
 *           at the IP header (ETH below popped its header), in either path direction: the
 *           row says which splice direction (ab or ba) the segment belongs to.
 * Produces: the rewritten datagram, on to the other end of the path, `msg.nextHop` from the row.
 * Drops:    IP/FWD's ('bad-ip-header', 'not-tcp', 'fragment', 'bad-ip-checksum', 'bad-checksum',
 *           'syn-on-spliced', 'blind-injection', 'truncated', 'below-splice-base'), and
 *           'closed' (no row: the connection ended after the segment was classified).
 * State:    the table (176 bytes per connection plus 16 of index, both doubling as they grow: offsets, shifts, highest seq, last
 *           ack/window/TSval, FIN, counters, next hops, last activity), one sweep timer.
 * Ends:     a forwarded RST ends the row; so does the ACK of the second FIN (after `lingerMs`
 *           of forwarding late retransmissions); `idleMs` without a segment (a coarse sweep
 *           per table, not a timer per row). The owner hears each end ({@link SharedIpFwdConfig.onEnd}).
 * Inspect:  stats() (rows, per-direction segments/bytes/chopped summed over live and ended rows), rowState(row).
 * @module
 */
import { get32 } from '../../core/bytes.js'
import type { Msg } from '../../core/msg.js'
import type { Scheduler } from '../../core/scheduler.js'
import { Dir, Stage, type Dir as DirT } from '../../core/stage.js'
import type { Timer } from '../../core/timers.js'
import { TcpField, TcpFlag } from '../tcp/segment.js'
import { IpFwdStage } from './ipfwd.js'
import type { FwdDirection } from './rewrite.js'
import { DIR_WORDS, DirWord, FwdTable, RowState, RowWord, scratchDirection } from './shared-table.js'
import type { FwdDirectionState, FwdEnd, FwdState } from './stage.js'

/** Configuration of a {@link SharedIpFwdStage}. */
export interface SharedIpFwdConfig {
  /** Clock and timers (the sweep). */
  scheduler: Scheduler
  /** See {@link FwdConfig.trustChecksums} [false]. */
  trustChecksums?: boolean
  /** End a row after this long without a segment [0: never]. */
  idleMs?: number
  /** Keep forwarding a row this long after both FINs were acknowledged [0: end at once]. */
  lingerMs?: number
  /** Called once per row when it ends, with the owner handle given to {@link SharedIpFwdStage.add}; the row is free already. */
  onEnd?: (owner: number, why: FwdEnd) => void
  /** Initial row capacity (the table doubles as needed) [16]. */
  capacity?: number
}

/** The scratch IP/FWD stage: IpFwdStage's code, with its drops and its output redirected to the shared stage. */
class RowRewriter extends IpFwdStage {
  private readonly owner: SharedIpFwdStage

  constructor(owner: SharedIpFwdStage, trustChecksums: boolean) {
    super({ ab: scratchDirection(), ba: scratchDirection(), abNextHop: 0, baNextHop: 0, trustChecksums })
    this.owner = owner
  }

  override drop(msg: Msg, reason: string): void {
    this.owner.drop(msg, reason)
  }

  protected override forward(msg: Msg, _dir: DirT, tcp: number): void {
    this.owner.rewritten(msg, tcp)
  }
}

/** A row taken out of the table ({@link SharedIpFwdStage.take}). */
export interface TakenRow {
  /** A -> B, loaded from the row. */
  ab: FwdDirection
  /** B -> A. */
  ba: FwdDirection
  /** A's segments entered the path at end 1. */
  reversed: boolean
}

/** Totals of rows that ended (so stats() keep counting them). */
interface EndedTotals {
  rows: number
  segmentsAB: number
  segmentsBA: number
  bytesAB: number
  bytesBA: number
  chopped: number
}

/** The shared IP/FWD stage. */
export class SharedIpFwdStage extends Stage {
  /** The rows. */
  readonly table: FwdTable
  /** Called once per row end (see {@link SharedIpFwdConfig.onEnd}). */
  onEnd: ((owner: number, why: FwdEnd) => void) | null
  private readonly rw: RowRewriter
  private readonly scheduler: Scheduler
  private readonly idleMs: number
  private readonly lingerMs: number
  private readonly sweepTimer: Timer
  private lingering = 0
  private readonly ended: EndedTotals = { rows: 0, segmentsAB: 0, segmentsBA: 0, bytesAB: 0, bytesBA: 0, chopped: 0 }
  private readonly endsBy: Record<FwdEnd, number> = { fin: 0, rst: 0, idle: 0 }
  /** The datagram being rewritten: its row, splice direction (0: ab) and path direction. */
  private curRow = -1
  private curD = 0
  private curDir: DirT = Dir.Forward
  /**
   * The row the scratch directions hold (-1: none). A row's segments often come in runs (a
   * burst one way, its ACKs the other): the scratch is the row's state as long as only
   * `rewritten` stores into the row (it stores what the scratch holds) and nothing else
   * loads into the scratch, so the next segment of the same row skips the load.
   */
  private loaded = -1

  /** Creates the stage with an empty table. */
  constructor(cfg: SharedIpFwdConfig) {
    super('IPFWD-SHARED', Dir.Forward)
    this.table = new FwdTable(cfg.capacity ?? 16)
    this.scheduler = cfg.scheduler
    this.idleMs = cfg.idleMs ?? 0
    this.lingerMs = cfg.lingerMs ?? 0
    this.onEnd = cfg.onEnd ?? null
    this.rw = new RowRewriter(this, cfg.trustChecksums ?? false)
    this.sweepTimer = this.scheduler.timer(now => this.sweep(now))
  }

  /** Connections in the table. */
  get rows(): number {
    return this.table.size
  }

  /**
   * Adds a spliced connection from its two live directions (the preliminary FWD's, with
   * timestamps settled) and next hops; `owner` is the caller's handle, reported at the end.
   * With `reversed`, A's segments enter the path at end 1 (A's interface is the one end 1
   * faces). Returns the row. If both FINs were already acknowledged, the caller should
   * {@link SharedIpFwdStage.end} it with 'fin'.
   */
  add(ab: FwdDirection, ba: FwdDirection, abNextHop: number, baNextHop: number, owner: number, reversed = false): number {
    const row = this.table.insert(ab, ba, abNextHop, baNextHop, this.scheduler.now(), owner, reversed ? RowState.REVERSED : 0)
    if (row === this.loaded) this.loaded = -1
    this.armSweep()
    return row
  }

  /**
   * The path end an incoming segment's 4-tuple enters at (0 or 1), or -1 if no row has it:
   * A's segments at end 0 unless the row is reversed, B's at the other end.
   */
  endOf(src: number, dst: number, ports: number): number {
    const e = this.table.lookup(src, dst, ports)
    if (e < 0) return -1
    return (e & 1) ^ ((this.table.word(e >> 1, RowWord.STATE) & RowState.REVERSED) !== 0 ? 1 : 0)
  }

  /** The row of an incoming segment's 4-tuple (src, dst, `srcPort << 16 | dstPort`), or -1. */
  rowOf(src: number, dst: number, ports: number): number {
    const e = this.table.lookup(src, dst, ports)
    return e < 0 ? -1 : e >> 1
  }

  /** Rewrites and forwards one datagram of a connection in the table. */
  deliver(msg: Msg, dir: DirT): void {
    const b = msg.buf
    const ip = msg.off
    if (msg.end - ip < 20 || b[ip]! >>> 4 !== 4) return this.drop(msg, 'bad-ip-header')
    const ihl = (b[ip]! & 0xf) << 2
    if (ihl < 20 || ip + ihl > msg.end) return this.drop(msg, 'bad-ip-header')
    if (ip + ihl + 4 > msg.end) return this.drop(msg, 'truncated')
    // As int32: a uint32 >= 2^31 passed to a call is boxed (an allocation per segment).
    const e = this.table.lookup(get32(b, ip + 12) | 0, get32(b, ip + 16) | 0, get32(b, ip + ihl) | 0)
    if (e < 0) return this.drop(msg, 'closed')
    const row = e >> 1
    const d = e & 1
    const rw = this.rw
    if (row !== this.loaded) {
      this.table.load(row, 0, rw.ab)
      this.table.load(row, 1, rw.ba)
      this.loaded = row
    }
    this.curRow = row
    this.curD = d
    this.curDir = dir
    // IP/FWD's own code; it calls back `rewritten` or `drop`.
    rw.deliver(msg, d as DirT)
  }

  /** @internal The scratch IP/FWD rewrote `msg` (TCP header at `tcp`): store the row, send it on, end the row on RST or the last FIN's ACK. */
  rewritten(msg: Msg, tcp: number): void {
    const row = this.curRow
    const d = this.curD
    const rw = this.rw
    const t = this.table
    const rst = (msg.buf[tcp + TcpField.FLAGS]! & TcpFlag.RST) !== 0
    const fin = !rst && rw.finsAcked()
    t.storeLive(row, d, d === 0 ? rw.ab : rw.ba)
    t.setWord(row, RowWord.LAST, msg.rxTime > 0 ? msg.rxTime : this.scheduler.now())
    msg.nextHop = t.word(row, d * DIR_WORDS + DirWord.NEXT_HOP) >>> 0
    this.send(msg, this.curDir)
    if (rst) this.rowEnded(row, 'rst')
    else if (fin) this.rowEnded(row, 'fin')
  }

  /**
   * The engine's end semantics (paths/proxy/splice.ts `ended`): the last FIN's ACK starts
   * the linger (the row keeps forwarding: that ACK may have been lost, and only the other
   * peer can send it again), a RST or idle while lingering ends it as 'fin', anything else
   * ends it now.
   */
  private rowEnded(row: number, why: FwdEnd): void {
    const lingering = (this.table.word(row, RowWord.STATE) & RowState.LINGERING) !== 0
    if (lingering && why !== 'fin') return this.finish(row, 'fin')
    if (why === 'fin' && this.lingerMs > 0) {
      if (lingering) return
      this.table.setWord(row, RowWord.STATE, this.table.word(row, RowWord.STATE) | RowState.LINGERING)
      this.table.setWord(row, RowWord.LINGER_AT, this.scheduler.now() + this.lingerMs)
      this.lingering++
      this.armSweep()
      return
    }
    this.finish(row, why)
  }

  /** Ends a row now (idempotent): its counters go to the totals, the row is freed, the owner is told. */
  finish(row: number, why: FwdEnd): void {
    const t = this.table
    if (!t.isLive(row)) return
    if ((t.word(row, RowWord.STATE) & RowState.LINGERING) !== 0) this.lingering--
    const owner = t.word(row, RowWord.OWNER)
    const rw = this.rw
    t.load(row, 0, rw.ab)
    t.load(row, 1, rw.ba)
    this.loaded = -1
    const e = this.ended
    e.rows++
    e.segmentsAB += rw.ab.segments
    e.segmentsBA += rw.ba.segments
    e.bytesAB += rw.ab.bytes
    e.bytesBA += rw.ba.bytes
    e.chopped += rw.ab.chopped + rw.ba.chopped
    this.endsBy[why]++
    t.delete(row)
    this.onEnd?.(owner, why)
  }

  /** True if both FINs of `row` were acknowledged (a splice may finish draining after them). */
  finsAcked(row: number): boolean {
    this.table.load(row, 0, this.rw.ab)
    this.table.load(row, 1, this.rw.ba)
    this.loaded = row
    return this.rw.finsAcked()
  }

  /**
   * Takes a row out of the table without ending it (an unsplice materializes it as a
   * per-connection IP/FWD stage): its two directions, or null if it is free. Its
   * counters leave with it.
   */
  take(row: number): TakenRow | null {
    const t = this.table
    if (!t.isLive(row)) return null
    const st = t.word(row, RowWord.STATE)
    if ((st & RowState.LINGERING) !== 0) this.lingering--
    const ab = scratchDirection()
    const ba = scratchDirection()
    t.load(row, 0, ab)
    t.load(row, 1, ba)
    t.delete(row)
    if (row === this.loaded) this.loaded = -1
    return { ab, ba, reversed: (st & RowState.REVERSED) !== 0 }
  }

  /** Starts the end of `row` as a forwarded segment would (the linger for 'fin'). */
  end(row: number, why: FwdEnd): void {
    if (this.table.isLive(row)) this.rowEnded(row, why)
  }

  /** Ends every row (the forwarder closes): `why` is reported for each. */
  endAll(why: FwdEnd): void {
    const t = this.table
    for (let r = 0; r < t.highWater; r++) if (t.isLive(r)) this.finish(r, why)
  }

  /** One row's state (the same shape as {@link FwdStage.state}), or null if it is free. */
  rowState(row: number): FwdState | null {
    if (!this.table.isLive(row)) return null
    const ab = scratchDirection()
    const ba = scratchDirection()
    this.table.load(row, 0, ab)
    this.table.load(row, 1, ba)
    return { ab: snapshot(ab), ba: snapshot(ba), ended: false }
  }

  /** Aggregated counters: rows now and ended, segments/bytes per direction and chopped over all rows. */
  override extraStats(): Record<string, number | string | boolean> {
    const t = this.table
    const e = this.ended
    let segmentsAB = e.segmentsAB
    let segmentsBA = e.segmentsBA
    let bytesAB = e.bytesAB
    let bytesBA = e.bytesBA
    let chopped = e.chopped
    const d = scratchDirection()
    for (let r = 0; r < t.highWater; r++) {
      if (!t.isLive(r)) continue
      t.load(r, 0, d)
      segmentsAB += d.segments
      bytesAB += d.bytes
      chopped += d.chopped
      t.load(r, 1, d)
      segmentsBA += d.segments
      bytesBA += d.bytes
      chopped += d.chopped
    }
    return {
      rows: t.size, rowCapacity: t.capacity, lingering: this.lingering, rowsEnded: e.rows,
      endedFin: this.endsBy.fin, endedRst: this.endsBy.rst, endedIdle: this.endsBy.idle,
      segmentsAB, segmentsBA, bytesAB, bytesBA, chopped,
    }
  }

  /** `ipfwd-shared#1 (3 rows)` */
  override describe(): string {
    return `${this.name} (${this.table.size} rows)`
  }

  /** Detaching stops the sweep (the rows stay: the owner ends them). */
  override detached(): void {
    this.sweepTimer.cancel()
  }

  /** Period of the coarse sweep: a quarter of the shortest deadline in use, or 0 (none needed). */
  private sweepPeriod(): number {
    let p = Infinity
    if (this.idleMs > 0 && this.table.size > 0) p = this.idleMs
    if (this.lingering > 0 && this.lingerMs < p) p = this.lingerMs
    return p === Infinity ? 0 : Math.max(1, p / 4)
  }

  private armSweep(): void {
    const p = this.sweepPeriod()
    if (p > 0 && !this.sweepTimer.armed) this.sweepTimer.set(p)
  }

  /** One pass over the rows: lingers that are over, rows idle for `idleMs`. */
  private sweep(now: number): void {
    const t = this.table
    const n = now | 0
    for (let r = 0; r < t.highWater; r++) {
      const st = t.word(r, RowWord.STATE)
      if ((st & RowState.LIVE) === 0) continue
      if ((st & RowState.LINGERING) !== 0 && ((n - t.word(r, RowWord.LINGER_AT)) | 0) >= 0) this.finish(r, 'fin')
      else if (this.idleMs > 0 && ((n - t.word(r, RowWord.LAST)) | 0) >= this.idleMs) this.rowEnded(r, 'idle')
    }
    this.armSweep()
  }
}

function snapshot(d: FwdDirection): FwdDirectionState {
  return { highSeq: d.highSeq, lastAck: d.lastAck, window: d.window, finSeen: d.finSeen, segments: d.segments, bytes: d.bytes, chopped: d.chopped, tsLastIn: d.tsLastIn }
}
