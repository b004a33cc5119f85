/**
 * FlowTable: a hash table keyed by a TCP/UDP 4-tuple (two IPv4 addresses and two ports),
 * with open addressing over typed arrays, so a lookup per packet allocates nothing (a
 * string key would). Deletion uses backward-shift, so no tombstones accumulate.
 * @module
 */

/** The hash of a three-word key (a Murmur3-style finalizer); int32, for masking. */
export function mix(a: number, b: number, c: number): number {
  // Murmur3-style finalizer over the three words.
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13) ^ b, 0xc2b2ae35)
  h = Math.imul(h ^ (h >>> 16) ^ c, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  // int32, not uint32: callers only mask it, and a returned uint32 >= 2^31 is boxed when
  // V8 does not inline this (an allocation per lookup).
  return h ^ (h >>> 16)
}

/** A 4-tuple-keyed hash map. Ports are packed as `(srcPort << 16) | dstPort`. */
export class FlowTable<V> {
  private keys: Uint32Array
  private vals: (V | undefined)[]
  private used: Uint8Array
  private mask: number
  private count = 0

  /** Creates a table with room for about `capacity` flows before it grows. */
  constructor(capacity = 1024) {
    let c = 16
    while (c < capacity * 2) c <<= 1
    this.keys = new Uint32Array(c * 3)
    this.vals = new Array<V | undefined>(c)
    this.used = new Uint8Array(c)
    this.mask = c - 1
  }

  /** Number of flows stored. */
  get size(): number {
    return this.count
  }

  /** The value for (srcAddr, dstAddr, ports), or undefined. Keys may be given as uint32 or int32 (the same bits: the fast path passes int32, which V8 never boxes). */
  get(src: number, dst: number, ports: number): V | undefined {
    const k = this.keys
    let i = mix(src, dst, ports) & this.mask
    while (this.used[i] === 1) {
      const o = i * 3
      if (k[o] === src >>> 0 && k[o + 1] === dst >>> 0 && k[o + 2] === ports >>> 0) return this.vals[i]
      i = (i + 1) & this.mask
    }
    return undefined
  }

  /** Stores `value` for the key (replacing any previous one). */
  set(src: number, dst: number, ports: number, value: V): void {
    if ((this.count + 1) * 2 > this.mask + 1) this.grow()
    const k = this.keys
    let i = mix(src, dst, ports) & this.mask
    while (this.used[i] === 1) {
      const o = i * 3
      if (k[o] === src >>> 0 && k[o + 1] === dst >>> 0 && k[o + 2] === ports >>> 0) {
        this.vals[i] = value
        return
      }
      i = (i + 1) & this.mask
    }
    const o = i * 3
    k[o] = src
    k[o + 1] = dst
    k[o + 2] = ports
    this.vals[i] = value
    this.used[i] = 1
    this.count++
  }

  /** Removes the key; returns true if it was present. */
  delete(src: number, dst: number, ports: number): boolean {
    const k = this.keys
    let i = mix(src, dst, ports) & this.mask
    while (this.used[i] === 1) {
      const o = i * 3
      if (k[o] === src >>> 0 && k[o + 1] === dst >>> 0 && k[o + 2] === ports >>> 0) {
        this.removeAt(i)
        return true
      }
      i = (i + 1) & this.mask
    }
    return false
  }

  /** Calls `fn` for every entry. */
  forEach(fn: (value: V, src: number, dst: number, ports: number) => void): void {
    for (let i = 0; i <= this.mask; i++) {
      if (this.used[i] === 1) fn(this.vals[i]!, this.keys[i * 3]!, this.keys[i * 3 + 1]!, this.keys[i * 3 + 2]!)
    }
  }

  private removeAt(i: number): void {
    // Backward-shift deletion (linear probing): pull later entries of the cluster back.
    const k = this.keys
    let j = i
    for (;;) {
      this.used[j] = 0
      this.vals[j] = undefined
      let n = j
      for (;;) {
        n = (n + 1) & this.mask
        if (this.used[n] !== 1) {
          this.count--
          return
        }
        const home = mix(k[n * 3]!, k[n * 3 + 1]!, k[n * 3 + 2]!) & this.mask
        // Move n into j unless its home lies cyclically in (j, n].
        const inRange = j <= n ? home > j && home <= n : home > j || home <= n
        if (!inRange) break
      }
      k[j * 3] = k[n * 3]!
      k[j * 3 + 1] = k[n * 3 + 1]!
      k[j * 3 + 2] = k[n * 3 + 2]!
      this.vals[j] = this.vals[n]
      this.used[j] = 1
      j = n
    }
  }

  private grow(): void {
    const oldKeys = this.keys
    const oldVals = this.vals
    const oldUsed = this.used
    const c = (this.mask + 1) * 2
    this.keys = new Uint32Array(c * 3)
    this.vals = new Array<V | undefined>(c)
    this.used = new Uint8Array(c)
    this.mask = c - 1
    this.count = 0
    for (let i = 0; i < oldUsed.length; i++) {
      if (oldUsed[i] === 1) this.set(oldKeys[i * 3]!, oldKeys[i * 3 + 1]!, oldKeys[i * 3 + 2]!, oldVals[i]!)
    }
  }
}
