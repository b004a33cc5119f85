/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624), shared by IP,
 * ICMP, TCP and the FWD stages.
 *
 * Sums are kept as unfolded accumulators (exact in a float64 below 2^53) while adding, and
 * folded to 16 bits at the end. All functions work on `Uint8Array` ranges and allocate
 * nothing per call (beyond one cached `DataView` the first time an `ArrayBuffer` is seen).
 *
 * Speed (profiled at 50% of FWD's time at 1460-byte segments): ranges of 64 bytes or more
 * are summed as 32-bit words through a `DataView` over the range's `ArrayBuffer`. A 32-bit
 * word `hi·2^16 + lo` is congruent to `hi + lo` modulo 2^16 - 1, so adding whole words and
 * folding once gives the same ones' complement sum as adding 16-bit words (RFC 1071 §2(C),
 * deferred carries), at one load and one add per 4 bytes. The words are read
 * little-endian (a plain load on the hosts we run on) and the folded sum is swapped back
 * (§2(B), byte-order independence). The view is made once per `ArrayBuffer` and cached
 * (pooled frames share a few slabs), so the hot path allocates nothing.
 * `benchmarks/suites/checksum.ts` measures it against the previous byte-wise loop.
 * @module
 */

// Ranges shorter than this are summed byte-wise: below it the view lookup and the block
// reduction cost more than they save (IP headers, bare ACKs).
const WIDE_MIN = 64

/** Bytes summed per block of 32-bit words before the block's sum is reduced: 2^18 words of < 2^32 stay below 2^50. */
const BLOCK = 1 << 20

/** Sums `n` little-endian 32-bit words of a buffer from byte `i` on (an unfolded sum, below 2^50 for n <= 2^18). */
type WordSummer = (i: number, n: number) => number

/**
 * The word loop, over a DataView given once. V8 compiles a loop over a DataView it knows
 * as a constant (the only closure over it) faster than one over a view passed in or looked
 * up, whose backing store it re-reads per load: about 145 against 190 ns per 1480 bytes
 * (benchmarked side by side), on the largest single cost of a forwarded segment whose
 * checksum is verified. So each large buffer (a pool slab: frames share a few) gets its
 * own copy of the loop, compiled from this constant source so that V8 sees one closure
 * per copy (closures made by one factory share their code and lose the constant); other
 * buffers share `sumWordsOf`. No input reaches the source; without code generation
 * (`--disallow-code-generation-from-strings`) every buffer shares the loop.
 */
const SUMMER_SOURCE = `'use strict'
return function sumWords(i, n) {
  const stop = i + 4 * n
  let s0 = 0
  let s1 = 0
  for (; i + 32 <= stop; i += 32) {
    s0 += view.getUint32(i, true) + view.getUint32(i + 4, true) + view.getUint32(i + 8, true) + view.getUint32(i + 12, true)
    s1 += view.getUint32(i + 16, true) + view.getUint32(i + 20, true) + view.getUint32(i + 24, true) + view.getUint32(i + 28, true)
  }
  for (; i < stop; i += 4) s0 += view.getUint32(i, true)
  return s0 + s1
}`

/** Buffers at least this large (pool slabs) get a compiled copy of the loop. */
const OWN_SUMMER_MIN = 64 * 1024

/**
 * At most this many copies are ever compiled (a pool has a few slabs; anything beyond,
 * e.g. large one-off buffers, shares the loop rather than paying a compile each).
 */
const MAX_OWN_SUMMERS = 64
let ownSummers = 0

/** The shared loop over any view (the same arithmetic as SUMMER_SOURCE). */
function sumWordsOf(view: DataView, i: number, n: number): number {
  const stop = i + 4 * n
  let s0 = 0
  let s1 = 0
  for (; i + 32 <= stop; i += 32) {
    s0 += view.getUint32(i, true) + view.getUint32(i + 4, true) + view.getUint32(i + 8, true) + view.getUint32(i + 12, true)
    s1 += view.getUint32(i + 16, true) + view.getUint32(i + 20, true) + view.getUint32(i + 24, true) + view.getUint32(i + 28, true)
  }
  for (; i < stop; i += 4) s0 += view.getUint32(i, true)
  return s0 + s1
}

/** False once code generation from strings failed (node --disallow-code-generation-from-strings): every buffer shares the loop. */
let canCompile = true

function summerFor(buffer: ArrayBufferLike): WordSummer {
  const view = new DataView(buffer)
  if (canCompile && buffer.byteLength >= OWN_SUMMER_MIN && ownSummers < MAX_OWN_SUMMERS) {
    ownSummers++
    try {
      return (new Function('view', SUMMER_SOURCE) as (v: DataView) => WordSummer)(view)
    } catch {
      canCompile = false
    }
  }
  return (i, n) => sumWordsOf(view, i, n)
}

// The summer of the last buffer seen (the common case: consecutive frames from one pool
// slab), then a weak map for the others: neither keeps a buffer alive beyond the last one.
let lastBuffer: ArrayBufferLike | null = null
let lastSummer: WordSummer | null = null
const summers = new WeakMap<ArrayBufferLike, WordSummer>()

function summerOf(buffer: ArrayBufferLike): WordSummer {
  if (buffer === lastBuffer) return lastSummer!
  let f = summers.get(buffer)
  if (f === undefined) {
    f = summerFor(buffer)
    summers.set(buffer, f)
  }
  lastBuffer = buffer
  lastSummer = f
  return f
}

// Byte-wise, 16-bit big-endian words: short ranges, and ranges reaching outside `b`, whose
// missing bytes count as zero (undefined in a bitwise expression) as they always have; the
// DataView would read a neighbour's bytes in the same slab or throw a RangeError.
function sumNarrow(b: Uint8Array, off: number, len: number, sum: number): number {
  let i = off
  const end = off + len
  const even = end - ((end - off) & 1)
  // Unrolled by 8 bytes: the sum of 4 words per step stays far below 2^53.
  for (; i + 8 <= even; i += 8) {
    sum += ((b[i]! << 8) | b[i + 1]!) + ((b[i + 2]! << 8) | b[i + 3]!) + ((b[i + 4]! << 8) | b[i + 5]!) + ((b[i + 6]! << 8) | b[i + 7]!)
  }
  for (; i < even; i += 2) sum += (b[i]! << 8) | b[i + 1]!
  if (i < end) sum += b[i]! << 8
  return sum
}

/**
 * Adds the 16-bit big-endian words of `b[off..off+len)` to `sum` (odd trailing byte padded
 * with zero). Returns the unfolded sum: congruent modulo 0xffff to `sum` plus the words, and
 * zero only if both are, so {@link fold} of it is the ones' complement sum, and it can be
 * passed as `sum` to a further call over the following (even-offset) bytes.
 */
export function sumBytes(b: Uint8Array, off: number, len: number, sum = 0): number {
  if (len < WIDE_MIN || off < 0 || off + len > b.length) return sumNarrow(b, off, len, sum)
  const words = summerOf(b.buffer)
  let i = b.byteOffset + off
  const end = i + len
  // 32-bit words from `off` on keep the 16-bit word boundaries (the range is summed from its
  // own start), so no alignment is needed: DataView reads unaligned words. They are read
  // little-endian (a plain load on little-endian hosts, no swap per word; DataView fixes the
  // order on any host), which sums byte-swapped 16-bit words; the ones' complement sum of swapped
  // words is the swapped sum (RFC 1071 §2(B)), so each block's folded sum is swapped back.
  while (end - i >= 4) {
    const n = Math.min(end - i, BLOCK) >>> 2
    // Two accumulators in the loop: the float adds of one do not wait on the other's.
    const w = words(i, n)
    i += 4 * n
    // Fold the block to 16 bits, keeping it modulo 0xffff (2^32 ≡ 2^16 ≡ 1) and nonzero
    // iff it was, then swap its bytes back to network order.
    const hi = Math.floor(w / 4294967296)
    const lo = w - hi * 4294967296
    let f = (lo >>> 16) + (lo & 0xffff) + hi
    f = (f >>> 16) + (f & 0xffff)
    f = (f >>> 16) + (f & 0xffff)
    sum += ((f & 0xff) << 8) | (f >>> 8)
  }
  // The last 0-3 bytes, in network order (inside `b`: checked above).
  let j = i - b.byteOffset
  const last = off + len
  if (last - j >= 2) {
    sum += (b[j]! << 8) | b[j + 1]!
    j += 2
  }
  if (j < last) sum += b[j]! << 8
  return sum
}

/** Folds an accumulated sum to 16 bits with end-around carry. */
export function fold(sum: number): number {
  // Sums of up to 2^32 - 1 (every header, every frame) fold with two shifts; larger
  // accumulators (64 KiB super-frames) take the division path.
  if (sum <= 0xffffffff) {
    sum = (sum & 0xffff) + (sum >>> 16)
    return (sum & 0xffff) + (sum >>> 16)
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536)
  return sum
}

/** The checksum field value for `b[off..off+len)`: the ones' complement of the folded sum. */
export function checksum(b: Uint8Array, off: number, len: number, initial = 0): number {
  return ~fold(sumBytes(b, off, len, initial)) & 0xffff
}

/** Sum of the IPv4 pseudo-header (RFC 9293 §3.1) for `protocol` and a transport length. */
export function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length
}

/**
 * RFC 1624 eqn. 3: the new checksum after a 16-bit field changes from `oldWord` to
 * `newWord`: HC' = ~(~HC + ~m + m').
 *
 * Equal to a full recomputation except in one degenerate case: when every other covered
 * word is zero, this returns 0x0000 where {@link checksum} returns 0xFFFF (ones'
 * complement has two zeros and the update cannot see the data). No IPv4, ICMP, TCP or
 * UDP header is all zeros (version 4; pseudo-headers carry the protocol), so on real
 * headers the two always agree; `tests/unit/stages/checksum.test.ts` pins both facts.
 */
export function csumUpdate16(hc: number, oldWord: number, newWord: number): number {
  const sum = (~hc & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)
  return ~fold(sum) & 0xffff
}

/** RFC 1624 eqn. 3 for a 32-bit field (two 16-bit words), e.g. a sequence number or an address; same degenerate case as {@link csumUpdate16}. */
export function csumUpdate32(hc: number, oldValue: number, newValue: number): number {
  const sum =
    (~hc & 0xffff) +
    (~(oldValue >>> 16) & 0xffff) +
    (~oldValue & 0xffff) +
    ((newValue >>> 16) & 0xffff) +
    (newValue & 0xffff)
  return ~fold(sum) & 0xffff
}

/**
 * True when the TCP (or UDP) segment `b[off..off+len)`, `len >= 20`, carries a valid
 * checksum over the IPv4 pseudo-header of `src`, `dst` and `protocol` (RFC 9293 §3.1).
 * The same test as `checksum(b, off, len, pseudoHeaderSum(...)) === 0`, with the 20-byte
 * header summed inline: a forwarder verifies every segment, most of them small.
 */
export function transportChecksumOk(b: Uint8Array, off: number, len: number, src: number, dst: number, protocol: number): boolean {
  let s =
    (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + len +
    ((b[off]! << 8) | b[off + 1]!) + ((b[off + 2]! << 8) | b[off + 3]!) + ((b[off + 4]! << 8) | b[off + 5]!) +
    ((b[off + 6]! << 8) | b[off + 7]!) + ((b[off + 8]! << 8) | b[off + 9]!) + ((b[off + 10]! << 8) | b[off + 11]!) +
    ((b[off + 12]! << 8) | b[off + 13]!) + ((b[off + 14]! << 8) | b[off + 15]!) + ((b[off + 16]! << 8) | b[off + 17]!) +
    ((b[off + 18]! << 8) | b[off + 19]!)
  if (len > 20) s = sumBytes(b, off + 20, len - 20, s)
  return fold(s) === 0xffff
}
