/**
 * Reassembly of IPv4 fragments (RFC 791 §3.2, RFC 815's hole bookkeeping, RFC 1122
 * §3.3.2), with a memory bound, a timeout, and RFC 5722's rule carried over to IPv4:
 * a fragment that overlaps another discards the whole datagram (overlaps are how
 * reassembly ambiguities and IDS evasion happen). Exact duplicates (same offset and
 * length, e.g. from a duplicating link) are dropped alone, as Linux does.
 *
 * Datagrams are keyed by (src, dst, protocol, id) in a {@link FlowTable}; each one in
 * progress holds one buffer from the super-frame pool. A slow path: fragments are copied.
 * @module
 */
import { get16, get32, set16 } from '../../core/bytes.js'
import { ConfigError } from '../../core/errors.js'
import { FlowTable } from '../../core/flow-table.js'
import { superFramePool, type Msg, type MsgPool } from '../../core/msg.js'
import type { Scheduler } from '../../core/scheduler.js'
import type { Timer } from '../../core/timers.js'
import { IP, IpFlags, fillIpv4Checksum } from './header.js'

/** Why a fragment was refused; the caller drops it with this reason. */
export const REASSEMBLY_DROPS = ['overlap', 'duplicate-fragment', 'bad-fragment', 'too-big', 'reassembly-full'] as const
/** One of {@link REASSEMBLY_DROPS}. */
export type ReassemblyDrop = (typeof REASSEMBLY_DROPS)[number]

/** Options of a {@link Reassembler}. */
export interface ReassemblerOptions {
  /** Give up on a datagram this long after its first fragment (default 30 s; RFC 1122 §3.3.2 asks for a bounded, configurable timer). */
  timeoutMs?: number
  /** Most datagrams in progress at once (default 16); the oldest is discarded to make room. */
  maxDatagrams?: number
  /** Most fragment payload bytes held across all datagrams (default 1 MiB); the oldest datagrams make room. */
  maxBytes?: number
  /** Pool the reassembly buffers come from (default: the super-frame pool, 64 KiB buffers). */
  pool?: MsgPool
  /**
   * Called when a datagram whose first fragment had arrived times out, with its header
   * and first data bytes at `b[off..end)` (valid only during the call), so the host can
   * send ICMP time exceeded, code 1 (RFC 1122 §3.3.2, RFC 792).
   */
  onTimeout?: (b: Uint8Array, off: number, end: number) => void
}

/** Counters of a {@link Reassembler}. */
export interface ReassemblyStats {
  /** Datagrams in progress. */
  inProgress: number
  /** Payload bytes held. */
  bytesHeld: number
  /** Datagrams completed. */
  completed: number
  /** Datagrams discarded because a fragment overlapped. */
  overlapDiscards: number
  /** Datagrams discarded on timeout. */
  timeouts: number
  /** Datagrams discarded to respect the memory bound. */
  evictions: number
}

interface Pending {
  src: number
  dst: number
  key: number
  buf: Msg
  /** Received byte ranges [start, end) of the payload, sorted, non-overlapping. */
  ranges: number[]
  /** Payload length, known once the last fragment (MF = 0) arrived; -1 before. */
  total: number
  /** Header of the fragment at offset 0 (its length), 0 before it arrived. */
  hlen: number
  received: number
  deadline: number
  dead: boolean
}

/** Where payload starts in a reassembly buffer: room in front for the largest IP header plus an Ethernet header. */
const DATA_AT = 128
/** Largest payload of a datagram (65535 minus the smallest header). */
const MAX_PAYLOAD = 65535 - IP.HLEN

/** Reassembles fragments into datagrams. */
export class Reassembler {
  private readonly table = new FlowTable<Pending>(64)
  private readonly order: Pending[] = []
  private readonly timeoutMs: number
  private readonly maxDatagrams: number
  private readonly maxBytes: number
  private readonly pool: MsgPool
  private readonly scheduler: Scheduler
  private readonly timer: Timer
  private readonly onTimeout: ((b: Uint8Array, off: number, end: number) => void) | null
  private bytesHeld = 0
  private readonly counters = { completed: 0, overlapDiscards: 0, timeouts: 0, evictions: 0 }

  /** Creates a reassembler timed by `scheduler`; bad limits throw {@link ConfigError}. */
  constructor(scheduler: Scheduler, opts: ReassemblerOptions = {}) {
    this.scheduler = scheduler
    this.timeoutMs = opts.timeoutMs ?? 30_000
    this.maxDatagrams = opts.maxDatagrams ?? 16
    this.maxBytes = opts.maxBytes ?? 1 << 20
    this.pool = opts.pool ?? superFramePool
    if (!(this.timeoutMs > 0) || !(this.maxDatagrams >= 1) || !(this.maxBytes >= 576)) {
      throw new ConfigError(`Reassembler: timeoutMs must be > 0, maxDatagrams >= 1 and maxBytes >= 576 (got ${this.timeoutMs}, ${this.maxDatagrams}, ${this.maxBytes})`)
    }
    if (this.pool.bufSize < DATA_AT + MAX_PAYLOAD) throw new ConfigError(`Reassembler: pool buffers of ${this.pool.bufSize} bytes cannot hold a 64 KiB datagram`)
    this.onTimeout = opts.onTimeout ?? null
    this.timer = scheduler.timer(now => this.expire(now))
  }

  /**
   * Adds the fragment whose valid IPv4 header (length `hlen`, total length already
   * trimmed to `msg.end`) is at `msg.off`. Returns the reassembled datagram (a new Msg
   * with `off` at its IP header, checksum recomputed) when this fragment completed it;
   * null when the fragment was absorbed (it has been freed); or a drop reason (`msg`
   * stays the caller's).
   */
  add(msg: Msg, hlen: number): Msg | null | ReassemblyDrop {
    const b = msg.buf
    const o = msg.off
    const frag = get16(b, o + IP.FRAG)
    const start = (frag & IpFlags.OFFSET_MASK) * 8
    const len = msg.end - o - hlen
    const end = start + len
    const mf = (frag & IpFlags.MF) !== 0
    // RFC 791: every fragment but the last carries a multiple of 8 data bytes, and none is empty.
    if (len <= 0 || (mf && (len & 7) !== 0)) return 'bad-fragment'
    if (end > MAX_PAYLOAD) return 'too-big'
    const src = get32(b, o + IP.SRC)
    const dst = get32(b, o + IP.DST)
    const key = ((b[o + IP.PROTO]! << 16) | get16(b, o + IP.ID)) >>> 0
    let p = this.table.get(src, dst, key)
    if (p === undefined) {
      if (!this.makeRoom(len)) return 'reassembly-full'
      const buf = this.pool.alloc()
      p = { src, dst, key, buf, ranges: [], total: -1, hlen: 0, received: 0, deadline: this.scheduler.now() + this.timeoutMs, dead: false }
      this.table.set(src, dst, key, p)
      this.order.push(p)
      if (!this.timer.armed) this.timer.setAt(p.deadline)
    } else if (!this.makeRoom(len, p)) {
      return 'reassembly-full'
    }
    // The last fragment fixes the length; everything must agree with it.
    if (!mf) {
      if ((p.total >= 0 && p.total !== end) || (p.ranges.length > 0 && p.ranges[p.ranges.length - 1]! > end)) {
        this.discard(p)
        return 'bad-fragment'
      }
      p.total = end
    } else if (p.total >= 0 && end > p.total) {
      this.discard(p)
      return 'bad-fragment'
    }
    // Find where [start, end) goes among the sorted ranges.
    const r = p.ranges
    let i = 0
    while (i < r.length && r[i + 1]! <= start) i += 2
    if (i < r.length && r[i]! < end) {
      if (r[i] === start && r[i + 1] === end) return 'duplicate-fragment'
      // RFC 5722 §4 (applied to IPv4): an overlap discards the datagram and this fragment.
      this.counters.overlapDiscards++
      this.discard(p)
      return 'overlap'
    }
    r.splice(i, 0, start, end)
    p.buf.buf.set(b.subarray(o + hlen, msg.end), DATA_AT + start)
    p.received += len
    this.bytesHeld += len
    if (start === 0) {
      // The first fragment's header (with all its options) becomes the datagram's header.
      p.hlen = hlen
      p.buf.buf.set(b.subarray(o, o + hlen), DATA_AT - hlen)
    }
    msg.free()
    if (p.total < 0 || p.received !== p.total || p.hlen === 0) return null
    // Complete: no holes, since ranges never overlap and their lengths sum to the total.
    const out = p.buf
    p.dead = true
    this.table.delete(p.src, p.dst, p.key)
    this.bytesHeld -= p.received
    out.off = DATA_AT - p.hlen
    out.end = DATA_AT + p.total
    out.l3 = out.off
    set16(out.buf, out.off + IP.LEN, p.hlen + p.total)
    set16(out.buf, out.off + IP.FRAG, get16(out.buf, out.off + IP.FRAG) & IpFlags.DF)
    fillIpv4Checksum(out.buf, out.off)
    this.counters.completed++
    return out
  }

  /** Discards every datagram in progress. */
  clear(): void {
    for (const p of this.order) if (!p.dead) this.discard(p)
    this.order.length = 0
    this.timer.cancel()
  }

  /** A snapshot of the counters. */
  stats(): ReassemblyStats {
    return { inProgress: this.table.size, bytesHeld: this.bytesHeld, ...this.counters }
  }

  private discard(p: Pending): void {
    if (p.dead) return
    p.dead = true
    this.table.delete(p.src, p.dst, p.key)
    this.bytesHeld -= p.received
    p.buf.free()
  }

  /** Evicts the oldest datagrams (never `keep`) until `len` more bytes and one more datagram fit. */
  private makeRoom(len: number, keep?: Pending): boolean {
    if (len > this.maxBytes) return false
    for (let i = 0; i < this.order.length; i++) {
      const full = (keep === undefined && this.table.size >= this.maxDatagrams) || this.bytesHeld + len > this.maxBytes
      if (!full) break
      const victim = this.order[i]!
      if (victim.dead || victim === keep) continue
      this.counters.evictions++
      this.discard(victim)
    }
    this.compact()
    return !((keep === undefined && this.table.size >= this.maxDatagrams) || this.bytesHeld + len > this.maxBytes)
  }

  private compact(): void {
    let w = 0
    for (let i = 0; i < this.order.length; i++) {
      const p = this.order[i]!
      if (!p.dead) this.order[w++] = p
    }
    this.order.length = w
  }

  private expire(now: number): void {
    // RFC 1122 §3.3.2: when the timer runs out, discard the partial datagram.
    for (const p of this.order) {
      if (p.dead || p.deadline > now) continue
      this.counters.timeouts++
      if (p.hlen > 0 && this.onTimeout !== null) {
        // The first fragment's header is in place; quote it with the data that follows it.
        const have = p.ranges[1]!
        this.onTimeout(p.buf.buf, DATA_AT - p.hlen, DATA_AT + Math.min(have, 8))
      }
      this.discard(p)
    }
    this.compact()
    const first = this.order[0]
    if (first !== undefined) this.timer.setAt(first.deadline)
  }
}
