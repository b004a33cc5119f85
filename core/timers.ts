/**
 * Timers for protocol state: one binary heap per scheduler instead of a Node timeout per
 * connection (no setTimeout storms: 100k TCBs with retransmission, delayed-ACK and
 * keepalive timers cost one heap, and one real timeout for the earliest deadline).
 *
 * A {@link Timer} is created once per purpose (e.g. a TCB's RTO) and re-armed as often as
 * needed: arming, re-arming and cancelling are O(log n) and allocate nothing.
 * Timers with equal deadlines fire in the order they were armed.
 * @module
 */
import type { Clock } from './clock.js'

/** A re-armable timer owned by a {@link TimerQueue}. */
export class Timer {
  /** Absolute deadline (ms of the queue's clock) while armed. */
  deadline = 0
  /** @internal Position in the heap, -1 when not armed. */
  heapIndex = -1
  /** @internal Arming order, for FIFO among equal deadlines. */
  order = 0
  private readonly queue: TimerQueue
  private readonly callback: (now: number) => void

  /** Creates a disarmed timer that calls `callback(now)` when it fires. */
  constructor(queue: TimerQueue, callback: (now: number) => void) {
    this.queue = queue
    this.callback = callback
  }

  /** True while the timer is armed. */
  get armed(): boolean {
    return this.heapIndex >= 0
  }

  /** Arms (or re-arms) the timer to fire `delayMs` from now. */
  set(delayMs: number): void {
    this.queue.arm(this, this.queue.clock.now() + delayMs)
  }

  /** Arms (or re-arms) the timer to fire at absolute time `deadline`. */
  setAt(deadline: number): void {
    this.queue.arm(this, deadline)
  }

  /** Disarms the timer; harmless if not armed. */
  cancel(): void {
    if (this.heapIndex >= 0) this.queue.disarm(this)
  }

  /** @internal Called by the queue when the deadline passes. */
  fire(now: number): void {
    this.callback(now)
  }
}

/** A min-heap of armed {@link Timer}s on one clock. */
export class TimerQueue {
  /** The clock deadlines are measured on. */
  readonly clock: Clock
  /** Called when the earliest deadline changes (the scheduler re-arms its one real timeout). */
  onEarliestChange: (() => void) | null = null
  private heap: Timer[] = []
  private counter = 0

  /** Creates an empty queue on `clock`. */
  constructor(clock: Clock) {
    this.clock = clock
  }

  /** Number of armed timers. */
  get size(): number {
    return this.heap.length
  }

  /** The earliest deadline, or `Infinity` when nothing is armed. */
  nextDeadline(): number {
    return this.heap.length > 0 ? this.heap[0]!.deadline : Infinity
  }

  /** Creates a timer on this queue. */
  timer(callback: (now: number) => void): Timer {
    return new Timer(this, callback)
  }

  /** @internal */
  arm(t: Timer, deadline: number): void {
    const before = this.nextDeadline()
    t.deadline = deadline
    t.order = this.counter++
    if (t.heapIndex < 0) {
      t.heapIndex = this.heap.length
      this.heap.push(t)
      this.up(t.heapIndex)
    } else {
      this.up(t.heapIndex)
      this.down(t.heapIndex)
    }
    if (this.nextDeadline() !== before) this.onEarliestChange?.()
  }

  /** @internal */
  disarm(t: Timer): void {
    const i = t.heapIndex
    const last = this.heap.pop()!
    t.heapIndex = -1
    if (last !== t) {
      this.heap[i] = last
      last.heapIndex = i
      this.up(i)
      this.down(last.heapIndex)
    }
    if (i === 0) this.onEarliestChange?.()
  }

  /**
   * Fires every timer whose deadline is at or before `now`, earliest first; a timer
   * re-armed by a callback for a time still `<= now` fires again in the same call.
   * Returns how many fired.
   */
  runDue(now: number): number {
    let fired = 0
    while (this.heap.length > 0 && this.heap[0]!.deadline <= now) {
      const t = this.heap[0]!
      this.disarm(t)
      fired++
      t.fire(now)
    }
    return fired
  }

  private less(a: Timer, b: Timer): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.order < b.order)
  }

  private up(i: number): void {
    const h = this.heap
    const t = h[i]!
    while (i > 0) {
      const p = (i - 1) >> 1
      const pt = h[p]!
      if (!this.less(t, pt)) break
      h[i] = pt
      pt.heapIndex = i
      i = p
    }
    h[i] = t
    t.heapIndex = i
  }

  private down(i: number): void {
    const h = this.heap
    const n = h.length
    const t = h[i]!
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const c = r < n && this.less(h[r]!, h[l]!) ? r : l
      const ct = h[c]!
      if (!this.less(ct, t)) break
      h[i] = ct
      ct.heapIndex = i
      i = c
    }
    h[i] = t
    t.heapIndex = i
  }
}
