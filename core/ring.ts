/**
 * A growable FIFO ring of objects: O(1) push and shift with no allocation once it has
 * grown to its working size (an Array used as a queue re-allocates on `shift`).
 *
 * ```
 *   items: [ . . h x x x x t . . ]   head = h, size = 4, capacity a power of two
 * ```
 * @module
 */

/** A FIFO queue backed by a power-of-two ring that doubles when full. */
export class Ring<T> {
  private items: (T | undefined)[]
  private head = 0
  private count = 0
  private mask: number

  /** Creates a ring with room for `capacity` items before it first grows (rounded up to a power of two). */
  constructor(capacity = 64) {
    let c = 1
    while (c < capacity) c <<= 1
    this.items = new Array<T | undefined>(c)
    this.mask = c - 1
  }

  /** Number of queued items. */
  get size(): number {
    return this.count
  }

  /** Appends an item at the tail. */
  push(item: T): void {
    if (this.count > this.mask) this.grow()
    this.items[(this.head + this.count) & this.mask] = item
    this.count++
  }

  /** Removes and returns the head, or undefined when empty. */
  shift(): T | undefined {
    if (this.count === 0) return undefined
    const item = this.items[this.head]
    this.items[this.head] = undefined
    this.head = (this.head + 1) & this.mask
    this.count--
    return item
  }

  /** The head without removing it. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.items[this.head]
  }

  /** The item at position `i` from the head (0-based), or undefined. */
  at(i: number): T | undefined {
    return i < 0 || i >= this.count ? undefined : this.items[(this.head + i) & this.mask]
  }

  /** Removes every item, calling `each` on it first if given. */
  clear(each?: (item: T) => void): void {
    while (this.count > 0) {
      const item = this.shift()!
      each?.(item)
    }
  }

  private grow(): void {
    const old = this.items
    const n = old.length
    const next = new Array<T | undefined>(n * 2)
    for (let i = 0; i < this.count; i++) next[i] = old[(this.head + i) & this.mask]
    this.items = next
    this.head = 0
    this.mask = n * 2 - 1
  }
}
