/**
 * A ring of the most recently written octets (MSOCKS §III-C: "a circular buffer ... the
 * minimum of the maximum TCP window size and the underlying socket buffer size"), from
 * which a move rewrites the hole (Fig. 10).
 * @module
 */

/** The last `capacity` octets written, and how many were written in all. */
export class WriteRing {
  /** Octets kept at most. */
  readonly capacity: number
  private readonly buf: Uint8Array
  private head = 0
  private stored = 0

  /** A ring of `capacity` octets (an integer >= 1). */
  constructor(capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new RangeError(`msocks: ring capacity must be an integer >= 1, got ${capacity}`)
    this.capacity = capacity
    this.buf = new Uint8Array(capacity)
  }

  /** Octets available for a rewrite. */
  get length(): number {
    return this.stored
  }

  /** Appends `data` (older octets fall off the far end). */
  append(data: Uint8Array): void {
    const cap = this.capacity
    let src = data
    if (src.length >= cap) src = src.subarray(src.length - cap)
    const first = Math.min(src.length, cap - this.head)
    this.buf.set(src.subarray(0, first), this.head)
    if (first < src.length) this.buf.set(src.subarray(first), 0)
    this.head = (this.head + src.length) % cap
    this.stored = Math.min(cap, this.stored + src.length)
  }

  /** A copy of the last `n` octets written; throws a RangeError if fewer are kept. */
  tail(n: number): Uint8Array {
    if (!(Number.isInteger(n) && n >= 0)) throw new RangeError(`msocks: tail(${n})`)
    if (n > this.stored) throw new RangeError(`msocks: ${n} octets to rewrite, but the ring keeps only ${this.stored} (capacity ${this.capacity}): raise ringBytes`)
    const out = new Uint8Array(n)
    const cap = this.capacity
    const start = (this.head - n + cap) % cap
    const first = Math.min(n, cap - start)
    out.set(this.buf.subarray(start, start + first), 0)
    if (first < n) out.set(this.buf.subarray(0, n - first), first)
    return out
  }
}
