/**
 * TCP sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4), in one place.
 * Compare through the signed 32-bit difference `(a - b) | 0`; store as `>>> 0`.
 * Never compare raw sequence fields with `<`.
 * @module
 */

/** A 32-bit TCP sequence number (0..2^32-1). */
export type Seq = number

/** `a + n` modulo 2^32. */
export function seqAdd(a: Seq, n: number): Seq {
  return (a + n) >>> 0
}

/** `a - b` as a signed distance (positive when `a` is after `b`). */
export function seqDiff(a: Seq, b: Seq): number {
  return (a - b) | 0
}

/** True when `a` comes before `b`. */
export function seqLt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) < 0
}

/** True when `a` comes before or equals `b`. */
export function seqLe(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) <= 0
}

/** True when `a` comes after `b`. */
export function seqGt(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) > 0
}

/** True when `a` comes after or equals `b`. */
export function seqGe(a: Seq, b: Seq): boolean {
  return ((a - b) | 0) >= 0
}

/** True when `lo <= s < lo + len` modulo 2^32 (an empty window holds nothing). */
export function seqInWindow(s: Seq, lo: Seq, len: number): boolean {
  const d = (s - lo) >>> 0
  return d < len
}

/** The later of two sequence numbers. */
export function seqMax(a: Seq, b: Seq): Seq {
  return seqGt(a, b) ? a : b
}

/** The earlier of two sequence numbers. */
export function seqMin(a: Seq, b: Seq): Seq {
  return seqLt(a, b) ? a : b
}
