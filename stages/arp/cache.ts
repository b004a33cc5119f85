/**
 * ArpCache: one interface's IPv4-to-MAC bindings (RFC 826 translation table) with the
 * timeouts, limits and bounded pending queues of RFC 1122 §2.3.2.
 *
 * ```
 *   (none) ──lookup miss──▶ INCOMPLETE ──reply──▶ REACHABLE ──reachableMs──▶ STALE
 *                              │  retries exhausted                   │ refresh request,
 *                              ▼                                      │ still used; reply
 *                            FAILED ──failedHoldMs──▶ (none)           ▼ ⇒ REACHABLE,
 *                                                                   no reply ⇒ (none)
 * ```
 * The fast path is `lookup(ip)`: one Map probe, no clock read. Aging runs on one
 * scheduler timer that sweeps the table every `sweepMs` while it is not empty.
 * @module
 */
import type { Msg } from '../../core/msg.js'
import { ConfigError } from '../../core/errors.js'
import { formatIPv4, formatMac } from '../../core/bytes.js'
import type { Scheduler } from '../../core/scheduler.js'
import type { Timer } from '../../core/timers.js'
import { ETH, writeMac } from '../eth/header.js'
import { buildArpRequest } from './packet.js'

/** Binding states (see the module diagram). */
export type ArpState = 'INCOMPLETE' | 'REACHABLE' | 'STALE' | 'FAILED'

/** One binding. */
export interface ArpEntry {
  /** IPv4 address (u32). */
  readonly ip: number
  /** State. */
  state: ArpState
  /** MAC (valid in REACHABLE and STALE). */
  readonly mac: Uint8Array
  /** Clock time the state expires or the next request is due. */
  deadline: number
  /** Requests sent in this state. */
  requests: number
  /** Frames waiting for resolution (INCOMPLETE only), oldest first. */
  pending: Msg[]
  /** True for an entry set by hand (never ages). */
  permanent: boolean
}

/** Options of an {@link ArpCache}. */
export interface ArpCacheOptions {
  /** Our MAC (sender hardware address of requests). */
  mac: Uint8Array
  /** Our IPv4 address (sender protocol address of requests). */
  ip: number
  /** Sends a complete Ethernet frame on the interface; takes ownership. */
  transmit: (frame: Msg) => void
  /** Most bindings held (default 1024); beyond it new resolutions are refused. */
  maxEntries?: number
  /** How long a binding is trusted (default 60 s; RFC 1122 §2.3.2.1 asks for a timeout). */
  reachableMs?: number
  /** Interval between requests for one address (default 1000 ms: RFC 1122 §2.3.2.1 "no more than one per second"). */
  retryMs?: number
  /** Requests before giving up (default 3). */
  maxRequests?: number
  /** How long an unresolvable address stays FAILED (default 20 s), so traffic to it does not flood requests. */
  failedHoldMs?: number
  /** Frames queued per unresolved address (default 8; RFC 1122 §2.3.2.2: SHOULD save at least one). */
  maxPending?: number
}

/** Counters of an {@link ArpCache}. */
export interface ArpCacheStats {
  /** Bindings now held. */
  entries: number
  /** Requests sent (including refreshes and gratuitous ones). */
  requestsSent: number
  /** Frames queued while resolving. */
  queued: number
  /** Queued frames sent once the address resolved. */
  released: number
  /** Queued frames dropped: resolution failed. */
  unresolvedDrops: number
  /** Frames pushed out of a full pending queue (oldest first). */
  pendingOverflow: number
  /** Resolutions refused because the table was full. */
  tableFull: number
  /** Resolutions that failed after `maxRequests` requests. */
  failures: number
}

/** Why a frame could not be parked for resolution. */
export type ParkRefusal = 'arp-failed' | 'arp-table-full'

/** The ARP table of one interface. */
export class ArpCache {
  /** Our MAC. */
  readonly mac: Uint8Array
  /** Our IPv4 address (u32). */
  ip: number
  /** Bumped on every change of any binding, so a caller may cache a lookup and re-check it with one compare. */
  version = 0
  private readonly transmit: (frame: Msg) => void
  private readonly table = new Map<number, ArpEntry>()
  private readonly maxEntries: number
  private readonly reachableMs: number
  private readonly retryMs: number
  private readonly maxRequests: number
  private readonly failedHoldMs: number
  private readonly maxPending: number
  private readonly scheduler: Scheduler
  private readonly sweeper: Timer
  private readonly counters: Omit<ArpCacheStats, 'entries'> = {
    requestsSent: 0, queued: 0, released: 0, unresolvedDrops: 0, pendingOverflow: 0, tableFull: 0, failures: 0,
  }

  /** Creates an empty table; bad limits throw {@link ConfigError}. */
  constructor(scheduler: Scheduler, opts: ArpCacheOptions) {
    this.scheduler = scheduler
    this.mac = opts.mac
    this.ip = opts.ip
    this.transmit = opts.transmit
    this.maxEntries = positive('maxEntries', opts.maxEntries, 1024)
    this.reachableMs = positive('reachableMs', opts.reachableMs, 60_000)
    this.retryMs = positive('retryMs', opts.retryMs, 1000)
    this.maxRequests = positive('maxRequests', opts.maxRequests, 3)
    this.failedHoldMs = positive('failedHoldMs', opts.failedHoldMs, 20_000)
    this.maxPending = positive('maxPending', opts.maxPending, 8)
    this.sweeper = scheduler.timer(now => this.sweep(now))
  }

  /** Number of bindings (any state). */
  get size(): number {
    return this.table.size
  }

  /** Fast path: the MAC for `ip` if it is usable (REACHABLE or STALE), else null. */
  lookup(ip: number): Uint8Array | null {
    const e = this.table.get(ip)
    if (e === undefined) return null
    return e.state === 'REACHABLE' || e.state === 'STALE' ? e.mac : null
  }

  /** The entry for `ip` (inspection, tests). */
  entry(ip: number): Readonly<ArpEntry> | undefined {
    return this.table.get(ip)
  }

  /**
   * Parks a complete frame (destination MAC still to fill in at `frame.off`) until `ip`
   * resolves, sending a request if none is outstanding. Returns null when parked (the
   * cache owns the frame), else why not (the caller drops it).
   */
  park(frame: Msg, ip: number): ParkRefusal | null {
    let e = this.table.get(ip)
    const now = this.scheduler.now()
    if (e === undefined) {
      if (this.table.size >= this.maxEntries && !this.evictOne()) {
        this.counters.tableFull++
        return 'arp-table-full'
      }
      e = { ip, state: 'INCOMPLETE', mac: new Uint8Array(6), deadline: now + this.retryMs, requests: 0, pending: [], permanent: false }
      this.table.set(ip, e)
      this.version++
      this.request(e)
      this.armSweep()
    } else if (e.state === 'FAILED') {
      return 'arp-failed'
    } else if (e.state !== 'INCOMPLETE') {
      // Usable binding: the caller raced a state change; send right away.
      writeMac(frame.buf, frame.off + ETH.DST, e.mac)
      this.transmit(frame)
      return null
    }
    // RFC 1122 §2.3.2.2: keep a bounded queue; when full, the oldest frame makes room.
    if (e.pending.length >= this.maxPending) {
      this.counters.pendingOverflow++
      e.pending.shift()!.free()
    }
    e.pending.push(frame)
    this.counters.queued++
    return null
  }

  /**
   * Records `ip` → `mac` (RFC 826 "merge"): updates an existing entry; creates one only
   * if `create` (the packet was addressed to us). Sends frames queued for `ip`. Returns
   * true if an entry was updated or created.
   */
  learn(ip: number, mac: Uint8Array, macOff = 0, create = false): boolean {
    let e = this.table.get(ip)
    if (e === undefined) {
      if (!create) return false
      if (this.table.size >= this.maxEntries && !this.evictOne()) {
        this.counters.tableFull++
        return false
      }
      e = { ip, state: 'REACHABLE', mac: new Uint8Array(6), deadline: 0, requests: 0, pending: [], permanent: false }
      this.table.set(ip, e)
    }
    if (e.permanent) return true
    this.version++
    e.mac.set(mac.subarray(macOff, macOff + 6))
    e.state = 'REACHABLE'
    e.deadline = this.scheduler.now() + this.reachableMs
    e.requests = 0
    this.armSweep()
    if (e.pending.length > 0) {
      const q = e.pending
      e.pending = []
      for (const f of q) {
        writeMac(f.buf, f.off + ETH.DST, e.mac)
        this.counters.released++
        this.transmit(f)
      }
    }
    return true
  }

  /** Adds a permanent binding (static ARP). */
  setStatic(ip: number, mac: Uint8Array): void {
    const e: ArpEntry = { ip, state: 'REACHABLE', mac: Uint8Array.from(mac), deadline: Infinity, requests: 0, pending: [], permanent: true }
    const old = this.table.get(ip)
    this.table.set(ip, e)
    this.version++
    if (old !== undefined && old.pending.length > 0) {
      for (const f of old.pending) {
        writeMac(f.buf, f.off + ETH.DST, e.mac)
        this.counters.released++
        this.transmit(f)
      }
    }
  }

  /** Sends a gratuitous ARP request announcing our binding (RFC 5227 §3, RFC 826). */
  announce(): void {
    this.counters.requestsSent++
    this.transmit(buildArpRequest(this.mac, this.ip, this.ip))
  }

  /** Removes every binding, freeing queued frames. */
  clear(): void {
    for (const e of this.table.values()) this.dropPending(e)
    this.table.clear()
    this.version++
    this.sweeper.cancel()
  }

  /** A snapshot of the counters. */
  stats(): ArpCacheStats {
    return { entries: this.table.size, ...this.counters }
  }

  /** The table as text, one binding per line. */
  describe(): string {
    const lines: string[] = []
    for (const e of this.table.values()) {
      lines.push(`${formatIPv4(e.ip).padEnd(15)} ${e.state === 'INCOMPLETE' || e.state === 'FAILED' ? '(incomplete)     ' : formatMac(e.mac)} ${e.permanent ? 'PERMANENT' : e.state}${e.pending.length ? ` ${e.pending.length} queued` : ''}`)
    }
    return lines.join('\n')
  }

  private request(e: ArpEntry): void {
    e.requests++
    this.counters.requestsSent++
    this.transmit(buildArpRequest(this.mac, this.ip, e.ip))
  }

  private dropPending(e: ArpEntry): void {
    for (const f of e.pending) f.free()
    this.counters.unresolvedDrops += e.pending.length
    e.pending = []
  }

  /** Makes room by evicting a FAILED entry, else the STALE one closest to expiry. */
  private evictOne(): boolean {
    let victim: ArpEntry | undefined
    for (const e of this.table.values()) {
      if (e.permanent || e.state === 'INCOMPLETE') continue
      if (e.state === 'FAILED') {
        victim = e
        break
      }
      if (victim === undefined || e.deadline < victim.deadline) victim = e
    }
    if (victim === undefined) return false
    this.table.delete(victim.ip)
    this.version++
    return true
  }

  private armSweep(): void {
    if (!this.sweeper.armed) this.sweeper.set(Math.min(this.retryMs, this.reachableMs))
  }

  private sweep(now: number): void {
    for (const e of this.table.values()) {
      if (e.permanent || now < e.deadline) continue
      this.version++
      switch (e.state) {
        case 'INCOMPLETE':
          // RFC 1122 §2.3.2.1: retransmit at most once per second, give up after a few.
          if (e.requests >= this.maxRequests) {
            this.counters.failures++
            this.dropPending(e)
            e.state = 'FAILED'
            e.deadline = now + this.failedHoldMs
          } else {
            this.request(e)
            e.deadline = now + this.retryMs
          }
          break
        case 'REACHABLE':
          // RFC 1122 §2.3.2.1 (timeout): keep using the binding while we re-validate it.
          e.state = 'STALE'
          e.requests = 0
          this.request(e)
          e.deadline = now + this.retryMs
          break
        case 'STALE':
          if (e.requests >= this.maxRequests) this.table.delete(e.ip)
          else {
            this.request(e)
            e.deadline = now + this.retryMs
          }
          break
        case 'FAILED':
          this.table.delete(e.ip)
          break
        default: {
          const never: never = e.state
          throw new Error(`unknown ARP state ${String(never)}`)
        }
      }
    }
    let live = false
    for (const e of this.table.values()) {
      if (!e.permanent) {
        live = true
        break
      }
    }
    if (live) this.sweeper.set(Math.min(this.retryMs, this.reachableMs))
  }
}

function positive(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt
  if (!(v > 0) || !Number.isFinite(v)) throw new ConfigError(`ArpCache: '${name}' must be a finite number > 0, got ${v}`)
  return v
}
