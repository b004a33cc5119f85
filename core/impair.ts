/**
 * Impairments (loss, duplication, reordering, delay and jitter, corruption, a rate limit
 * with a bounded queue), seeded so a run can be replayed. This kernel has no netem: the
 * memory wire and the `impair` stage both use this engine.
 *
 * ```
 *   offer() ─▶ [loss] [dup] [rate/queue] [delay+jitter] [corrupt] [reorder] ─▶ deliver(batch)
 * ```
 * @module
 */
import { ConfigError } from './errors.js'
import type { Msg } from './msg.js'
import { Random } from './random.js'
import { Ring } from './ring.js'
import type { Scheduler } from './scheduler.js'
import type { Timer } from './timers.js'

/** Impairments of one direction. Probabilities are per message, 0..1. */
export interface Impairments {
  /** Probability a frame is lost. */
  loss?: number
  /** Probability a frame is delivered twice. */
  duplicate?: number
  /** Probability a frame is held back by `reorderDelayMs` (so later frames overtake it). */
  reorder?: number
  /** Extra delay of a reordered frame in ms (default 1). */
  reorderDelayMs?: number
  /** Probability one random bit of a frame is flipped. */
  corrupt?: number
  /** One-way propagation delay in ms (default 0). */
  delayMs?: number
  /** Uniform random extra delay 0..jitterMs (order is kept: jitter never reorders). */
  jitterMs?: number
  /** Line rate in bits per second (default: unlimited). */
  rateBps?: number
  /** With a rate: most frames waiting to be serialized before tail drop (default 1000). */
  queueLimit?: number
  /** Seed of this direction's generator (default: the wire's seed). */
  seed?: number
}

/** Counters of one direction's impairments. */
export interface ImpairmentStats {
  /** Frames offered to this direction. */
  offered: number
  /** Frames delivered (duplicates count twice). */
  delivered: number
  /** Frames lost on purpose. */
  lost: number
  /** Extra copies made. */
  duplicated: number
  /** Frames held back to be overtaken. */
  reordered: number
  /** Frames with a flipped bit. */
  corrupted: number
  /** Frames dropped because the rate-limited queue was full. */
  queueDrops: number
}

function checkProb(name: string, v: number | undefined): number {
  if (v === undefined) return 0
  if (!(v >= 0 && v <= 1)) throw new ConfigError(`impairment '${name}' must be a probability between 0 and 1, got ${v}`)
  return v
}

function checkNonNeg(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt
  if (!(v >= 0) || !Number.isFinite(v)) throw new ConfigError(`impairment '${name}' must be a finite number >= 0, got ${v}`)
  return v
}

/** A frame in flight with its delivery time. */
interface InFlight {
  at: number
  msg: Msg
}

/**
 * One direction of impairment: takes messages with {@link Impairer.offer} and hands the
 * survivors, delayed and possibly reordered, to `deliver` in batches on later scheduler
 * turns (never inside `offer`). Used by the memory wire and the `impair` stage.
 */
export class Impairer {
  /** Counters. */
  readonly stats: ImpairmentStats = { offered: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0, corrupted: 0, queueDrops: 0 }
  private readonly rng: Random
  private readonly loss: number
  private readonly dup: number
  private readonly reorder: number
  private readonly reorderDelay: number
  private readonly corrupt: number
  private readonly delay: number
  private readonly jitter: number
  private readonly rate: number
  private readonly queueLimit: number
  /** Frames in delivery order (non-decreasing `at`). */
  private readonly inOrder = new Ring<InFlight>(256)
  /** Frames held back by the reorder impairment (non-decreasing `at`). */
  private readonly late = new Ring<InFlight>(16)
  private readonly timer: Timer
  private lastAt = 0
  private txFreeAt = 0
  private serializing = 0
  private readonly batch: Msg[] = []

  private readonly scheduler: Scheduler
  private readonly to: (batch: Msg[], count: number) => void

  /** Creates an impairer timed by `scheduler` delivering to `to`; bad values throw {@link ConfigError}. */
  constructor(scheduler: Scheduler, to: (batch: Msg[], count: number) => void, imp: Impairments, seed: number) {
    this.scheduler = scheduler
    this.to = to
    this.rng = new Random(imp.seed ?? seed)
    this.loss = checkProb('loss', imp.loss)
    this.dup = checkProb('duplicate', imp.duplicate)
    this.reorder = checkProb('reorder', imp.reorder)
    this.corrupt = checkProb('corrupt', imp.corrupt)
    this.reorderDelay = checkNonNeg('reorderDelayMs', imp.reorderDelayMs, 1)
    this.delay = checkNonNeg('delayMs', imp.delayMs, 0)
    this.jitter = checkNonNeg('jitterMs', imp.jitterMs, 0)
    this.rate = checkNonNeg('rateBps', imp.rateBps, 0)
    this.queueLimit = checkNonNeg('queueLimit', imp.queueLimit, 1000)
    this.timer = scheduler.timer(now => this.deliver(now))
  }

  /** Takes ownership of `msg` and impairs it. */
  offer(msg: Msg): void {
    const s = this.stats
    s.offered++
    const rng = this.rng
    if (this.loss > 0 && rng.chance(this.loss)) {
      s.lost++
      msg.free()
      return
    }
    if (this.dup > 0 && rng.chance(this.dup)) {
      s.duplicated++
      this.schedule(msg.clone())
    }
    this.schedule(msg)
  }

  private schedule(msg: Msg): void {
    const rng = this.rng
    const now = this.scheduler.now()
    let at = now
    if (this.rate > 0) {
      // Serialization: the line is busy until txFreeAt; a long queue tail-drops.
      if (this.txFreeAt < now) {
        this.txFreeAt = now
        this.serializing = 0
      }
      if (this.serializing >= this.queueLimit) {
        this.stats.queueDrops++
        msg.free()
        return
      }
      this.serializing++
      this.txFreeAt += ((msg.end - msg.off) * 8 * 1000) / this.rate
      at = this.txFreeAt
    }
    at += this.delay
    if (this.jitter > 0) at += rng.next() * this.jitter
    if (this.corrupt > 0 && rng.chance(this.corrupt) && msg.end > msg.off) {
      this.stats.corrupted++
      const i = msg.off + rng.int(0, msg.end - msg.off - 1)
      msg.buf[i]! ^= 1 << rng.int(0, 7)
    }
    if (this.reorder > 0 && rng.chance(this.reorder)) {
      this.stats.reordered++
      this.late.push({ at: at + this.reorderDelay, msg })
    } else {
      // Jitter never reorders: a frame leaves no earlier than the one before it.
      if (at < this.lastAt) at = this.lastAt
      this.lastAt = at
      this.inOrder.push({ at, msg })
    }
    this.arm()
  }

  private arm(): void {
    const a = this.inOrder.peek()
    const b = this.late.peek()
    const next = Math.min(a ? a.at : Infinity, b ? b.at : Infinity)
    if (next === Infinity) return
    if (!this.timer.armed || this.timer.deadline > next) this.timer.setAt(next)
  }

  private deliver(now: number): void {
    const batch = this.batch
    let n = 0
    for (;;) {
      const a = this.inOrder.peek()
      const b = this.late.peek()
      const takeLate = b !== undefined && b.at <= now && (a === undefined || b.at < a.at)
      if (takeLate) {
        batch[n++] = this.late.shift()!.msg
        continue
      }
      if (a !== undefined && a.at <= now) {
        batch[n++] = this.inOrder.shift()!.msg
        if (this.rate > 0) this.serializing = Math.max(0, this.serializing - 1)
        continue
      }
      break
    }
    this.stats.delivered += n
    if (n > 0) this.to(batch, n)
    for (let i = 0; i < n; i++) batch[i] = undefined as unknown as Msg
    this.arm()
  }

  /** Frees everything in flight and stops. */
  drain(): void {
    this.timer.cancel()
    this.inOrder.clear(f => f.msg.free())
    this.late.clear(f => f.msg.free())
  }
}

