/**
 * Types of the native TAP addon (hand-written, matching src/lib.rs). This is the raw
 * syscall layer; use `TapDevice` from `drivers/tap` instead.
 * @module
 */

/** Opaque handle of one open TAP fd (a Node-API external). */
export interface TapHandle {
  readonly __tapHandle: unique symbol
}

/** What the kernel reported after `open`. */
export interface NativeOpenResult {
  /** Handle for the other calls. */
  handle: TapHandle
  /** Final interface name (the kernel fills in `tap%d` patterns). */
  name: string
  /** Interface index in the namespace it was opened in. */
  ifindex: number
  /** MTU after applying the requested one. */
  mtu: number
  /** The interface's MAC address. */
  mac: Uint8Array
}

/** Snapshot of the native side. */
export interface NativeInfo {
  /** True once `close` ran. */
  closed: boolean
  /** Frames waiting in the ring. */
  queued: number
  /** errno that stopped the reader thread (0 while it runs). */
  readerErrno: number
  /** The TAP file descriptor (-1 after close). */
  fd: number
}

/**
 * Opens (and configures) a TAP device. `flags`: 1 create, 2 IFF_VNET_HDR,
 * 4 TSO (TUNSETOFFLOAD TSO4/6/ECN), 8 bring up (IFF_UP). `mtu` 0 keeps the
 * kernel's; `mac` empty keeps the kernel's. The reader thread starts at once and calls
 * `onReadable()` (no arguments) when frames wait and none was announced.
 * `posted` (optional): one buffer per ring slot; frames are read straight into them at
 * `postOffset` (the virtio-net header just before it), and `recv` hands a slot's buffer
 * over whole (record kind 2 + slot) in exchange for the next `big` buffer. Each buffer must
 * hold `postOffset - hdr + slotSize` bytes.
 * Throws an Error with `code` (`EPERM`, `EBUSY`, `ENODEV`, ...), `errno` and `syscall`.
 */
export declare function open(
  name: string,
  flags: number,
  mtu: number,
  mac: Uint8Array,
  ringSlots: number,
  slotSize: number,
  onReadable: () => void,
  posted?: Uint8Array[],
  postOffset?: number,
): NativeOpenResult
/**
 * Copies waiting frames into `small` / `big` buffers. `meta` inputs: [0] max frames,
 * [1] small count, [2] small offset, [3] small capacity, [4] big count, [5] big offset,
 * [6] big capacity. Outputs: [1] 1 if the ring ran empty (the next frame wakes JS again),
 * [2] frames dropped as oversize, [3] reader errno. Frame i's record at 8 + 8i:
 * [kind, length, vnet flags, gsoType, hdrLen, gsoSize, csumStart, csumOffset] where kind is
 * 0 (copied into the next small buffer), 1 (copied into the next big buffer; rings
 * without posted buffers only) or 2 + slot
 * (the posted buffer of that slot, replaced by the next big buffer).
 * Returns the number of frames delivered.
 */
export declare function recv(handle: TapHandle, small: Uint8Array[], big: Uint8Array[], meta: Int32Array): number
/**
 * Writes `count` frames; frame i is `bufs[i]` at record 8i of `meta`:
 * [offset, length, vnet flags, gsoType, hdrLen, gsoSize, csumStart, csumOffset].
 * Record word 0 is overwritten with the status: 0 sent, an errno, -1 GSO frame on a
 * device without vnet header, -2 bad range. Returns the number sent.
 */
export declare function send(handle: TapHandle, bufs: Uint8Array[], meta: Int32Array, count: number): number
/** Whether the open device keeps the event loop alive (like a socket's ref/unref). */
export declare function setRef(handle: TapHandle, on: boolean): void
/** A snapshot of the native side. */
export declare function info(handle: TapHandle): NativeInfo
/** Stops the reader thread, releases the wake-up function and closes the fd; idempotent. */
export declare function close(handle: TapHandle): void
