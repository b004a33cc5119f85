/**
 * ICMP messages (RFC 792): types and codes, validation, and builders for echo and for
 * the error messages a host or router sends (RFC 1122 §3.2.2, RFC 1812 §4.3.2), with
 * the rules on when an error must NOT be sent.
 *
 * ```
 *   0      1      2           4                    8
 *   | type | code | checksum  | rest of header      | data ...
 *     echo:                     id | sequence
 *     unreachable 3/4:          unused | next-hop MTU (RFC 1191)
 * ```
 * @module
 */
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import { checksum, fold, sumBytes } from '../../core/checksum.js'
import { allocMsg, type Msg } from '../../core/msg.js'
import { DEFAULT_TTL, IP, IpFlags, IpProto, writeIpv4Header } from './header.js'

/** Byte offsets within an ICMP message. */
export const ICMP = {
  /** Type. */
  TYPE: 0,
  /** Code. */
  CODE: 1,
  /** Checksum over the whole message. */
  CSUM: 2,
  /** Echo identifier. */
  ID: 4,
  /** Echo sequence number. */
  SEQ: 6,
  /** Next-hop MTU of a fragmentation-needed message (RFC 1191 §4). */
  MTU: 6,
  /** Header length. */
  HLEN: 8,
} as const

/** ICMP types (RFC 792). */
export const IcmpType = {
  /** Echo reply. */
  ECHO_REPLY: 0,
  /** Destination unreachable. */
  DEST_UNREACHABLE: 3,
  /** Source quench (deprecated by RFC 6633). */
  SOURCE_QUENCH: 4,
  /** Redirect. */
  REDIRECT: 5,
  /** Echo request. */
  ECHO_REQUEST: 8,
  /** Time exceeded. */
  TIME_EXCEEDED: 11,
  /** Parameter problem. */
  PARAMETER_PROBLEM: 12,
} as const

/** Codes of destination unreachable (RFC 792, RFC 1812 §5.2.7.1). */
export const UnreachCode = {
  /** Network unreachable. */
  NET: 0,
  /** Host unreachable. */
  HOST: 1,
  /** Protocol unreachable. */
  PROTOCOL: 2,
  /** Port unreachable. */
  PORT: 3,
  /** Fragmentation needed and DF set (RFC 1191: carries the next-hop MTU). */
  FRAG_NEEDED: 4,
} as const

/** Codes of time exceeded (RFC 792). */
export const TimeExceededCode = {
  /** TTL exceeded in transit. */
  TTL: 0,
  /** Fragment reassembly time exceeded. */
  REASSEMBLY: 1,
} as const

/** True for types that are errors (never answered with another error, RFC 1122 §3.2.2). */
export function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12
}

/** Reasons an ICMP message is refused. */
export const ICMP_ERRORS = ['short', 'bad-checksum'] as const
/** One of {@link ICMP_ERRORS}. */
export type IcmpParseError = (typeof ICMP_ERRORS)[number]

/** Checks length and checksum of the ICMP message at `b[off..end)`. Allocation-free. */
export function checkIcmp(b: Uint8Array, off: number, end: number): IcmpParseError | null {
  if (end - off < ICMP.HLEN) return 'short'
  // RFC 792: the checksum covers the whole ICMP message.
  if (fold(sumBytes(b, off, end - off)) !== 0xffff) return 'bad-checksum'
  return null
}

/** Fills the checksum of the ICMP message at `b[off..end)`. */
export function fillIcmpChecksum(b: Uint8Array, off: number, end: number): void {
  b[off + ICMP.CSUM] = 0
  b[off + ICMP.CSUM + 1] = 0
  set16(b, off + ICMP.CSUM, checksum(b, off, end - off))
}

/** Most bytes of an ICMP error datagram (RFC 1812 §4.3.2.3: no more than 576). */
export const ICMP_ERROR_MAX = 576

/**
 * May we send an ICMP error about the datagram at `b[ipOff..ipEnd)`? RFC 1122 §3.2.2 /
 * RFC 1812 §4.3.2.7: never about an ICMP error, a non-initial fragment, or a datagram
 * whose source is not a unicast host (zero, broadcast, multicast, loopback) or whose
 * destination is broadcast or multicast.
 */
export function mayReportError(b: Uint8Array, ipOff: number, ipEnd: number): boolean {
  const hlen = (b[ipOff]! & 0x0f) << 2
  if ((get16(b, ipOff + IP.FRAG) & IpFlags.OFFSET_MASK) !== 0) return false
  const src = get32(b, ipOff + IP.SRC)
  const dst = get32(b, ipOff + IP.DST)
  const s0 = src >>> 24
  if (src === 0 || s0 === 127 || s0 >= 224) return false
  if (dst === 0xffffffff || dst >>> 28 === 0xe) return false
  if (b[ipOff + IP.PROTO] === IpProto.ICMP) {
    // An error about an error, or about a truncated ICMP header, is never sent.
    if (ipEnd - ipOff < hlen + 1) return false
    if (isIcmpError(b[ipOff + hlen]!)) return false
  }
  return true
}

/**
 * Builds an ICMP error datagram from `src` about the datagram at `b[ipOff..ipEnd)`:
 * IP header (TTL 64, to the offender's source) + ICMP header (`rest` in bytes 4..8,
 * e.g. the next-hop MTU for 3/4) + as much of the offender as fits in 576 bytes
 * (RFC 1812 §4.3.2.3; RFC 792 asks for at least its header and 64 bits of data).
 * Returns null when {@link mayReportError} says no. `off` of the result is at its IP header.
 */
export function buildIcmpError(b: Uint8Array, ipOff: number, ipEnd: number, type: number, code: number, rest: number, src: number): Msg | null {
  if (!mayReportError(b, ipOff, ipEnd)) return null
  const quote = Math.min(ipEnd - ipOff, ICMP_ERROR_MAX - IP.HLEN - ICMP.HLEN)
  const len = IP.HLEN + ICMP.HLEN + quote
  const m = allocMsg(len)
  const o = m.off
  const out = m.buf
  writeIpv4Header(out, o, len, 0, 0, DEFAULT_TTL, IpProto.ICMP, src, get32(b, ipOff + IP.SRC))
  const c = o + IP.HLEN
  out[c + ICMP.TYPE] = type
  out[c + ICMP.CODE] = code
  set32(out, c + 4, rest)
  out.set(b.subarray(ipOff, ipOff + quote), c + ICMP.HLEN)
  m.end = o + len
  fillIcmpChecksum(out, c, m.end)
  m.l3 = o
  m.l4 = c
  return m
}

/** A parsed ICMP message (tests, error reports). */
export interface IcmpRepr {
  /** Type. */
  type: number
  /** Code. */
  code: number
  /** Bytes 4..8 as a u32 (echo id << 16 | seq; next-hop MTU in the low 16 bits of 3/4). */
  rest: number
  /** Data after the 8-byte header. */
  data: Uint8Array
}

/** Parses an ICMP message (checksum verified) or returns why not. */
export function parseIcmp(b: Uint8Array, off = 0, end = b.length): IcmpRepr | IcmpParseError {
  const err = checkIcmp(b, off, end)
  if (err !== null) return err
  return { type: b[off]!, code: b[off + 1]!, rest: get32(b, off + 4), data: b.slice(off + ICMP.HLEN, end) }
}

/** Builds an ICMP message with a correct checksum. */
export function emitIcmp(r: IcmpRepr): Uint8Array {
  const out = new Uint8Array(ICMP.HLEN + r.data.length)
  out[0] = r.type
  out[1] = r.code
  set32(out, 4, r.rest)
  out.set(r.data, ICMP.HLEN)
  fillIcmpChecksum(out, 0, out.length)
  return out
}
