/**
 * Ethernet II header (IEEE 802.3 clause 3.2, DIX framing): offsets, EtherTypes, a
 * field view for the fast path and a plain {@link EthRepr} for tests and slow paths.
 *
 * ```
 *   0      6      12    14
 *   | dst  | src  | type | payload ...
 * ```
 * @module
 */
import { get16, set16 } from '../../core/bytes.js'

/** Byte offsets within the Ethernet header. */
export const ETH = {
  /** Destination MAC. */
  DST: 0,
  /** Source MAC. */
  SRC: 6,
  /** EtherType (values >= 0x0600; smaller values are 802.3 lengths). */
  TYPE: 12,
  /** Header length. */
  HLEN: 14,
  /** Smallest frame on the wire without FCS (IEEE 802.3 clause 4.4.2: 64 bytes with FCS). */
  MIN_FRAME: 60,
} as const

/** EtherTypes pathsplice knows (IEEE registry). */
export const EtherType = {
  /** IPv4 (RFC 894). */
  IPv4: 0x0800,
  /** ARP (RFC 826). */
  ARP: 0x0806,
  /** 802.1Q VLAN tag. */
  VLAN: 0x8100,
  /** 802.1ad service VLAN tag (QinQ). */
  QINQ: 0x88a8,
  /** IPv6 (RFC 8200); not handled, counted. */
  IPv6: 0x86dd,
} as const

/** The broadcast MAC address. */
export const BROADCAST_MAC: Uint8Array = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff)

/** Reads the EtherType of the frame at `off`. */
export function ethType(b: Uint8Array, off: number): number {
  return get16(b, off + ETH.TYPE)
}

/** True if the destination MAC at `off` has the group bit set (broadcast or multicast, IEEE 802 §8.2). */
export function isGroupMac(b: Uint8Array, off: number): boolean {
  return (b[off]! & 1) === 1
}

/** True if the 6 bytes at `b[off..]` equal `mac`. Allocation-free. */
export function macEquals(b: Uint8Array, off: number, mac: Uint8Array): boolean {
  return (
    b[off] === mac[0] && b[off + 1] === mac[1] && b[off + 2] === mac[2] &&
    b[off + 3] === mac[3] && b[off + 4] === mac[4] && b[off + 5] === mac[5]
  )
}

/** Copies a 6-byte MAC into `b` at `off` without allocating. */
export function writeMac(b: Uint8Array, off: number, mac: Uint8Array): void {
  b[off] = mac[0]!
  b[off + 1] = mac[1]!
  b[off + 2] = mac[2]!
  b[off + 3] = mac[3]!
  b[off + 4] = mac[4]!
  b[off + 5] = mac[5]!
}

/** Writes a whole Ethernet header at `off`. */
export function writeEthHeader(b: Uint8Array, off: number, dst: Uint8Array, src: Uint8Array, type: number): void {
  writeMac(b, off + ETH.DST, dst)
  writeMac(b, off + ETH.SRC, src)
  set16(b, off + ETH.TYPE, type)
}

/** A parsed Ethernet header (tests, dumps, slow paths). */
export interface EthRepr {
  /** Destination MAC (6 bytes). */
  dst: Uint8Array
  /** Source MAC (6 bytes). */
  src: Uint8Array
  /** EtherType of the payload (after any VLAN tag). */
  type: number
  /** 802.1Q VLAN id when the frame was tagged, else -1. */
  vlan: number
  /** Header length: 14, or 18 with one VLAN tag. */
  headerLength: number
}

/** Why {@link parseEth} refused a frame. */
export type EthParseError = 'short' | 'length-field'

/** Parses the Ethernet header of `b[off..end)`; one 802.1Q tag is understood. */
export function parseEth(b: Uint8Array, off = 0, end = b.length): EthRepr | EthParseError {
  if (end - off < ETH.HLEN) return 'short'
  let type = get16(b, off + ETH.TYPE)
  let vlan = -1
  let hlen: number = ETH.HLEN
  if (type === EtherType.VLAN || type === EtherType.QINQ) {
    if (end - off < ETH.HLEN + 4) return 'short'
    vlan = get16(b, off + 14) & 0x0fff
    type = get16(b, off + 16)
    hlen = 18
  }
  // IEEE 802.3 clause 3.2.6: values below 0x0600 are an 802.3 length, not a type.
  if (type < 0x0600) return 'length-field'
  return { dst: b.slice(off, off + 6), src: b.slice(off + 6, off + 12), type, vlan, headerLength: hlen }
}

/** Builds an Ethernet frame (header + payload, padded to the 60-byte minimum if `pad`). */
export function emitEth(repr: { dst: Uint8Array; src: Uint8Array; type: number }, payload: Uint8Array, pad = true): Uint8Array {
  const len = Math.max(ETH.HLEN + payload.length, pad ? ETH.MIN_FRAME : 0)
  const out = new Uint8Array(len)
  writeEthHeader(out, 0, repr.dst, repr.src, repr.type)
  out.set(payload, ETH.HLEN)
  return out
}
