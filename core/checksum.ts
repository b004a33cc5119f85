/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624), shared by IP,
 * ICMP, TCP and the FWD stages.
 *
 * Sums are kept as unfolded 32-bit-safe accumulators while adding, and folded to 16 bits
 * at the end. All functions work on `Uint8Array` ranges and allocate nothing.
 * @module
 */

/** Adds the 16-bit big-endian words of `b[off..off+len)` to `sum` (odd trailing byte padded with zero). Returns the unfolded sum. */
export function sumBytes(b: Uint8Array, off: number, len: number, sum = 0): number {
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
