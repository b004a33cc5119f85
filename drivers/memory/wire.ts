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
import { Impairer, type Impairments, type ImpairmentStats } from '../../core/impair.js'
export type { Impairments, ImpairmentStats } from '../../core/impair.js'
import type { Msg } from '../../core/msg.js'
import type { Scheduler } from '../../core/scheduler.js'

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
  lane: Impairer | null = null
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
  private readonly ab: Impairer
  private readonly ba: Impairer

  /** Creates a wire whose lanes are timed by `scheduler`. Bad impairment values throw {@link ConfigError}. */
  constructor(scheduler: Scheduler, opts: WireOptions = {}) {
    const seed = opts.seed ?? 1
    this.a = new MemoryDevice({ name: opts.a?.name ?? 'mem0', mtu: opts.a?.mtu ?? 1500, mac: opts.a?.mac ?? Uint8Array.of(2, 0, 0, 0, 0, 1) })
    this.b = new MemoryDevice({ name: opts.b?.name ?? 'mem1', mtu: opts.b?.mtu ?? 1500, mac: opts.b?.mac ?? Uint8Array.of(2, 0, 0, 0, 0, 2) })
    this.ab = new Impairer(scheduler, (batch, n) => this.b.receive(batch, n), { ...opts.impair, ...opts.aToB }, seed)
    this.ba = new Impairer(scheduler, (batch, n) => this.a.receive(batch, n), { ...opts.impair, ...opts.bToA }, (seed ^ 0x5bd1e995) >>> 0)
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
