/**
 * FwdTable: the state of many spliced connections in typed arrays, one fixed-stride row
 * per connection, for the shared IP/FWD path (Scout §III-C: "under 36 bytes of FWD
 * state"; issue 6: "a few hundred bytes per connection at most").
 *
 * ```
 *   i32  [ row 0: dir ab (18 words) | dir ba (18 words) | LAST STATE LINGER OWNER ] [ row 1 ...
 *   f64  [ row 0: bytes ab, bytes ba ] [ row 1 ...          (176 bytes per row in all)
 *   index (open addressing, linear probing, backward-shift delete):
 *        slot -> (row << 1 | dir), -1 empty; the key (src ip, dst ip, src port << 16 | dst port
 *        of the INCOMING segment) is not stored: it is the other direction's outgoing
 *        addresses and ports, swapped, read from the row itself
 *   free list: freed rows linked through their OWNER word, reused first; rows and index
 *   grow by doubling
 * ```
 * Words hold u32 values as `| 0` (read them back with `>>> 0`). Nothing here allocates
 * per lookup; growing allocates new arrays (amortized O(1) per insert).
 * @module
 */
import { mix } from '../../core/flow-table.js'
import { FwdDirection, type TsMode } from './rewrite.js'

/** Word offsets inside one direction's block of a row. */
export const DirWord = {
  /** {@link FwdDirection.outSrcIp}. */
  OUT_SRC_IP: 0,
  /** {@link FwdDirection.outDstIp}. */
  OUT_DST_IP: 1,
  /** `outSrcPort << 16 | outDstPort`. */
  OUT_PORTS: 2,
  /** {@link FwdDirection.seqOffset}. */
  SEQ_OFFSET: 3,
  /** {@link FwdDirection.ackOffset}. */
  ACK_OFFSET: 4,
  /** {@link FwdDirection.tsvalOffset}. */
  TSVAL_OFFSET: 5,
  /** {@link FwdDirection.tsecrOffset}. */
  TSECR_OFFSET: 6,
  /** {@link FwdDirection.base}. */
  BASE: 7,
  /** {@link FwdDirection.highSeq}. */
  HIGH_SEQ: 8,
  /** {@link FwdDirection.lastAck}. */
  LAST_ACK: 9,
  /** {@link FwdDirection.tsLastIn}. */
  TS_LAST_IN: 10,
  /** {@link FwdDirection.window}. */
  WINDOW: 11,
  /** {@link FwdDirection.maxWindow}. */
  MAX_WINDOW: 12,
  /** {@link FwdDirection.finSeq}. */
  FIN_SEQ: 13,
  /** inShift (bits 0-3), outShift (4-7), tsMode (8-9), sack (10), finSeen (11), outMss (16-31). */
  MISC: 14,
  /** Next-hop address of this direction's datagrams. */
  NEXT_HOP: 15,
  /** {@link FwdDirection.chopped}. */
  CHOPPED: 16,
  /** {@link FwdDirection.segments}, modulo 2^32 (per connection; the stage's totals do not wrap). */
  SEGMENTS: 17,
} as const

/** Words per direction block. */
export const DIR_WORDS = 18

/** Word offsets of the per-row words after the two direction blocks. */
export const RowWord = {
  /** Last activity, ms of the scheduler's clock, as a wrapping int32 (compare by difference). */
  LAST: 2 * DIR_WORDS,
  /** {@link RowState} bits. */
  STATE: 2 * DIR_WORDS + 1,
  /** While lingering: when the linger ends (wrapping int32 ms). */
  LINGER_AT: 2 * DIR_WORDS + 2,
  /** The owner's handle (the session id), for dumps and the end report; in a free row, the next free row (-1: none). */
  OWNER: 2 * DIR_WORDS + 3,
} as const

/** Int32 words per row. */
export const ROW_WORDS = 2 * DIR_WORDS + 4

/** Float64 counters per row: payload bytes, per direction. */
export const ROW_F64 = 2

/** Bits of {@link RowWord.STATE}. */
export const RowState = {
  /** The row holds a connection. */
  LIVE: 1,
  /** Both FINs were acknowledged: forwarding late retransmissions until LINGER_AT. */
  LINGERING: 2,
  /** The owner's flag: A's segments enter the path at end 1 (see SharedIpFwdPath). */
  REVERSED: 4,
} as const


/** Smallest row capacity. */
const MIN_ROWS = 16

/** Rows of spliced-connection state with a 4-tuple index. */
export class FwdTable {
  /** The int32 words of all rows ({@link ROW_WORDS} per row). Replaced when the table grows: read it per use. */
  i32: Int32Array
  /** The float64 counters of all rows ({@link ROW_F64} per row). Replaced when the table grows. */
  f64: Float64Array
  private index: Int32Array
  private mask: number
  private rowCap: number
  /** First free row below `top` (-1: none); each free row's OWNER word holds the next. */
  private freeHead = -1
  /** Rows ever handed out (the high-water mark; rows below it are live or on the free list). */
  private top = 0
  private live = 0

  /** Creates a table with room for `capacity` rows before it first grows. */
  constructor(capacity = MIN_ROWS) {
    let c = MIN_ROWS
    while (c < capacity) c <<= 1
    this.i32 = new Int32Array(c * ROW_WORDS)
    this.f64 = new Float64Array(c * ROW_F64)
    this.rowCap = c
    // Two index entries per row at a load factor of at most 1/2.
    this.index = new Int32Array(c * 4).fill(-1)
    this.mask = c * 4 - 1
  }

  /** Rows in use. */
  get size(): number {
    return this.live
  }

  /** Rows allocated (used or free). */
  get capacity(): number {
    return this.rowCap
  }

  /** Rows handed out so far that may be live (for sweeps: iterate `0 .. highWater`). */
  get highWater(): number {
    return this.top
  }

  /** True if `row` holds a connection. */
  isLive(row: number): boolean {
    return row >= 0 && row < this.top && (this.i32[row * ROW_WORDS + RowWord.STATE]! & RowState.LIVE) !== 0
  }

  /** The index entry (`row << 1 | dir`) for an incoming segment's key, or -1. */
  lookup(src: number, dst: number, ports: number): number {
    const idx = this.index
    const w = this.i32
    src |= 0
    dst |= 0
    ports |= 0
    let i = mix(src, dst, ports) & this.mask
    for (;;) {
      const e = idx[i]!
      if (e < 0) return -1
      // The key of direction d is the other direction's outgoing tuple, swapped.
      const o = (e >> 1) * ROW_WORDS + ((e & 1) ^ 1) * DIR_WORDS
      if (w[o + DirWord.OUT_DST_IP] === src && w[o + DirWord.OUT_SRC_IP] === dst && swapPorts(w[o + DirWord.OUT_PORTS]!) === ports) return e
      i = (i + 1) & this.mask
    }
  }

  /**
   * Adds a connection: both directions' state (copied from `ab` and `ba`), their next
   * hops, `now` as its last activity, `owner` (a handle of the caller's) and `flags`
   * ({@link RowState.REVERSED} only). Returns the
   * row. Throws if a direction's key is already in the table (a caller bug: the flow is
   * still spliced).
   */
  insert(ab: FwdDirection, ba: FwdDirection, abNextHop: number, baNextHop: number, now: number, owner: number, flags = 0): number {
    if (this.lookup(ba.outDstIp, ba.outSrcIp, packPorts(ba.outDstPort, ba.outSrcPort)) >= 0 ||
      this.lookup(ab.outDstIp, ab.outSrcIp, packPorts(ab.outDstPort, ab.outSrcPort)) >= 0) {
      throw new Error('FwdTable.insert: the connection is already in the table')
    }
    if (this.freeHead < 0 && this.top === this.capacity) this.grow()
    let row = this.freeHead
    if (row >= 0) this.freeHead = this.i32[row * ROW_WORDS + RowWord.OWNER]!
    else row = this.top++
    const w = this.i32
    const o = row * ROW_WORDS
    w.fill(0, o, o + ROW_WORDS)
    this.store(row, 0, ab)
    this.store(row, 1, ba)
    w[o + DirWord.NEXT_HOP] = abNextHop | 0
    w[o + DIR_WORDS + DirWord.NEXT_HOP] = baNextHop | 0
    w[o + RowWord.LAST] = now | 0
    w[o + RowWord.STATE] = RowState.LIVE | (flags & RowState.REVERSED)
    w[o + RowWord.OWNER] = owner | 0
    this.live++
    // Keys: direction ab's segments come from A's peer (ba's destination) to us on A.
    this.indexAdd(ba.outDstIp, ba.outSrcIp, packPorts(ba.outDstPort, ba.outSrcPort), row << 1)
    this.indexAdd(ab.outDstIp, ab.outSrcIp, packPorts(ab.outDstPort, ab.outSrcPort), (row << 1) | 1)
    return row
  }

  /** Frees a row: its index entries go, the row is zeroed and reused by a later insert. */
  delete(row: number): void {
    if (!this.isLive(row)) return
    const w = this.i32
    const o = row * ROW_WORDS
    for (const d of [0, 1]) {
      const b = o + (d ^ 1) * DIR_WORDS
      this.indexRemove(w[b + DirWord.OUT_DST_IP]!, w[b + DirWord.OUT_SRC_IP]!, swapPorts(w[b + DirWord.OUT_PORTS]!), (row << 1) | d)
    }
    w.fill(0, o, o + ROW_WORDS)
    this.f64.fill(0, row * ROW_F64, (row + 1) * ROW_F64)
    w[o + RowWord.OWNER] = this.freeHead
    this.freeHead = row
    this.live--
  }

  /** Copies direction `dir` (0: ab, 1: ba) of `row` into `d`, every field. */
  load(row: number, dir: number, d: FwdDirection): void {
    const w = this.i32
    const o = row * ROW_WORDS + dir * DIR_WORDS
    d.outSrcIp = w[o + DirWord.OUT_SRC_IP]! >>> 0
    d.outDstIp = w[o + DirWord.OUT_DST_IP]! >>> 0
    const p = w[o + DirWord.OUT_PORTS]!
    d.outSrcPort = p >>> 16
    d.outDstPort = p & 0xffff
    d.seqOffset = w[o + DirWord.SEQ_OFFSET]! >>> 0
    d.ackOffset = w[o + DirWord.ACK_OFFSET]! >>> 0
    d.tsvalOffset = w[o + DirWord.TSVAL_OFFSET]! >>> 0
    d.tsecrOffset = w[o + DirWord.TSECR_OFFSET]! >>> 0
    d.base = w[o + DirWord.BASE]! >>> 0
    d.highSeq = w[o + DirWord.HIGH_SEQ]! >>> 0
    d.lastAck = w[o + DirWord.LAST_ACK]! >>> 0
    d.tsLastIn = w[o + DirWord.TS_LAST_IN]! >>> 0
    d.window = w[o + DirWord.WINDOW]! >>> 0
    d.maxWindow = w[o + DirWord.MAX_WINDOW]! >>> 0
    d.finSeq = w[o + DirWord.FIN_SEQ]! >>> 0
    const m = w[o + DirWord.MISC]!
    d.inShift = m & 0xf
    d.outShift = (m >>> 4) & 0xf
    d.tsMode = ((m >>> 8) & 3) as TsMode
    d.sack = (m & (1 << 10)) !== 0
    d.finSeen = (m & (1 << 11)) !== 0
    d.outMss = m >>> 16
    d.chopped = w[o + DirWord.CHOPPED]! >>> 0
    d.segments = w[o + DirWord.SEGMENTS]! >>> 0
    d.bytes = this.f64[row * ROW_F64 + dir]!
  }

  /** Copies `d` into direction `dir` of `row` (the inverse of {@link FwdTable.load}). */
  store(row: number, dir: number, d: FwdDirection): void {
    const w = this.i32
    const o = row * ROW_WORDS + dir * DIR_WORDS
    w[o + DirWord.OUT_SRC_IP] = d.outSrcIp
    w[o + DirWord.OUT_DST_IP] = d.outDstIp
    w[o + DirWord.OUT_PORTS] = packPorts(d.outSrcPort, d.outDstPort)
    w[o + DirWord.SEQ_OFFSET] = d.seqOffset
    w[o + DirWord.ACK_OFFSET] = d.ackOffset
    w[o + DirWord.TSVAL_OFFSET] = d.tsvalOffset
    w[o + DirWord.TSECR_OFFSET] = d.tsecrOffset
    this.storeLive(row, dir, d)
    w[o + DirWord.MISC] = (d.inShift & 0xf) | ((d.outShift & 0xf) << 4) | ((d.tsMode & 3) << 8) | (d.sack ? 1 << 10 : 0) |
      (d.finSeen ? 1 << 11 : 0) | ((d.outMss & 0xffff) << 16)
  }

  /**
   * Copies the fields a rewrite changes ({@link rewriteSegment}: highest seq, base, last
   * ack, last TSval, windows, FIN, counters) from `d` into direction `dir` of `row`.
   */
  storeLive(row: number, dir: number, d: FwdDirection): void {
    const w = this.i32
    const o = row * ROW_WORDS + dir * DIR_WORDS
    w[o + DirWord.BASE] = d.base
    w[o + DirWord.HIGH_SEQ] = d.highSeq
    w[o + DirWord.LAST_ACK] = d.lastAck
    w[o + DirWord.TS_LAST_IN] = d.tsLastIn
    w[o + DirWord.WINDOW] = d.window
    w[o + DirWord.MAX_WINDOW] = d.maxWindow
    w[o + DirWord.FIN_SEQ] = d.finSeq
    w[o + DirWord.CHOPPED] = d.chopped
    if (d.finSeen) w[o + DirWord.MISC] = w[o + DirWord.MISC]! | (1 << 11)
    w[o + DirWord.SEGMENTS] = d.segments
    this.f64[row * ROW_F64 + dir] = d.bytes
  }

  /** A word of `row` (see {@link DirWord}, {@link RowWord}). */
  word(row: number, off: number): number {
    return this.i32[row * ROW_WORDS + off]!
  }

  /** Sets a word of `row`. */
  setWord(row: number, off: number, v: number): void {
    this.i32[row * ROW_WORDS + off] = v | 0
  }

  private indexAdd(src: number, dst: number, ports: number, entry: number): void {
    const idx = this.index
    let i = mix(src | 0, dst | 0, ports | 0) & this.mask
    while (idx[i]! >= 0) i = (i + 1) & this.mask
    idx[i] = entry
  }

  private indexRemove(src: number, dst: number, ports: number, entry: number): void {
    const idx = this.index
    let i = mix(src | 0, dst | 0, ports | 0) & this.mask
    while (idx[i] !== entry) {
      if (idx[i]! < 0) return
      i = (i + 1) & this.mask
    }
    // Backward-shift deletion (linear probing): pull later entries of the cluster back.
    let j = i
    for (;;) {
      idx[j] = -1
      let n = j
      for (;;) {
        n = (n + 1) & this.mask
        const e = idx[n]!
        if (e < 0) return
        const home = this.homeOf(e)
        // Move n into j unless its home lies cyclically in (j, n].
        const inRange = j <= n ? home > j && home <= n : home > j || home <= n
        if (!inRange) break
      }
      idx[j] = idx[n]!
      j = n
    }
  }

  /** The home slot of an index entry, from its row's key. */
  private homeOf(e: number): number {
    const w = this.i32
    const o = (e >> 1) * ROW_WORDS + ((e & 1) ^ 1) * DIR_WORDS
    return mix(w[o + DirWord.OUT_DST_IP]!, w[o + DirWord.OUT_SRC_IP]!, swapPorts(w[o + DirWord.OUT_PORTS]!)) & this.mask
  }

  private grow(): void {
    const c = this.capacity * 2
    const i32 = new Int32Array(c * ROW_WORDS)
    i32.set(this.i32)
    const f64 = new Float64Array(c * ROW_F64)
    f64.set(this.f64)
    this.i32 = i32
    this.f64 = f64
    this.rowCap = c
    const old = this.index
    this.index = new Int32Array(c * 4).fill(-1)
    this.mask = c * 4 - 1
    for (let i = 0; i < old.length; i++) {
      const e = old[i]!
      if (e < 0) continue
      let k = this.homeOf(e)
      while (this.index[k]! >= 0) k = (k + 1) & this.mask
      this.index[k] = e
    }
  }
}

/** `a << 16 | b` as an int32 (the packing of {@link DirWord.OUT_PORTS} and of index keys). */
export function packPorts(a: number, b: number): number {
  return ((a & 0xffff) << 16) | (b & 0xffff)
}

/** Swaps the two 16-bit halves of a packed port pair (an outgoing pair is the reverse direction's incoming key). */
function swapPorts(p: number): number {
  return ((p & 0xffff) << 16) | (p >>> 16)
}

/** A FwdDirection to load rows into (its constructor needs a configuration). */
export function scratchDirection(): FwdDirection {
  return new FwdDirection({
    outSrcIp: 0, outDstIp: 0, outSrcPort: 0, outDstPort: 0, seqOffset: 0, ackOffset: 0, inShift: 0, outShift: 0,
    tsMode: 0, tsvalOffset: 0, tsecrOffset: 0, sack: false, base: 0, highSeq: 0, window: 0,
  })
}
