/**
 * Scheduler: non-preemptive, runs each message through its path to completion, batches
 * work per turn of the Node event loop, and never starves timers or I/O.
 *
 * One turn: fire due timers; run runnable paths round-robin, at most `pathBudget`
 * messages per path per round and `turnBudget` in all; flush every path end that produced
 * output (one batch per device); if work remains, continue on the next `setImmediate`,
 * so device callbacks and Node timers get their turn in between.
 *
 * Two modes share the same turn:
 * - real time (`start()`): turns are driven by `setImmediate`, timers by one Node timeout
 *   for the earliest deadline;
 * - virtual time (a {@link ManualClock}): `runFor(ms)` / `runUntil(pred)` step the clock
 *   from deadline to deadline, so whole networks on memory wires run deterministically
 *   and faster than real time.
 * @module
 */
import { ManualClock, realClock, type Clock } from './clock.js'
import type { Path, PathEnd, PathRunner } from './path.js'
import { Ring } from './ring.js'
import { Timer, TimerQueue } from './timers.js'

/** Options of a {@link Scheduler}. */
export interface SchedulerOptions {
  /** Clock (default: the real monotonic clock; a ManualClock enables virtual time). */
  clock?: Clock
  /** Messages one path may run per round before others get a go (default 64). */
  pathBudget?: number
  /** Messages per turn before yielding to the event loop (default 4096). */
  turnBudget?: number
}

/** Counters of a {@link Scheduler}. */
export interface SchedulerStats {
  /** Turns run. */
  turns: number
  /** Messages run to completion. */
  messages: number
  /** Timers fired. */
  timersFired: number
  /** Timers armed now. */
  timersArmed: number
  /** Path ends flushed. */
  flushes: number
}

/** Runs paths and timers. */
export class Scheduler implements PathRunner {
  /** The clock everything on this scheduler reads. */
  readonly clock: Clock
  /** The timer heap; create protocol timers with `scheduler.timers.timer(cb)`. */
  readonly timers: TimerQueue
  private readonly runQueue = new Ring<Path>(64)
  private readonly flushQueue = new Ring<PathEnd>(64)
  private readonly pathBudget: number
  private readonly turnBudget: number
  private running = false
  private inTurn = false
  private immediate: NodeJS.Immediate | null = null
  private timeout: NodeJS.Timeout | null = null
  private timeoutAt = Infinity
  private readonly counters: SchedulerStats = { turns: 0, messages: 0, timersFired: 0, timersArmed: 0, flushes: 0 }
  private readonly idleWaiters: (() => void)[] = []

  /** Creates a scheduler; it does nothing until `start()` (real time) or `runFor()` (virtual time). */
  constructor(opts: SchedulerOptions = {}) {
    this.clock = opts.clock ?? realClock
    this.timers = new TimerQueue(this.clock)
    this.pathBudget = opts.pathBudget ?? 64
    this.turnBudget = opts.turnBudget ?? 4096
    this.timers.onEarliestChange = () => this.rearm()
  }

  /** True when the clock is virtual (driven by `runFor`/`runUntil`). */
  get virtual(): boolean {
    return this.clock instanceof ManualClock
  }

  /** Current time of the scheduler's clock. */
  now(): number {
    return this.clock.now()
  }

  /** Creates a timer on this scheduler. */
  timer(callback: (now: number) => void): Timer {
    return this.timers.timer(callback)
  }

  /** Adopts `path`: its input wakes this scheduler. */
  adopt(path: Path): Path {
    path.runner = this
    if (path.runnable) this.wake(path)
    return path
  }

  /** PathRunner: `path` has input. */
  wake(path: Path): void {
    if (path.queued) return
    path.queued = true
    this.runQueue.push(path)
    this.kick()
  }

  /** PathRunner: `end` has output to flush this turn. */
  flushLater(end: PathEnd): void {
    this.flushQueue.push(end)
    this.kick()
  }

  /** Starts real-time operation (turns on setImmediate, timers on a Node timeout). */
  start(): void {
    if (this.virtual) throw new Error('Scheduler.start() needs a real clock; drive a ManualClock with runFor()/runUntil()')
    this.running = true
    this.kick()
    this.rearm()
  }

  /** Stops real-time operation; queued work stays queued. */
  stop(): void {
    this.running = false
    if (this.immediate) clearImmediate(this.immediate)
    if (this.timeout) clearTimeout(this.timeout)
    this.immediate = null
    this.timeout = null
    this.timeoutAt = Infinity
  }

  /** Resolves once no path is runnable and no output is waiting (timers may still be armed). */
  idle(): Promise<void> {
    if (this.runQueue.size === 0 && this.flushQueue.size === 0) return Promise.resolve()
    return new Promise(resolve => this.idleWaiters.push(resolve))
  }

  /**
   * Runs one turn now: due timers, then paths, then flushes. Returns the number of
   * messages run. Safe to call re-entrantly (a nested call returns 0).
   */
  turn(): number {
    if (this.inTurn) return 0
    this.inTurn = true
    let ran = 0
    try {
      this.counters.turns++
      this.counters.timersFired += this.timers.runDue(this.clock.now())
      const q = this.runQueue
      while (ran < this.turnBudget && q.size > 0) {
        const p = q.shift()!
        p.queued = false
        ran += p.run(this.pathBudget)
        if (p.runnable) {
          p.queued = true
          q.push(p)
        }
        // Flush as we go when many ends wait, so device batches stay bounded.
        if (this.flushQueue.size >= 64) this.flushAll()
      }
      this.flushAll()
      this.counters.messages += ran
    } finally {
      this.inTurn = false
    }
    if (this.runQueue.size === 0 && this.flushQueue.size === 0 && this.idleWaiters.length > 0) {
      const w = this.idleWaiters.splice(0)
      for (const fn of w) fn()
    }
    return ran
  }

  /**
   * Virtual time: runs turns, advancing the clock from deadline to deadline, until
   * `ms` have passed or nothing is left to do. Returns the virtual time reached.
   */
  runFor(ms: number): number {
    const clock = this.manual()
    this.runUntil(() => false, clock.now() + ms)
    return clock.now()
  }

  /**
   * Virtual time: runs until `done()` returns true (checked after every turn), the clock
   * would pass `limit`, or nothing is left to do. Returns true if `done()` became true.
   */
  runUntil(done: () => boolean, limit = Infinity): boolean {
    const clock = this.manual()
    for (;;) {
      this.turn()
      if (done()) return true
      if (this.runQueue.size > 0 || this.flushQueue.size > 0) continue
      const next = this.timers.nextDeadline()
      if (next === Infinity || next > limit) {
        if (limit !== Infinity && clock.now() < limit) clock.set(limit)
        return false
      }
      if (next > clock.now()) clock.set(next)
    }
  }

  /** A snapshot of the counters. */
  stats(): SchedulerStats {
    return { ...this.counters, timersArmed: this.timers.size }
  }

  private manual(): ManualClock {
    if (!(this.clock instanceof ManualClock)) throw new Error('runFor()/runUntil() need a ManualClock; use start() with a real clock')
    return this.clock
  }

  private flushAll(): void {
    const q = this.flushQueue
    while (q.size > 0) {
      q.shift()!.flush()
      this.counters.flushes++
    }
  }

  private kick(): void {
    if (!this.running || this.immediate !== null || this.inTurn) return
    this.immediate = setImmediate(() => {
      this.immediate = null
      this.turn()
      if (this.runQueue.size > 0 || this.flushQueue.size > 0) this.kick()
    })
  }

  /** Keeps one Node timeout at (or before) the earliest timer deadline. */
  private rearm(): void {
    if (!this.running) return
    const next = this.timers.nextDeadline()
    if (next === Infinity) return
    // A timeout that fires early is harmless (the turn finds nothing due and re-arms);
    // only re-arm when the new deadline is earlier than the one we wait for.
    if (this.timeout !== null && next >= this.timeoutAt) return
    if (this.timeout !== null) clearTimeout(this.timeout)
    const delay = Math.max(0, next - this.clock.now())
    this.timeoutAt = next
    this.timeout = setTimeout(() => {
      this.timeout = null
      this.timeoutAt = Infinity
      this.turn()
      if (this.runQueue.size > 0 || this.flushQueue.size > 0) this.kick()
      this.rearm()
    }, delay)
  }
}
