/**
 * The IPv4 header (RFC 791 §3.1): offsets, validation for the fast path, and a plain
 * {@link Ipv4Repr} with {@link parseIpv4} / {@link emitIpv4} for tests and slow paths.
 *
 * ```
 *   0       4       8              16      19              31
 *   |ver|ihl|  tos  |        total length                   |
 *   |       identification        |flags|  fragment offset  |
 *   |  ttl  | proto |        header checksum                |
 *   |                 source address                        |
 *   |               destination address                     |
 *   |                 options (ihl > 5) ...                 |
 * ```
 * @module
 */
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import { checksum, sumBytes, fold } from '../../core/checksum.js'

/** Byte offsets within the IPv4 header. */
export const IP = {
  /** Version (high nibble) and IHL (low nibble, in 32-bit words). */
  VER_IHL: 0,
  /** Type of service / DSCP+ECN. */
  TOS: 1,
  /** Total length of the datagram. */
  LEN: 2,
  /** Identification. */
  ID: 4,
  /** Flags (3 bits) and fragment offset (13 bits, in 8-byte units). */
  FRAG: 6,
  /** Time to live. */
  TTL: 8,
  /** Protocol. */
  PROTO: 9,
  /** Header checksum. */
  CSUM: 10,
  /** Source address. */
  SRC: 12,
  /** Destination address. */
  DST: 16,
  /** Header length without options. */
  HLEN: 20,
  /** Largest header (IHL 15). */
  MAX_HLEN: 60,
} as const

/** Bits of the flags/fragment-offset word. */
export const IpFlags = {
  /** Reserved, must be zero (RFC 791 §3.1). */
  RESERVED: 0x8000,
  /** Don't Fragment. */
  DF: 0x4000,
  /** More Fragments. */
  MF: 0x2000,
  /** Mask of the fragment offset (8-byte units). */
  OFFSET_MASK: 0x1fff,
} as const

/** IP protocol numbers (IANA). */
export const IpProto = {
  /** ICMP (RFC 792). */
  ICMP: 1,
  /** TCP (RFC 9293). */
  TCP: 6,
  /** UDP (RFC 768). */
  UDP: 17,
} as const

/** Default TTL of datagrams we originate (RFC 1700 / IANA recommends 64). */
export const DEFAULT_TTL = 64

/** Reasons an IPv4 header is refused. */
export const IP_HEADER_ERRORS = ['short', 'bad-version', 'bad-ihl', 'bad-length', 'bad-checksum', 'bad-options', 'bad-src', 'reserved-flag'] as const
/** One of {@link IP_HEADER_ERRORS}. */
export type IpHeaderError = (typeof IP_HEADER_ERRORS)[number]

/**
 * Validates the IPv4 header at `b[off..end)` (RFC 1122 §3.2.1.1-3.2.1.3, RFC 1812
 * §5.2.2): version, IHL, total length against the frame, checksum, option framing, and
 * a source that is not broadcast or multicast. Returns the header length (20..60) or
 * the reason. Trailing link padding beyond the total length is allowed (callers trim).
 * Allocation-free.
 */
export function checkIpv4(b: Uint8Array, off: number, end: number): number | IpHeaderError {
  const avail = end - off
  if (avail < IP.HLEN) return 'short'
  const vi = b[off]!
  // RFC 1122 §3.2.1.1: silently discard a datagram whose version is not 4.
  if (vi >>> 4 !== 4) return 'bad-version'
  const hlen = (vi & 0x0f) << 2
  if (hlen < IP.HLEN) return 'bad-ihl'
  if (hlen > avail) return 'short'
  const total = get16(b, off + IP.LEN)
  // RFC 1812 §5.2.2: the total length must cover the header and fit in the frame.
  if (total < hlen || total > avail) return 'bad-length'
  // RFC 1122 §3.2.1.2: verify the header checksum; discard on failure.
  if (fold(sumBytes(b, off, hlen)) !== 0xffff) return 'bad-checksum'
  if ((b[off + IP.FRAG]! & 0x80) !== 0) return 'reserved-flag'
  // RFC 1122 §3.2.1.3: a source that is broadcast (limited) or multicast is discarded.
  const s = b[off + IP.SRC]!
  if (s >= 224 || get32(b, off + IP.SRC) === 0xffffffff) return 'bad-src'
  if (hlen > IP.HLEN && !optionsWellFormed(b, off + IP.HLEN, off + hlen)) return 'bad-options'
  return hlen
}

/**
 * RFC 791 §3.1 "Options": walks the option list only to check its framing, so code
 * that skips or copies options can trust every length. Contents are not interpreted.
 */
export function optionsWellFormed(b: Uint8Array, off: number, end: number): boolean {
  let i = off
  while (i < end) {
    const type = b[i]!
    if (type === 0) return true // End of Option List: the rest is padding.
    if (type === 1) {
      i++ // No Operation.
      continue
    }
    if (i + 1 >= end) return false
    const len = b[i + 1]!
    if (len < 2 || i + len > end) return false
    i += len
  }
  return true
}

/** Writes the header checksum of the header at `off` (length from its IHL). */
export function fillIpv4Checksum(b: Uint8Array, off: number): void {
  const hlen = (b[off]! & 0x0f) << 2
  b[off + IP.CSUM] = 0
  b[off + IP.CSUM + 1] = 0
  set16(b, off + IP.CSUM, checksum(b, off, hlen))
}

/** Writes a 20-byte header at `off` and its checksum. */
export function writeIpv4Header(
  b: Uint8Array, off: number, totalLength: number, id: number, flagsFrag: number, ttl: number, protocol: number, src: number, dst: number, tos = 0,
): void {
  b[off] = 0x45
  b[off + IP.TOS] = tos
  set16(b, off + IP.LEN, totalLength)
  set16(b, off + IP.ID, id)
  set16(b, off + IP.FRAG, flagsFrag)
  b[off + IP.TTL] = ttl
  b[off + IP.PROTO] = protocol
  b[off + IP.CSUM] = 0
  b[off + IP.CSUM + 1] = 0
  set32(b, off + IP.SRC, src)
  set32(b, off + IP.DST, dst)
  set16(b, off + IP.CSUM, checksum(b, off, IP.HLEN))
}

/** True for a datagram that is a fragment (MF set or a non-zero offset). */
export function isFragment(b: Uint8Array, off: number): boolean {
  return (get16(b, off + IP.FRAG) & (IpFlags.MF | IpFlags.OFFSET_MASK)) !== 0
}

/** A parsed IPv4 header (tests, dumps, slow paths). */
export interface Ipv4Repr {
  /** DSCP/ECN byte. */
  tos: number
  /** Identification. */
  id: number
  /** Don't Fragment. */
  df: boolean
  /** More Fragments. */
  mf: boolean
  /** Fragment offset in bytes. */
  fragOffset: number
  /** Time to live. */
  ttl: number
  /** Protocol. */
  protocol: number
  /** Source address (u32). */
  src: number
  /** Destination address (u32). */
  dst: number
  /** Raw option bytes (length a multiple of 4). */
  options: Uint8Array
  /** Payload. */
  payload: Uint8Array
}

/** Parses and validates a datagram at `b[off..end)`, or returns why it is refused. */
export function parseIpv4(b: Uint8Array, off = 0, end = b.length): Ipv4Repr | IpHeaderError {
  const h = checkIpv4(b, off, end)
  if (typeof h === 'string') return h
  const frag = get16(b, off + IP.FRAG)
  return {
    tos: b[off + IP.TOS]!,
    id: get16(b, off + IP.ID),
    df: (frag & IpFlags.DF) !== 0,
    mf: (frag & IpFlags.MF) !== 0,
    fragOffset: (frag & IpFlags.OFFSET_MASK) * 8,
    ttl: b[off + IP.TTL]!,
    protocol: b[off + IP.PROTO]!,
    src: get32(b, off + IP.SRC),
    dst: get32(b, off + IP.DST),
    options: b.slice(off + IP.HLEN, off + h),
    payload: b.slice(off + h, off + get16(b, off + IP.LEN)),
  }
}

/** Builds a datagram from a repr (checksum computed). Options are padded to 4 bytes. */
export function emitIpv4(r: Partial<Ipv4Repr> & { src: number; dst: number; protocol: number; payload: Uint8Array }): Uint8Array {
  const opts = r.options ?? new Uint8Array(0)
  const olen = (opts.length + 3) & ~3
  const hlen = IP.HLEN + olen
  const out = new Uint8Array(hlen + r.payload.length)
  const frag = (r.df ? IpFlags.DF : 0) | (r.mf ? IpFlags.MF : 0) | (((r.fragOffset ?? 0) >>> 3) & IpFlags.OFFSET_MASK)
  writeIpv4Header(out, 0, out.length, r.id ?? 0, frag, r.ttl ?? DEFAULT_TTL, r.protocol, r.src, r.dst, r.tos ?? 0)
  out[0] = 0x40 | (hlen >>> 2)
  out.set(opts, IP.HLEN)
  out.set(r.payload, hlen)
  fillIpv4Checksum(out, 0)
  return out
}
