/**
 * The TCP header (RFC 9293 §3.1): field offsets, a zero-allocation view for the fast path,
 * a checked parse that returns a drop reason, and a plain {@link TcpRepr} with
 * {@link parseTcp} / {@link emitTcp} for tests, the pcap printer and slow paths.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * |          Source Port          |       Destination Port        |
 * |                        Sequence Number                        |
 * |                    Acknowledgment Number                      |
 * |  Data |       |C|E|U|A|P|R|S|F|                               |
 * | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 * |           Checksum            |         Urgent Pointer        |
 * |                    Options                    |    Padding    |
 * ```
 * @module
 */
import { checksum, pseudoHeaderSum } from '../../core/checksum.js'
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import { checksumVouched, type Msg } from '../../core/msg.js'
import { MAX_SACK_BLOCKS, OptKind, parseOptions, TcpOptions } from './options.js'

/** Byte offsets of the header fields. */
export const TcpField = {
  /** Source port (16 bits). */
  SRC_PORT: 0,
  /** Destination port (16 bits). */
  DST_PORT: 2,
  /** Sequence number (32 bits). */
  SEQ: 4,
  /** Acknowledgment number (32 bits). */
  ACK: 8,
  /** Data offset (high nibble, in 32-bit words). */
  DATA_OFF: 12,
  /** Flags byte (CWR ECE URG ACK PSH RST SYN FIN). */
  FLAGS: 13,
  /** Window (16 bits, scaled by the peer's shift outside SYNs). */
  WINDOW: 14,
  /** Checksum over the pseudo-header, header and data. */
  CHECKSUM: 16,
  /** Urgent pointer. */
  URGENT: 18,
  /** Length of the fixed header. */
  HEADER_LEN: 20,
} as const

/** Control bits (RFC 9293 §3.1, RFC 3168). */
export const TcpFlag = {
  /** No more data from sender. */
  FIN: 0x01,
  /** Synchronize sequence numbers. */
  SYN: 0x02,
  /** Reset the connection. */
  RST: 0x04,
  /** Push function. */
  PSH: 0x08,
  /** Acknowledgment field is significant. */
  ACK: 0x10,
  /** Urgent pointer field is significant. */
  URG: 0x20,
  /** ECN-Echo. */
  ECE: 0x40,
  /** Congestion window reduced. */
  CWR: 0x80,
} as const

/** Reasons a segment fails the checked parse. */
export const SEGMENT_DROP_REASONS = ['short-header', 'bad-data-offset', 'bad-checksum'] as const
/** One of {@link SEGMENT_DROP_REASONS}. */
export type SegmentDropReason = (typeof SEGMENT_DROP_REASONS)[number]

/** Reads the source port of the header at `off`. */
export function tcpSrcPort(b: Uint8Array, off: number): number {
  return get16(b, off)
}
/** Reads the destination port of the header at `off`. */
export function tcpDstPort(b: Uint8Array, off: number): number {
  return get16(b, off + 2)
}
/** Reads the sequence number. */
export function tcpSeq(b: Uint8Array, off: number): number {
  return get32(b, off + 4)
}
/** Reads the acknowledgment number. */
export function tcpAck(b: Uint8Array, off: number): number {
  return get32(b, off + 8)
}
/** Reads the header length in bytes (data offset * 4). */
export function tcpHeaderLen(b: Uint8Array, off: number): number {
  return (b[off + 12]! >>> 4) << 2
}
/** Reads the flags byte. */
export function tcpFlags(b: Uint8Array, off: number): number {
  return b[off + 13]!
}
/** Reads the window field (unscaled). */
export function tcpWindow(b: Uint8Array, off: number): number {
  return get16(b, off + 14)
}

/**
 * Checks the header of the segment `msg.buf[msg.off..msg.end)`: length, data offset,
 * and (when `verifyChecksum` and the device did not vouch for it, {@link checksumVouched})
 * the checksum. Returns null when good.
 */
export function checkSegment(msg: Msg, srcIp: number, dstIp: number, verifyChecksum: boolean): SegmentDropReason | null {
  const b = msg.buf
  const off = msg.off
  const len = msg.end - off
  if (len < TcpField.HEADER_LEN) return 'short-header'
  const hl = tcpHeaderLen(b, off)
  if (hl < TcpField.HEADER_LEN || hl > len) return 'bad-data-offset'
  if (verifyChecksum && !checksumVouched(msg.vnet) && checksum(b, off, len, pseudoHeaderSum(srcIp, dstIp, 6, len)) !== 0) return 'bad-checksum'
  return null
}

/** Fills the checksum of the segment `b[off..off+len)` over the IPv4 pseudo-header (RFC 9293 §3.1). */
export function fillTcpChecksum(b: Uint8Array, off: number, len: number, srcIp: number, dstIp: number): void {
  set16(b, off + TcpField.CHECKSUM, 0)
  set16(b, off + TcpField.CHECKSUM, checksum(b, off, len, pseudoHeaderSum(srcIp, dstIp, 6, len)))
}

/**
 * A re-pointable view of a TCP header on the fast path: `at(buf, off)` aims it at a
 * segment (no allocation), getters and setters read and write the fields in place.
 * Keep one per stage and re-aim it per message.
 */
export class TcpSegmentView {
  /** The buffer viewed. */
  buf: Uint8Array = new Uint8Array(0)
  /** Offset of the TCP header in `buf`. */
  off = 0

  /** Aims the view at the header at `buf[off..]`; returns the view. */
  at(buf: Uint8Array, off: number): this {
    this.buf = buf
    this.off = off
    return this
  }

  /**
   * Checks `msg` (header length, data offset, checksum over the pseudo-header when
   * `verify`) and aims `view` at it; returns the view, or the drop reason.
   */
  static checked(view: TcpSegmentView, msg: Msg, srcIp: number, dstIp: number, verify: boolean): TcpSegmentView | SegmentDropReason {
    const r = checkSegment(msg, srcIp, dstIp, verify)
    return r === null ? view.at(msg.buf, msg.off) : r
  }

  /** Source port. */
  get srcPort(): number {
    return get16(this.buf, this.off)
  }
  /** Writes the field. */
  set srcPort(v: number) {
    set16(this.buf, this.off, v)
  }
  /** Destination port. */
  get dstPort(): number {
    return get16(this.buf, this.off + TcpField.DST_PORT)
  }
  /** Writes the field. */
  set dstPort(v: number) {
    set16(this.buf, this.off + TcpField.DST_PORT, v)
  }
  /** Sequence number. */
  get seq(): number {
    return get32(this.buf, this.off + TcpField.SEQ)
  }
  /** Writes the field. */
  set seq(v: number) {
    set32(this.buf, this.off + TcpField.SEQ, v >>> 0)
  }
  /** Acknowledgment number. */
  get ack(): number {
    return get32(this.buf, this.off + TcpField.ACK)
  }
  /** Writes the field. */
  set ack(v: number) {
    set32(this.buf, this.off + TcpField.ACK, v >>> 0)
  }
  /** Flags byte. */
  get flags(): number {
    return this.buf[this.off + TcpField.FLAGS]!
  }
  /** Writes the field. */
  set flags(v: number) {
    this.buf[this.off + TcpField.FLAGS] = v
  }
  /** Window field (unscaled). */
  get window(): number {
    return get16(this.buf, this.off + TcpField.WINDOW)
  }
  /** Writes the field. */
  set window(v: number) {
    set16(this.buf, this.off + TcpField.WINDOW, v)
  }
  /** Checksum field. */
  get checksum(): number {
    return get16(this.buf, this.off + TcpField.CHECKSUM)
  }
  /** Writes the field. */
  set checksum(v: number) {
    set16(this.buf, this.off + TcpField.CHECKSUM, v)
  }
  /** Header length in bytes. */
  get headerLen(): number {
    return tcpHeaderLen(this.buf, this.off)
  }
}

/** Options of a {@link TcpRepr}, each present only when set. */
export interface TcpReprOptions {
  /** MSS. */
  mss?: number
  /** Window scale shift. */
  wscale?: number
  /** SACK permitted. */
  sackPermitted?: boolean
  /** SACK blocks [left, right). */
  sack?: [number, number][]
  /** Timestamps [TSval, TSecr]. */
  ts?: [number, number]
}

/** A TCP segment as plain values (tests, slow paths); never built on the fast path. */
export interface TcpRepr {
  /** Source port. */
  srcPort: number
  /** Destination port. */
  dstPort: number
  /** Sequence number. */
  seq: number
  /** Acknowledgment number. */
  ack: number
  /** Flags (see {@link TcpFlag}). */
  flags: number
  /** Window field as on the wire. */
  window: number
  /** Urgent pointer (default 0). */
  urgent?: number
  /** Options. */
  options?: TcpReprOptions
  /** Raw option bytes (used instead of `options` when set: for malformed-option tests). */
  rawOptions?: Uint8Array
  /** Payload. */
  payload?: Uint8Array
}

/** Parses `b[off..end)` into a {@link TcpRepr}, or returns the drop reason. */
export function parseTcp(b: Uint8Array, off = 0, end = b.length): TcpRepr | SegmentDropReason {
  const len = end - off
  if (len < TcpField.HEADER_LEN) return 'short-header'
  const hl = tcpHeaderLen(b, off)
  if (hl < TcpField.HEADER_LEN || hl > len) return 'bad-data-offset'
  const o = new TcpOptions()
  parseOptions(b, off + TcpField.HEADER_LEN, off + hl, o)
  const options: TcpReprOptions = {}
  if (o.mss >= 0) options.mss = o.mss
  if (o.wscale >= 0) options.wscale = o.wscale
  if (o.sackPermitted) options.sackPermitted = true
  if (o.hasTs) options.ts = [o.tsVal, o.tsEcr]
  if (o.sackCount > 0) {
    options.sack = []
    for (let i = 0; i < o.sackCount; i++) options.sack.push([o.sack[i * 2]!, o.sack[i * 2 + 1]!])
  }
  return {
    srcPort: get16(b, off),
    dstPort: get16(b, off + 2),
    seq: get32(b, off + 4),
    ack: get32(b, off + 8),
    flags: b[off + 13]!,
    window: get16(b, off + 14),
    urgent: get16(b, off + 18),
    options,
    payload: b.slice(off + hl, end),
  }
}

function encodeOptions(o: TcpReprOptions): number[] {
  const out: number[] = []
  if (o.mss !== undefined) out.push(OptKind.MSS, 4, (o.mss >>> 8) & 0xff, o.mss & 0xff)
  if (o.sackPermitted) out.push(OptKind.NOP, OptKind.NOP, OptKind.SACK_PERMITTED, 2)
  if (o.ts !== undefined) {
    out.push(OptKind.NOP, OptKind.NOP, OptKind.TS, 10)
    for (const v of o.ts) out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff)
  }
  if (o.wscale !== undefined) out.push(OptKind.NOP, OptKind.WS, 3, o.wscale)
  if (o.sack !== undefined && o.sack.length > 0) {
    const blocks = o.sack.slice(0, MAX_SACK_BLOCKS)
    out.push(OptKind.NOP, OptKind.NOP, OptKind.SACK, 2 + 8 * blocks.length)
    for (const [l, r] of blocks) {
      for (const v of [l, r]) out.push((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff)
    }
  }
  return out
}

/**
 * Serializes `r` into a new array. With `srcIp`/`dstIp` the checksum is filled, else left 0.
 * Options are padded with EOL to a multiple of 4 bytes.
 */
export function emitTcp(r: TcpRepr, srcIp?: number, dstIp?: number): Uint8Array {
  let opts: number[] | Uint8Array = r.rawOptions ?? encodeOptions(r.options ?? {})
  const optLen = (opts.length + 3) & ~3
  if (optLen > 40) throw new RangeError(`TCP options of ${opts.length} bytes exceed the 40 bytes a header can hold`)
  const payload = r.payload ?? new Uint8Array(0)
  const hl = TcpField.HEADER_LEN + optLen
  const b = new Uint8Array(hl + payload.length)
  set16(b, 0, r.srcPort)
  set16(b, 2, r.dstPort)
  set32(b, 4, r.seq >>> 0)
  set32(b, 8, r.ack >>> 0)
  b[12] = (hl >>> 2) << 4
  b[13] = r.flags
  set16(b, 14, r.window)
  set16(b, 18, r.urgent ?? 0)
  b.set(opts, TcpField.HEADER_LEN)
  b.set(payload, hl)
  if (srcIp !== undefined && dstIp !== undefined) fillTcpChecksum(b, 0, b.length, srcIp, dstIp)
  return b
}

/** Formats flags as `SYN|ACK` (for test messages and traces). */
export function formatFlags(flags: number): string {
  const names: string[] = []
  for (const [k, v] of Object.entries(TcpFlag)) if (flags & v) names.push(k)
  return names.join('|') || '-'
}
