/**
 * Msg: one packet in a pooled, reusable buffer with headroom.
 *
 * ```
 *   buf: [ headroom ............ | header | header | payload ......... | tailroom ]
 *        0                       off                                   end        buf.length
 * ```
 * `pop(n)` strips a header by moving `off` forward, `push(n)` makes room for one by moving
 * it back: no copies. Buffers come from a {@link MsgPool} and go back to it with `free()`,
 * so the fast path allocates nothing once the pool is warm.
 * @module
 */

/** virtio-net header of a frame from a TAP device opened with IFF_VNET_HDR (virtio spec §5.1.6). */
export interface VnetHeader {
  /** VIRTIO_NET_HDR_F_* flags (1 = NEEDS_CSUM, 2 = DATA_VALID). */
  flags: number
  /** VIRTIO_NET_HDR_GSO_* type (0 none, 1 TCPv4, 3 UDP, 4 TCPv6, 0x80 ECN). */
  gsoType: number
  /** Length of the headers to replicate per segment. */
  hdrLen: number
  /** Payload bytes per segment when the frame is a GSO super-frame. */
  gsoSize: number
  /** Where checksumming starts (from the frame start) when NEEDS_CSUM. */
  csumStart: number
  /** Where the checksum goes, relative to `csumStart`. */
  csumOffset: number
}

/**
 * True when the device vouches for the frame's transport checksum, so a receiver must not
 * verify it: DATA_VALID (the device checked it), or NEEDS_CSUM (the frame comes from the
 * sending stack itself, whose checksum field holds only the pseudo-header sum; the data
 * is trusted: virtio spec §5.1.6.2.1 and Linux's CHECKSUM_PARTIAL, skbuff.h).
 */
export function checksumVouched(v: VnetHeader | null): boolean {
  return v !== null && (v.flags & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID)) !== 0
}

/** VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum is partial, the device (or the next hop) completes it. */
export const VNET_F_NEEDS_CSUM = 1
/** VIRTIO_NET_HDR_F_DATA_VALID: the checksum was already verified. */
export const VNET_F_DATA_VALID = 2
/** VIRTIO_NET_HDR_GSO_TCPV4. */
export const VNET_GSO_TCPV4 = 1
/** VIRTIO_NET_HDR_GSO_ECN (a flag on the GSO type: the segments carry CWR). */
export const VNET_GSO_ECN = 0x80

/** One packet. Fields are public for speed on the fast path; treat `buf` as owned by the Msg. */
export class Msg {
  /** Backing storage; its length is the pool's buffer size. */
  readonly buf: Uint8Array
  /** Start of the current header (first valid byte). */
  off = 0
  /** One past the last valid byte. */
  end = 0
  /** Index of the device the frame arrived on (-1 if originated locally). */
  ingress = -1
  /** Receive time in milliseconds of the scheduler's clock (0 if originated locally). */
  rxTime = 0
  /** Offset of the network header within `buf`, set by the stage that finds it (-1 unknown). */
  l3 = -1
  /** Offset of the transport header within `buf`, set by the stage that finds it (-1 unknown). */
  l4 = -1
  /** Scratch word a path may use to carry a value between its own stages (e.g. next-hop address). */
  nextHop = 0
  /** virtio-net header, when the frame came from or goes to an offloading device. */
  vnet: VnetHeader | null = null
  /** The pool this buffer returns to, or null for a standalone Msg. */
  readonly pool: MsgPool | null
  /** True while the Msg is out of its pool (guards against double free). */
  live = false

  /** Wraps `buf`; use {@link MsgPool.alloc} or {@link Msg.from} instead of calling this directly. */
  constructor(buf: Uint8Array, pool: MsgPool | null = null) {
    this.buf = buf
    this.pool = pool
  }

  /** Builds a standalone Msg holding a copy of `bytes`, with `headroom` bytes in front (tests, slow paths). */
  static from(bytes: Uint8Array, headroom = 128): Msg {
    const m = new Msg(new Uint8Array(headroom + bytes.length + 64))
    m.off = headroom
    m.end = headroom + bytes.length
    m.buf.set(bytes, headroom)
    m.live = true
    return m
  }

  /** Number of valid bytes. */
  get length(): number {
    return this.end - this.off
  }

  /** Bytes available in front of `off` for headers to be pushed. */
  get headroom(): number {
    return this.off
  }

  /** Bytes available after `end` for appending. */
  get tailroom(): number {
    return this.buf.length - this.end
  }

  /** Strips `n` bytes of header; returns the offset the header started at. */
  pop(n: number): number {
    const at = this.off
    if (n > this.end - at) throw new RangeError(`pop(${n}) past the end of a ${this.end - at}-byte message`)
    this.off = at + n
    return at
  }

  /** Makes room for an `n`-byte header in front; returns the new `off`, where it must be written. */
  push(n: number): number {
    if (n > this.off) throw new RangeError(`push(${n}) needs ${n} bytes of headroom, have ${this.off}`)
    this.off -= n
    return this.off
  }

  /** Returns a view of the valid bytes (allocates a view object: not for the fast path). */
  bytes(): Uint8Array {
    return this.buf.subarray(this.off, this.end)
  }

  /** Sets the valid region to `[off, off + len)`. */
  setRange(off: number, len: number): void {
    if (off < 0 || off + len > this.buf.length) throw new RangeError(`range ${off}+${len} outside a ${this.buf.length}-byte buffer`)
    this.off = off
    this.end = off + len
  }

  /** Drops `n` bytes from the end. */
  trim(n: number): void {
    if (n > this.end - this.off) throw new RangeError(`trim(${n}) of a ${this.end - this.off}-byte message`)
    this.end -= n
  }

  /** Appends a copy of `src` at the end. */
  append(src: Uint8Array): void {
    if (src.length > this.buf.length - this.end) throw new RangeError(`append of ${src.length} bytes, tailroom ${this.buf.length - this.end}`)
    this.buf.set(src, this.end)
    this.end += src.length
  }

  /** Copies this Msg's valid bytes and metadata into a fresh Msg from `pool` (or a standalone one). */
  clone(pool: MsgPool | null = this.pool): Msg {
    const m = pool ? pool.alloc() : new Msg(new Uint8Array(this.buf.length))
    if (!pool) m.live = true
    m.off = this.off
    m.end = this.end
    m.buf.set(this.buf.subarray(this.off, this.end), this.off)
    m.ingress = this.ingress
    m.rxTime = this.rxTime
    m.l3 = this.l3
    m.l4 = this.l4
    m.nextHop = this.nextHop
    m.vnet = this.vnet ? { ...this.vnet } : null
    return m
  }

  /** Returns the buffer to its pool; a standalone Msg is just marked dead. Freeing twice throws. */
  free(): void {
    if (!this.live) throw new Error('Msg freed twice')
    this.live = false
    if (this.pool) this.pool.release(this)
  }
}

/** Counters of a {@link MsgPool}. */
export interface MsgPoolStats {
  /** Buffer size of every Msg in the pool. */
  bufSize: number
  /** Buffers currently handed out. */
  inUse: number
  /** Buffers waiting on the free list. */
  free: number
  /** Buffers ever created (grows only when the free list is empty). */
  created: number
}

/**
 * A free list of same-sized Msg buffers. Buffers are carved from large slabs so that a
 * warm pool allocates nothing; it grows by one slab when it runs dry and never shrinks
 * (a forwarder's working set is steady).
 */
export class MsgPool {
  /** Size of each buffer. */
  readonly bufSize: number
  /** Default headroom: `alloc()` places `off` here so headers can be pushed in front. */
  readonly headroom: number
  private readonly freeList: Msg[] = []
  private readonly slabCount: number
  private created = 0

  /**
   * @param bufSize bytes per buffer (default 2048: an Ethernet frame plus headroom)
   * @param headroom default offset of fresh messages (default 128)
   * @param slabCount buffers carved per slab (default 256)
   */
  constructor(bufSize = 2048, headroom = 128, slabCount = 256) {
    if (headroom >= bufSize) throw new RangeError(`headroom ${headroom} must be smaller than the buffer size ${bufSize}`)
    this.bufSize = bufSize
    this.headroom = headroom
    this.slabCount = Math.max(1, slabCount)
  }

  /** Takes a buffer: `off = end = headroom`, metadata reset. */
  alloc(): Msg {
    let m = this.freeList.pop()
    if (m === undefined) {
      this.grow()
      m = this.freeList.pop()!
    }
    m.live = true
    m.off = this.headroom
    m.end = this.headroom
    m.ingress = -1
    m.rxTime = 0
    m.l3 = -1
    m.l4 = -1
    m.nextHop = 0
    m.vnet = null
    return m
  }

  /** Takes a buffer holding a copy of `bytes` at the default headroom. */
  allocFrom(bytes: Uint8Array): Msg {
    const m = this.alloc()
    m.buf.set(bytes, m.off)
    m.end = m.off + bytes.length
    return m
  }

  /** @internal Called by {@link Msg.free}. */
  release(m: Msg): void {
    this.freeList.push(m)
  }

  /** A snapshot of the pool's counters. */
  stats(): MsgPoolStats {
    return { bufSize: this.bufSize, inUse: this.created - this.freeList.length, free: this.freeList.length, created: this.created }
  }

  private grow(): void {
    const slab = new ArrayBuffer(this.bufSize * this.slabCount)
    for (let i = 0; i < this.slabCount; i++) {
      this.freeList.push(new Msg(new Uint8Array(slab, i * this.bufSize, this.bufSize), this))
    }
    this.created += this.slabCount
  }
}

/** The shared pool for MTU-sized frames (2048-byte buffers, 128 bytes of headroom). */
export const framePool = new MsgPool(2048, 128)

/** The shared pool for GSO super-frames up to 64 KiB (plus headroom for headers and a vnet header). */
export const superFramePool = new MsgPool(65536 + 256, 256, 16)

/** Allocates from {@link framePool} if `len` fits, else from {@link superFramePool}. */
export function allocMsg(len: number): Msg {
  if (len <= framePool.bufSize - framePool.headroom - 64) return framePool.alloc()
  if (len <= superFramePool.bufSize - superFramePool.headroom) return superFramePool.alloc()
  throw new RangeError(`no pool holds a ${len}-byte message (max ${superFramePool.bufSize - superFramePool.headroom})`)
}
