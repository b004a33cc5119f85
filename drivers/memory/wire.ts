/**
 * The memory wire: two in-process {@link Device}s joined back to back, with seeded
 * impairments (loss, duplication, reordering, delay and jitter, corruption, a rate limit
 * with a bounded queue). Every path runs unchanged on it, and with a virtual-time
 * {@link Scheduler} a whole network runs deterministically, faster than real time.
 *
 * ```
 *   a.send() ─▶ [loss] [dup] [corrupt] [rate/queue] [delay+jitter] [reorder] ─▶ b's handler
 *   b.send() ─▶            (the same, with its own seeded generator)          ─▶ a's handler
 * ```
 * Frames are handed over, not copied (a duplicate is a copy). Delivery always happens on a
 * later scheduler turn, never inside `send`, so a path never re-enters itself.
 * @module
 */
import type { Device, DeviceOffloads, DeviceStats, ReceiveHandler } from '../../core/device.js'
import { NO_OFFLOADS } from '../../core/device.js'
import { ConfigError } from '../../core/errors.js'
import type { Msg } from '../../core/msg.js'
import { Random } from '../../core/random.js'
import { Ring } from '../../core/ring.js'
import type { Scheduler } from '../../core/scheduler.js'
import type { Timer } from '../../core/timers.js'

/** Impairments of one direction of a wire. Probabilities are per frame, 0..1. */
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

/** One end of a wire. */
export interface WireEndOptions {
  /** Device name (default `mem0` / `mem1`). */
  name?: string
  /** MAC address (default 02:00:00:00:00:01 / :02). */
  mac?: Uint8Array
  /** MTU (default 1500). */
  mtu?: number
}

/** Options of a {@link MemoryWire}. */
export interface WireOptions {
  /** End A. */
  a?: WireEndOptions
  /** End B. */
  b?: WireEndOptions
  /** Impairments for both directions (overridden per direction by `aToB` / `bToA`). */
  impair?: Impairments
  /** Impairments from A to B. */
  aToB?: Impairments
  /** Impairments from B to A. */
  bToA?: Impairments
  /** Seed for the generators (default 1). */
  seed?: number
}

/** Impairment counters of both directions of a {@link MemoryWire}. */
export interface WireStats {
  /** Frames sent from A to B. */
  aToB: ImpairmentStats
  /** Frames sent from B to A. */
  bToA: ImpairmentStats
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
  if (!(v >= 0 && v <= 1)) throw new ConfigError(`memory wire: impairment '${name}' must be a probability between 0 and 1, got ${v}`)
  return v
}

function checkNonNeg(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt
  if (!(v >= 0) || !Number.isFinite(v)) throw new ConfigError(`memory wire: '${name}' must be a finite number >= 0, got ${v}`)
  return v
}

/** A frame in flight with its delivery time. */
interface InFlight {
  at: number
  msg: Msg
}

/** One direction of the wire: impairs frames and delivers them to the receiving device. */
class Lane {
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

  constructor(
    private readonly scheduler: Scheduler,
    private readonly to: MemoryDevice,
    imp: Impairments,
    seed: number,
  ) {
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
    if (n > 0) this.to.receive(batch, n)
    for (let i = 0; i < n; i++) batch[i] = undefined as unknown as Msg
    this.arm()
  }

  drain(): void {
    this.timer.cancel()
    this.inOrder.clear(f => f.msg.free())
    this.late.clear(f => f.msg.free())
  }
}

/** One end of a {@link MemoryWire}. */
export class MemoryDevice implements Device {
  /** Device name. */
  readonly name: string
  /** MTU. */
  readonly mtu: number
  /** MAC address. */
  readonly mac: Uint8Array
  /** No offloads. */
  readonly offloads: DeviceOffloads = NO_OFFLOADS
  /** @internal The lane frames sent from this device travel on. */
  lane: Lane | null = null
  private handler: ReceiveHandler | null = null
  private closed = false
  private readonly counters: DeviceStats = { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, drops: {} }

  /** @internal Use {@link MemoryWire}. */
  constructor(opts: Required<WireEndOptions>) {
    this.name = opts.name
    this.mtu = opts.mtu
    this.mac = opts.mac
  }

  /** Sends frames onto the wire (takes ownership). Oversize frames are dropped as `'oversize'`. */
  send(batch: Msg[], count: number): void {
    const c = this.counters
    for (let i = 0; i < count; i++) {
      const m = batch[i]!
      const len = m.end - m.off
      if (this.closed || this.lane === null) {
        this.countDrop('closed')
        m.free()
        continue
      }
      if (len > this.mtu + 18) {
        this.countDrop('oversize')
        m.free()
        continue
      }
      c.txFrames++
      c.txBytes += len
      this.lane.offer(m)
    }
  }

  /** Installs the receive handler. */
  onReceive(handler: ReceiveHandler | null): void {
    this.handler = handler
  }

  /** @internal Called by the lane delivering to this device. */
  receive(batch: Msg[], count: number): void {
    const h = this.handler
    if (h === null || this.closed) {
      for (let i = 0; i < count; i++) batch[i]!.free()
      this.countDrop(this.closed ? 'closed' : 'no-handler', count)
      return
    }
    const c = this.counters
    c.rxFrames += count
    for (let i = 0; i < count; i++) c.rxBytes += batch[i]!.end - batch[i]!.off
    h(batch, count)
  }

  /** Counters. */
  stats(): DeviceStats {
    return { ...this.counters, drops: { ...this.counters.drops } }
  }

  /** Stops the device; frames in flight towards it are dropped on arrival. */
  async close(): Promise<void> {
    this.closed = true
    this.handler = null
  }

  private countDrop(reason: string, n = 1): void {
    this.counters.drops[reason] = (this.counters.drops[reason] ?? 0) + n
  }
}

/** Two {@link MemoryDevice}s joined back to back through impairment lanes. */
export class MemoryWire {
  /** End A. */
  readonly a: MemoryDevice
  /** End B. */
  readonly b: MemoryDevice
  private readonly ab: Lane
  private readonly ba: Lane

  /** Creates a wire whose lanes are timed by `scheduler`. Bad impairment values throw {@link ConfigError}. */
  constructor(scheduler: Scheduler, opts: WireOptions = {}) {
    const seed = opts.seed ?? 1
    this.a = new MemoryDevice({ name: opts.a?.name ?? 'mem0', mtu: opts.a?.mtu ?? 1500, mac: opts.a?.mac ?? Uint8Array.of(2, 0, 0, 0, 0, 1) })
    this.b = new MemoryDevice({ name: opts.b?.name ?? 'mem1', mtu: opts.b?.mtu ?? 1500, mac: opts.b?.mac ?? Uint8Array.of(2, 0, 0, 0, 0, 2) })
    this.ab = new Lane(scheduler, this.b, { ...opts.impair, ...opts.aToB }, seed)
    this.ba = new Lane(scheduler, this.a, { ...opts.impair, ...opts.bToA }, (seed ^ 0x5bd1e995) >>> 0)
    this.a.lane = this.ab
    this.b.lane = this.ba
  }

  /** Impairment counters per direction. */
  stats(): WireStats {
    return { aToB: { ...this.ab.stats }, bToA: { ...this.ba.stats } }
  }

  /** Closes both ends and frees frames in flight. */
  async close(): Promise<void> {
    this.ab.drain()
    this.ba.drain()
    await this.a.close()
    await this.b.close()
  }
}
