/**
 * TapDevice: a Linux TAP interface as a pathsplice {@link Device}, through the native addon
 * in `./native` (a reader thread per device, batches across the boundary, optional
 * virtio-net header offloads).
 *
 * Read first: Linux `Documentation/networking/tuntap.rst`, netdevice(7), the virtio spec
 * §5.1.6 (struct virtio_net_hdr).
 *
 * ```
 *   reader thread ─▶ native ring ─(onReadable, once per burst)─▶ drain(): ONE recv() call per
 *   batch of up to `batchSize` frames: MTU frames are copied into framePool Msgs; on TSO /
 *   jumbo devices the ring's slots are posted superFramePool buffers, so super-frames are
 *   read in place and handed over without a copy ─▶ handler(batch, n)
 *   send(batch, n) ─▶ ONE native call writes them all (virtio-net header from msg.vnet) ─▶ each Msg freed
 * ```
 * Receiving allocates only pool buffers to replace the ones handed on, plus a
 * {@link VnetHeader} object for frames whose virtio-net header is not all zeros.
 * Lifecycle: `TapDevice.open()` → `onReceive(h)` → ... → `close()`. While a handler is
 * installed and the device is open it keeps the process alive, like a socket (`unref()`
 * opts out); `close()` stops the thread, closes the fd (deleting a non-persistent
 * interface, even from another namespace) and lets the process exit.
 * @module
 */
import { createRequire } from 'node:module'
import { constants as osConstants } from 'node:os'
import { performance } from 'node:perf_hooks'
import type { Device, DeviceOffloads, DeviceStats, ReceiveHandler } from '../../core/device.js'
import type { Clock } from '../../core/clock.js'
import { VNET_F_NEEDS_CSUM, type Msg, type MsgPool, type VnetHeader } from '../../core/msg.js'
import { framePool, superFramePool } from '../../core/msg.js'
import { DeviceError } from '../../core/errors.js'
import { formatMac, parseMac } from '../../core/bytes.js'
import type * as Native from './native/index.js'

/** Options of {@link TapDevice.open}. */
export interface TapOptions {
  /** Interface name, at most 15 characters; a `%d` pattern (`ps%d`) lets the kernel pick. Default `ps%d`. */
  name?: string
  /** Create the interface if missing (default true); false fails with ENODEV when it does not exist. */
  create?: boolean
  /** MTU to set (default: keep the kernel's, 1500 for a new TAP). */
  mtu?: number
  /** Bring the interface up (default true). */
  up?: boolean
  /** MAC address to set (default: the kernel's random one). */
  mac?: Uint8Array | string
  /** Open with IFF_VNET_HDR: frames carry a virtio-net header, checksums may be partial (default false). */
  vnetHdr?: boolean
  /** Accept TCP segmentation super-frames up to 64 KiB from the kernel; implies `vnetHdr` (default false). */
  tso?: boolean
  /** Most frames handed to the receive handler in one call (default 64). */
  batchSize?: number
  /** Frames the native ring holds before the reader stops reading: backpressure (default 256; 64 with TSO or jumbo MTU, whose slots hold 64 KiB each). */
  ringSlots?: number
  /** Stamps `msg.rxTime` (default `performance.now()`). */
  clock?: Clock
  /** Value for `msg.ingress` of received frames (default -1; forwarders set their device index). */
  ingress?: number
  /** Called once if the reader thread stops on an error (e.g. the interface was deleted). */
  onError?: (err: DeviceError) => void
}

/** Native state of a {@link TapDevice}. */
export interface TapInfo {
  /** The TAP file descriptor (-1 once closed). */
  fd: number
  /** Frames read by the reader thread and not yet handed to JavaScript. */
  queued: number
  /** errno that stopped the reader thread (0 while it runs). */
  readerErrno: number
  /** True once closed. */
  closed: boolean
}

/** Drop reasons a TapDevice counts. */
export const TAP_DROP_REASONS = ['no-handler', 'oversize', 'tx-error', 'tx-link-down', 'gso-unsupported', 'bad-range', 'closed'] as const
/** One of {@link TAP_DROP_REASONS}. */
export type TapDropReason = (typeof TAP_DROP_REASONS)[number]

// open() flag bits, as in native/src/lib.rs.
const OPEN_CREATE = 1
const OPEN_VNET = 2
const OPEN_TSO = 4
const OPEN_UP = 8
/** Ints per frame record in the native meta arrays; the recv header is as long. */
const REC = 8
/** Receive batches per wake-up before yielding to the event loop (timers, I/O must not starve). */
const MAX_BATCHES_PER_TURN = 16
/** Ethernet header + one VLAN tag + FCS slack: a frame is at most MTU + 22 bytes. */
const L2_OVERHEAD = 22
/** virtio-net header (no mergeable buffers). */
const VNET_HDR_LEN = 10
/** Largest GSO super-frame the kernel hands a TAP: skb->len is bounded by gso_max_size (64 KiB). */
const GSO_MAX_FRAME = 65536

const EIO = 5
const ENETDOWN = 100
const EBADF = 9
const EBADFD = 77

let nativeModule: typeof Native | null = null

/**
 * Loads the native addon once. It lives beside this file in the source tree
 * (`drivers/tap/native`); compiled code in `dist/drivers/tap` finds it three levels up.
 */
export function loadNative(): typeof Native {
  if (nativeModule) return nativeModule
  const require = createRequire(import.meta.url)
  let firstError: unknown = null
  for (const spec of ['./native/index.js', '../../../drivers/tap/native/index.js']) {
    try {
      nativeModule = require(spec) as typeof Native
      return nativeModule
    } catch (err) {
      // Keep the most useful error: the loader's own (addon missing) over "module not found".
      if (firstError === null || (err as { code?: string }).code === 'ERR_TAP_ADDON_MISSING') firstError = err
    }
  }
  throw new DeviceError(`TAP driver unavailable: ${(firstError as Error).message}`, { cause: firstError })
}

/** errno-specific hints for open failures (the message keeps the kernel's text too). */
const OPEN_HINTS: Record<string, string> = {
  EPERM: 'opening /dev/net/tun needs CAP_NET_ADMIN (run as root, or grant the capability)',
  EACCES: 'opening /dev/net/tun needs CAP_NET_ADMIN and access to /dev/net/tun (run as root)',
  EBUSY: 'device busy: another process or TapDevice has this TAP open (TAP devices without IFF_MULTI_QUEUE take one reader)',
  ENODEV: 'no such device (pass create: true to create it)',
  ENOENT: '/dev/net/tun does not exist (load the tun module: modprobe tun)',
  EINVAL: 'an interface of this name exists and is not a TAP device, or an option is invalid',
}

/** Turns a native open error (`code`, `errno`, `syscall`) into a {@link DeviceError} whose message starts with the errno name. */
export function tapOpenError(err: unknown, name: string): DeviceError {
  const e = err as { code?: string; message?: string }
  const code = typeof e?.code === 'string' ? e.code : 'EUNKNOWN'
  const hint = OPEN_HINTS[code]
  const detail = e?.message ?? String(err)
  const msg = hint ? `${code}: ${hint} [TAP '${name}': ${detail}]` : `${code}: TAP '${name}': ${detail}`
  return new DeviceError(msg, { cause: err })
}

/** Options after defaults. */
interface Resolved {
  batchSize: number
  clock: Clock
  ingress: number
  onError: ((err: DeviceError) => void) | null
}

/** A TAP interface driven through the native addon. Implements {@link Device}. */
export class TapDevice implements Device {
  /** Interface name (as the kernel named it). */
  readonly name: string
  /** MTU in effect when opened. */
  readonly mtu: number
  /** The interface's MAC address. */
  readonly mac: Uint8Array
  /** Offloads in effect. */
  readonly offloads: DeviceOffloads
  /** Interface index in the namespace the device was opened in. */
  readonly ifindex: number

  private readonly native: typeof Native
  private readonly handle: Native.TapHandle
  private readonly opts: Resolved
  private handler: ReceiveHandler | null = null
  private closed = false
  private keepAlive = true
  private draining = false
  private drainScheduled = false
  private errorReported = false
  private readonly counters = { rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0 }
  private readonly drops: Record<string, number> = {}

  // Receive side: stashes of empty Msgs handed down as buffers (refilled only where used),
  // the batch array handed to the handler, and the meta words the native side fills.
  private readonly small: Msg[] = []
  private readonly smallBufs: Uint8Array[] = []
  private readonly big: Msg[] = []
  private readonly bigBufs: Uint8Array[] = []
  private readonly bigStash: number
  /** The Msgs whose buffers are posted in the native ring's slots (super-frame devices). */
  private readonly slotMsgs: Msg[]
  private readonly rxBatch: Msg[]
  private readonly rxMeta: Int32Array
  // Send side: buffers and meta of one native call.
  private readonly txBufs: Uint8Array[]
  private readonly txMeta: Int32Array

  private constructor(native: typeof Native, r: Native.NativeOpenResult, offloads: DeviceOffloads, opts: Resolved, bigStash: number, slotMsgs: Msg[]) {
    this.native = native
    this.handle = r.handle
    this.name = r.name
    this.mtu = r.mtu
    this.mac = new Uint8Array(r.mac)
    this.ifindex = r.ifindex
    this.offloads = Object.freeze({ ...offloads })
    this.opts = opts
    this.bigStash = bigStash
    this.slotMsgs = slotMsgs
    const b = opts.batchSize
    this.rxBatch = new Array<Msg>(b)
    this.rxMeta = new Int32Array(REC + REC * b)
    this.txBufs = new Array<Uint8Array>(b)
    this.txMeta = new Int32Array(REC * b)
    for (const k of TAP_DROP_REASONS) this.drops[k] = 0
  }

  /**
   * Opens (creating by default) a TAP interface and starts its reader thread.
   * @throws DeviceError whose message starts with the errno name (`EPERM: opening /dev/net/tun needs CAP_NET_ADMIN ...`).
   */
  static open(options: TapOptions = {}): TapDevice {
    const name = options.name ?? 'ps%d'
    const tso = options.tso ?? false
    const vnet = tso || (options.vnetHdr ?? false)
    const batchSize = options.batchSize ?? 64
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 4096) {
      throw new DeviceError(`TAP '${name}': batchSize ${batchSize} must be an integer 1..4096`)
    }
    const mtu = options.mtu ?? 0
    if (!Number.isInteger(mtu) || mtu < 0 || mtu > 65535) throw new DeviceError(`TAP '${name}': mtu ${mtu} must be an integer 68..65535`)
    let mac: Uint8Array = new Uint8Array(0)
    if (options.mac !== undefined) {
      try {
        mac = typeof options.mac === 'string' ? parseMac(options.mac) : options.mac
      } catch (err) {
        throw new DeviceError(`TAP '${name}': ${(err as Error).message}`, { cause: err })
      }
      if (mac.length !== 6) throw new DeviceError(`TAP '${name}': mac must be 6 bytes, got ${mac.length}`)
    }
    const native = loadNative()
    const flags = ((options.create ?? true) ? OPEN_CREATE : 0) | (vnet ? OPEN_VNET : 0) | (tso ? OPEN_TSO : 0) | ((options.up ?? true) ? OPEN_UP : 0)
    const hdr = vnet ? VNET_HDR_LEN : 0
    // Frames too big for a framePool buffer (GSO super-frames, jumbo MTU) are read straight
    // into superFramePool buffers posted for every ring slot, and handed over without a copy.
    const maxFrame = tso ? GSO_MAX_FRAME : (mtu || 1500) + L2_OVERHEAD
    const posted = maxFrame > smallCapacity()
    if (posted && maxFrame > superFramePool.bufSize - superFramePool.headroom + L2_OVERHEAD) {
      throw new DeviceError(`TAP '${name}': mtu ${mtu} is larger than a superFramePool buffer holds`)
    }
    // A slot holds the largest frame the kernel may hand us, plus the vnet header; a posted
    // slot is the whole buffer from just before the frame's start (the kernel never hands a
    // TAP more than gso_max_size = 64 KiB).
    const slotSize = posted ? superFramePool.bufSize - superFramePool.headroom + hdr : (maxFrame + hdr + 63) & ~63
    const ringSlots = options.ringSlots ?? (posted ? 64 : 256)
    const slotMsgs: Msg[] = []
    if (posted) for (let i = 0; i < ringSlots; i++) slotMsgs.push(superFramePool.alloc())
    const resolved: Resolved = { batchSize, clock: options.clock ?? performance, ingress: options.ingress ?? -1, onError: options.onError ?? null }
    let dev: TapDevice | null = null
    let r: Native.NativeOpenResult
    try {
      const bufs = slotMsgs.map(m => m.buf)
      r = native.open(name, flags, mtu, mac, ringSlots, slotSize, () => dev?.drain(), bufs, superFramePool.headroom)
    } catch (err) {
      for (const m of slotMsgs) m.free()
      throw tapOpenError(err, name)
    }
    dev = new TapDevice(native, r, { vnetHdr: vnet, tso }, resolved, posted ? Math.min(batchSize, 32) : 0, slotMsgs)
    dev.setKeepAlive()
    return dev
  }

  /** Sends `batch[0..count)` in one native call per `batchSize` frames; frees every Msg. */
  send(batch: Msg[], count: number): void {
    if (this.closed) {
      for (let i = 0; i < count; i++) batch[i]!.free()
      this.drops['closed']! += count
      return
    }
    const bufs = this.txBufs
    const meta = this.txMeta
    const max = this.opts.batchSize
    for (let start = 0; start < count; start += max) {
      const n = Math.min(max, count - start)
      for (let i = 0; i < n; i++) {
        const m = batch[start + i]!
        const o = i * REC
        bufs[i] = m.buf
        meta[o] = m.off
        meta[o + 1] = m.end - m.off
        const v = m.vnet
        if (v === null) {
          meta[o + 2] = meta[o + 3] = meta[o + 4] = meta[o + 5] = meta[o + 6] = meta[o + 7] = 0
        } else {
          // A stage that moved or resized the headers (FWD chopping, a new IP header) set
          // l4: csumStart and hdrLen are counted from the frame start (virtio spec §5.1.6.2).
          const l4 = m.l4 - m.off
          const known = l4 > 0 && m.l4 + 20 <= m.end
          meta[o + 2] = v.flags
          meta[o + 3] = v.gsoType
          meta[o + 4] = known && ((v.gsoType & 0x7f) === 1 || (v.gsoType & 0x7f) === 4) ? l4 + ((m.buf[m.l4 + 12]! >>> 4) << 2) : v.hdrLen
          meta[o + 5] = v.gsoSize
          meta[o + 6] = known && (v.flags & VNET_F_NEEDS_CSUM) !== 0 ? l4 : v.csumStart
          meta[o + 7] = v.csumOffset
        }
      }
      this.native.send(this.handle, bufs, meta, n)
      for (let i = 0; i < n; i++) {
        const m = batch[start + i]!
        const st = meta[i * REC]!
        if (st === 0) {
          this.counters.txFrames++
          this.counters.txBytes += m.end - m.off
        } else {
          this.drops[txDropReason(st)]!++
        }
        m.free()
      }
    }
  }

  /** Installs the receive handler (null drops and counts arriving frames as `no-handler`). */
  onReceive(handler: ReceiveHandler | null): void {
    this.handler = handler
    this.setKeepAlive()
  }

  /** A snapshot of the counters. */
  stats(): DeviceStats {
    return { ...this.counters, drops: { ...this.drops } }
  }

  /** Native state: the fd, frames waiting in the ring, and the errno that stopped the reader (0 if none). */
  info(): TapInfo {
    return this.native.info(this.handle)
  }

  /** Keeps the process alive while a handler is installed (the default). */
  ref(): this {
    this.keepAlive = true
    this.setKeepAlive()
    return this
  }

  /** Lets the process exit even while this device waits for frames. */
  unref(): this {
    this.keepAlive = false
    this.setKeepAlive()
    return this
  }

  /** Stops the reader thread and closes the fd (deleting a non-persistent interface); idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.handler = null
    this.native.close(this.handle)
    for (const m of this.small) m.free()
    for (const m of this.big) m.free()
    for (const m of this.slotMsgs) m.free() // safe: the reader thread has been joined
    this.slotMsgs.length = 0
    this.small.length = this.smallBufs.length = this.big.length = this.bigBufs.length = 0
  }

  /** A short description for logs. */
  toString(): string {
    const off = this.offloads.tso ? ' tso' : this.offloads.vnetHdr ? ' vnet' : ''
    return `TapDevice(${this.name} mtu ${this.mtu} ${formatMac(this.mac)}${off})`
  }

  private setKeepAlive(): void {
    if (!this.closed) this.native.setRef(this.handle, this.keepAlive && this.handler !== null)
  }

  /** Woken by the reader thread (once per burst) or by ourselves after yielding. */
  private drain(): void {
    this.drainScheduled = false
    if (this.closed || this.draining) return
    this.draining = true
    let rearmed = false
    try {
      for (let turn = 0; turn < MAX_BATCHES_PER_TURN; turn++) {
        const n = this.recvBatch()
        const meta = this.rxMeta
        if (meta[3] !== 0) this.reportReaderError(meta[3]!)
        if (meta[1] === 1 || this.closed) {
          rearmed = true // ring empty: the reader wakes us again
          return
        }
        if (n === 0) break
      }
    } finally {
      this.draining = false
      // Frames still queued (batch budget used up, or the handler threw): the reader will
      // not call again until we empty the ring, so continue on the next turn, after
      // timers and other I/O had their share.
      if (!rearmed) this.scheduleDrain()
    }
  }

  private scheduleDrain(): void {
    if (this.drainScheduled || this.closed) return
    this.drainScheduled = true
    setImmediate(() => this.drain())
  }

  /** One native call: copies up to batchSize frames into Msgs and hands them on. */
  private recvBatch(): number {
    const b = this.opts.batchSize
    const small = this.small
    const big = this.big
    while (small.length < b) {
      const m = framePool.alloc()
      small.push(m)
      this.smallBufs.push(m.buf)
    }
    while (big.length < this.bigStash) {
      const m = superFramePool.alloc()
      big.push(m)
      this.bigBufs.push(m.buf)
    }
    const meta = this.rxMeta
    meta[0] = b
    meta[1] = b
    meta[2] = framePool.headroom
    meta[3] = smallCapacity()
    meta[4] = big.length
    meta[5] = superFramePool.headroom
    meta[6] = superFramePool.bufSize - superFramePool.headroom
    const n = this.native.recv(this.handle, this.smallBufs, this.bigBufs, meta)
    if (meta[2]! > 0) this.drops['oversize']! += meta[2]!
    if (n === 0) return 0
    const batch = this.rxBatch
    const now = this.opts.clock.now()
    const ingress = this.opts.ingress
    let si = 0
    let bi = 0
    let bytes = 0
    for (let i = 0; i < n; i++) {
      const o = REC + i * REC
      let m: Msg
      const kind = meta[o]!
      if (kind === 0) {
        // Copied into the next small buffer.
        m = small[si]!
        small[si] = replacement(framePool)
        this.smallBufs[si] = small[si]!.buf
        si++
      } else {
        // Read in place into the buffer posted for slot kind-2; the next big buffer
        // was posted there instead. (Kind 1, a copy into a big buffer, cannot happen: we
        // pass big buffers only to posted rings, where big frames are never copied.)
        const slot = kind - 2
        m = this.slotMsgs[slot]!
        m.off = superFramePool.headroom
        this.slotMsgs[slot] = big[bi]!
        big[bi] = replacement(superFramePool)
        this.bigBufs[bi] = big[bi]!.buf
        bi++
      }
      const len = meta[o + 1]!
      m.end = m.off + len
      bytes += len
      m.rxTime = now
      m.ingress = ingress
      // All-zero virtio header = no offload: keep vnet null, allocate only for real offload info.
      const flags = meta[o + 2]!
      const gsoType = meta[o + 3]!
      m.vnet = flags === 0 && gsoType === 0 ? null : vnetFrom(meta, o)
      batch[i] = m
    }
    // The stashes are consumed from their fronts and refilled in place, so small[0..si)
    // and big[0..bi) are fresh and the next call uses them first.
    const h = this.handler
    if (h === null) {
      for (let i = 0; i < n; i++) batch[i]!.free()
      this.drops['no-handler']! += n
    } else {
      this.counters.rxFrames += n
      this.counters.rxBytes += bytes
      h(batch, n)
    }
    return n
  }

  private reportReaderError(errno: number): void {
    if (this.errorReported) return
    this.errorReported = true
    // EBADFD (a TUN fd whose interface is gone) is missing from os.constants.errno.
    const code = errno === EBADFD ? 'EBADFD' : (Object.entries(osConstants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`)
    const err = new DeviceError(`${code}: TAP '${this.name}': the reader stopped (errno ${errno}); was the interface deleted?`)
    this.opts.onError?.(err)
  }
}

function smallCapacity(): number {
  return framePool.bufSize - framePool.headroom
}

function replacement(pool: MsgPool): Msg {
  return pool.alloc()
}

function vnetFrom(meta: Int32Array, o: number): VnetHeader {
  return {
    flags: meta[o + 2]!,
    gsoType: meta[o + 3]!,
    hdrLen: meta[o + 4]!,
    gsoSize: meta[o + 5]!,
    csumStart: meta[o + 6]!,
    csumOffset: meta[o + 7]!,
  }
}

/** Maps a native per-frame send status to a drop reason. */
export function txDropReason(status: number): TapDropReason {
  if (status === -1) return 'gso-unsupported'
  if (status === -2) return 'bad-range'
  if (status === EIO || status === ENETDOWN) return 'tx-link-down'
  if (status === EBADF) return 'closed'
  return 'tx-error'
}
