/**
 * Byte buffers of a TCP control block: a growable byte ring (send and receive data) and
 * the out-of-order range list of the receiver (RFC 9293 §3.10.7.4 seventh step; RFC 2018
 * §4 block ordering). Out-of-order data is stored in the receive ring at its final place,
 * so reassembly never copies twice and is bounded by the receive buffer.
 * @module
 */
import { seqDiff, seqGe, seqGt, seqLe, seqLt, type Seq } from '../../core/seq.js'

/** The allocation of a released ring, shared: it holds nothing, and the next write allocates (ensure). */
const NO_BYTES = new Uint8Array(0)

/** A FIFO of bytes in a ring that grows by doubling up to `limit`. */
export class ByteRing {
  /** Most bytes the ring may hold (raised only by {@link ByteRing.raiseLimit}). */
  limit: number
  private buf: Uint8Array
  private head = 0
  /** Bytes at the front that are valid. */
  length = 0

  /** @param limit capacity bound; @param initial first allocation (grows on demand). */
  constructor(limit: number, initial = 16384) {
    this.limit = limit
    this.buf = new Uint8Array(Math.min(limit, initial))
  }

  /** Lets the ring hold at least `n` bytes (never lowers the limit). */
  raiseLimit(n: number): void {
    if (n > this.limit) this.limit = n
  }

  /** Frees the allocation and empties the ring (it grows again on the next write). */
  release(): void {
    this.buf = NO_BYTES
    this.head = 0
    this.length = 0
  }

  /** Current allocation. */
  get capacity(): number {
    return this.buf.length
  }

  /** Makes room for positions `[0, n)` (n <= limit). */
  ensure(n: number): void {
    if (n <= this.buf.length) return
    let c = this.buf.length || 1
    while (c < n) c *= 2
    if (c > this.limit) c = this.limit
    const nb = new Uint8Array(c)
    // Linearize the whole old allocation (out-of-order bytes may sit past `length`).
    const old = this.buf
    const first = old.length - this.head
    nb.set(old.subarray(this.head), 0)
    nb.set(old.subarray(0, this.head), first)
    this.buf = nb
    this.head = 0
  }

  /** Writes `n` bytes of `src[srcOff..)` at position `pos` from the front (pos + n <= limit). */
  writeAt(pos: number, src: Uint8Array, srcOff: number, n: number): void {
    this.ensure(pos + n)
    const b = this.buf
    const cap = b.length
    let at = this.head + pos
    if (at >= cap) at -= cap
    const first = Math.min(n, cap - at)
    b.set(src.subarray(srcOff, srcOff + first), at)
    if (first < n) b.set(src.subarray(srcOff + first, srcOff + n), 0)
  }

  /** Appends up to `n` bytes (bounded by `limit`); returns how many were taken. */
  append(src: Uint8Array, srcOff: number, n: number): number {
    const room = this.limit - this.length
    if (n > room) n = room
    if (n <= 0) return 0
    this.writeAt(this.length, src, srcOff, n)
    this.length += n
    return n
  }

  /** Copies `n` bytes from position `pos` into `dst[dstOff..)`. */
  copyOut(pos: number, dst: Uint8Array, dstOff: number, n: number): void {
    const b = this.buf
    const cap = b.length
    let at = this.head + pos
    if (at >= cap) at -= cap
    const first = Math.min(n, cap - at)
    dst.set(b.subarray(at, at + first), dstOff)
    if (first < n) dst.set(b.subarray(0, n - first), dstOff + first)
  }

  /** Drops `n` bytes from the front. */
  consume(n: number): void {
    if (n > this.length) n = this.length
    this.length -= n
    this.head += n
    if (this.head >= this.buf.length) this.head -= this.buf.length
  }

  /** Marks `n` more bytes (already written with `writeAt`) as valid at the back. */
  extend(n: number): void {
    this.length += n
  }
}

/**
 * Received out-of-order ranges `[start, end)` above RCV.NXT, sorted by sequence, with a
 * recency stamp so SACK blocks list the most recently changed range first (RFC 2018 §4).
 * Bounded: a segment that would need more than `max` ranges is refused.
 */
export class OooRanges {
  /** Range starts. */
  readonly starts: number[] = []
  /** Range ends (exclusive). */
  readonly ends: number[] = []
  /** Recency stamps. */
  readonly stamps: number[] = []
  /** Most ranges kept. */
  readonly max: number
  private clock = 0

  /** @param max bound on the number of ranges. */
  constructor(max = 32) {
    this.max = max
  }

  /** Number of ranges. */
  get count(): number {
    return this.starts.length
  }

  /** Bytes held out of order. */
  bytes(): number {
    let n = 0
    for (let i = 0; i < this.starts.length; i++) n += seqDiff(this.ends[i]!, this.starts[i]!)
    return n
  }

  /** True when `[s, e)` is entirely inside one stored range (a duplicate: RFC 2883 D-SACK). */
  covers(s: Seq, e: Seq): boolean {
    for (let i = 0; i < this.starts.length; i++) {
      if (seqLe(this.starts[i]!, s) && seqGe(this.ends[i]!, e)) return true
    }
    return false
  }

  /**
   * Adds `[s, e)`, merging with overlapping or adjacent ranges. Returns false (and
   * changes nothing) when it would exceed `max` ranges.
   */
  add(s: Seq, e: Seq): boolean {
    const st = this.starts
    const en = this.ends
    let i = 0
    while (i < st.length && seqLt(en[i]!, s)) i++
    // i: first range that ends at or after s.
    let j = i
    let ns = s
    let ne = e
    while (j < st.length && seqLe(st[j]!, e)) {
      if (seqLt(st[j]!, ns)) ns = st[j]!
      if (seqGt(en[j]!, ne)) ne = en[j]!
      j++
    }
    if (j === i && st.length >= this.max) return false
    st.splice(i, j - i, ns)
    en.splice(i, j - i, ne)
    this.stamps.splice(i, j - i, ++this.clock)
    return true
  }

  /**
   * Removes everything below `rcvNxt`; if the first range starts at or before `rcvNxt`
   * returns its end (the new RCV.NXT), else returns `rcvNxt` unchanged.
   */
  advance(rcvNxt: Seq): Seq {
    let n = rcvNxt
    while (this.starts.length > 0 && seqLe(this.starts[0]!, n)) {
      if (seqGt(this.ends[0]!, n)) n = this.ends[0]!
      this.starts.shift()
      this.ends.shift()
      this.stamps.shift()
    }
    return n
  }

  /** Writes up to `max` blocks, most recent first, into `out` at block index `from`; returns blocks written. */
  blocks(out: Uint32Array, from: number, max: number): number {
    const n = Math.min(max, this.starts.length)
    if (n <= 0) return 0
    // Selection by stamp, newest first (the list is short: at most `max` ranges).
    let below = Infinity
    for (let k = 0; k < n; k++) {
      let best = -1
      for (let i = 0; i < this.starts.length; i++) {
        const st = this.stamps[i]!
        if (st < below && (best < 0 || st > this.stamps[best]!)) best = i
      }
      below = this.stamps[best]!
      out[(from + k) * 2] = this.starts[best]!
      out[(from + k) * 2 + 1] = this.ends[best]!
    }
    return n
  }

  /** Forgets every range. */
  clear(): void {
    this.starts.length = 0
    this.ends.length = 0
    this.stamps.length = 0
  }
}

/**
 * The sender's SACK scoreboard (RFC 6675 §3): SACKed ranges above SND.UNA, sorted.
 */
export class Scoreboard {
  /** Range starts. */
  readonly starts: number[] = []
  /** Range ends (exclusive). */
  readonly ends: number[] = []
  /** Highest SACKed sequence + 1 (valid when count > 0). */
  highSacked: Seq = 0

  /** Number of ranges. */
  get count(): number {
    return this.starts.length
  }

  /** Adds a SACK block `[s, e)`. */
  add(s: Seq, e: Seq): void {
    const st = this.starts
    const en = this.ends
    let i = 0
    while (i < st.length && seqLt(en[i]!, s)) i++
    let j = i
    let ns = s
    let ne = e
    while (j < st.length && seqLe(st[j]!, e)) {
      if (seqLt(st[j]!, ns)) ns = st[j]!
      if (seqGt(en[j]!, ne)) ne = en[j]!
      j++
    }
    st.splice(i, j - i, ns)
    en.splice(i, j - i, ne)
    if (st.length > 64) {
      // Bound the scoreboard: forget the highest range (it will be SACKed again).
      st.pop()
      en.pop()
    }
    this.highSacked = en[en.length - 1]!
  }

  /** Drops ranges (or parts) below `una`. */
  trim(una: Seq): void {
    while (this.starts.length > 0 && seqLe(this.ends[0]!, una)) {
      this.starts.shift()
      this.ends.shift()
    }
    if (this.starts.length > 0 && seqLt(this.starts[0]!, una)) this.starts[0] = una
  }

  /** Total SACKed bytes. */
  sackedBytes(): number {
    let n = 0
    for (let i = 0; i < this.starts.length; i++) n += seqDiff(this.ends[i]!, this.starts[i]!)
    return n
  }

  /** SACKed bytes at or above `s`. */
  sackedAbove(s: Seq): number {
    let n = 0
    for (let i = 0; i < this.starts.length; i++) {
      const a = this.starts[i]!
      const b = this.ends[i]!
      if (seqLe(b, s)) continue
      n += seqDiff(b, seqGt(a, s) ? a : s)
    }
    return n
  }

  /** True when `s` lies in a SACKed range. */
  isSacked(s: Seq): boolean {
    for (let i = 0; i < this.starts.length; i++) {
      if (seqLe(this.starts[i]!, s) && seqLt(s, this.ends[i]!)) return true
    }
    return false
  }

  /** End of the SACKed range containing `s`, or `s` itself. */
  skipSacked(s: Seq): Seq {
    for (let i = 0; i < this.starts.length; i++) {
      if (seqLe(this.starts[i]!, s) && seqLt(s, this.ends[i]!)) return this.ends[i]!
    }
    return s
  }

  /** Start of the first SACKed range above `s`, or `limit` when none is below it. */
  nextSackedAfter(s: Seq, limit: Seq): Seq {
    for (let i = 0; i < this.starts.length; i++) {
      if (seqGt(this.starts[i]!, s)) return seqLt(this.starts[i]!, limit) ? this.starts[i]! : limit
    }
    return limit
  }

  /** Forgets everything (after an RTO, RFC 6675 §5.1; the receiver may have reneged). */
  clear(): void {
    this.starts.length = 0
    this.ends.length = 0
  }
}
