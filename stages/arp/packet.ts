/**
 * ARP packets for IPv4 over Ethernet (RFC 826): offsets, validation, builders.
 *
 * ```
 *   0     2     4    5    6    8         14        18        24        28
 *   | hrd | pro |hln |pln | op | sha      | spa     | tha      | tpa     |
 * ```
 * @module
 */
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import { allocMsg, type Msg } from '../../core/msg.js'
import { BROADCAST_MAC, ETH, EtherType, writeEthHeader, writeMac } from '../eth/header.js'

/** Byte offsets within an ARP packet (after the Ethernet header). */
export const ARP = {
  /** Hardware type (1 = Ethernet). */
  HRD: 0,
  /** Protocol type (0x0800 = IPv4). */
  PRO: 2,
  /** Hardware address length (6). */
  HLN: 4,
  /** Protocol address length (4). */
  PLN: 5,
  /** Opcode. */
  OP: 6,
  /** Sender hardware address. */
  SHA: 8,
  /** Sender protocol address. */
  SPA: 14,
  /** Target hardware address. */
  THA: 18,
  /** Target protocol address. */
  TPA: 24,
  /** Length of an Ethernet/IPv4 ARP packet. */
  LEN: 28,
} as const

/** ARP opcodes (RFC 826). */
export const ArpOp = {
  /** ares_op$REQUEST. */
  REQUEST: 1,
  /** ares_op$REPLY. */
  REPLY: 2,
} as const

/** Reasons an ARP packet is refused by {@link checkArp}. */
export const ARP_PARSE_ERRORS = ['short', 'bad-hw-type', 'bad-proto-type', 'bad-op', 'bad-sender'] as const
/** One of {@link ARP_PARSE_ERRORS}. */
export type ArpParseError = (typeof ARP_PARSE_ERRORS)[number]

/**
 * Validates the ARP packet at `b[off..end)` for Ethernet/IPv4. Returns null when usable,
 * else the reason. Allocation-free.
 */
export function checkArp(b: Uint8Array, off: number, end: number): ArpParseError | null {
  if (end - off < ARP.LEN) return 'short'
  // RFC 826 packet reception: "?Do I have the hardware type in ar$hrd?" / "?Do I speak the protocol in ar$pro?"
  if (get16(b, off + ARP.HRD) !== 1 || b[off + ARP.HLN] !== 6) return 'bad-hw-type'
  if (get16(b, off + ARP.PRO) !== EtherType.IPv4 || b[off + ARP.PLN] !== 4) return 'bad-proto-type'
  const op = get16(b, off + ARP.OP)
  if (op !== ArpOp.REQUEST && op !== ArpOp.REPLY) return 'bad-op'
  // A group (broadcast/multicast) sender hardware address is never a valid binding.
  if ((b[off + ARP.SHA]! & 1) === 1) return 'bad-sender'
  return null
}

/** A parsed ARP packet (tests and dumps). */
export interface ArpRepr {
  /** Opcode: 1 request, 2 reply. */
  op: number
  /** Sender MAC. */
  sha: Uint8Array
  /** Sender IPv4 address. */
  spa: number
  /** Target MAC (zero in requests). */
  tha: Uint8Array
  /** Target IPv4 address. */
  tpa: number
}

/** Parses an ARP packet at `b[off..end)`, or returns why it is unusable. */
export function parseArp(b: Uint8Array, off = 0, end = b.length): ArpRepr | ArpParseError {
  const err = checkArp(b, off, end)
  if (err !== null) return err
  return {
    op: get16(b, off + ARP.OP),
    sha: b.slice(off + ARP.SHA, off + ARP.SHA + 6),
    spa: get32(b, off + ARP.SPA),
    tha: b.slice(off + ARP.THA, off + ARP.THA + 6),
    tpa: get32(b, off + ARP.TPA),
  }
}

/** Writes the 28-byte ARP body at `off`. */
export function writeArp(b: Uint8Array, off: number, r: ArpRepr): void {
  set16(b, off + ARP.HRD, 1)
  set16(b, off + ARP.PRO, EtherType.IPv4)
  b[off + ARP.HLN] = 6
  b[off + ARP.PLN] = 4
  set16(b, off + ARP.OP, r.op)
  writeMac(b, off + ARP.SHA, r.sha)
  set32(b, off + ARP.SPA, r.spa)
  writeMac(b, off + ARP.THA, r.tha)
  set32(b, off + ARP.TPA, r.tpa)
}

const ZERO_MAC = new Uint8Array(6)

/**
 * Builds a complete Ethernet frame carrying an ARP packet, padded to the 60-byte minimum.
 * `ethDst` defaults to broadcast for requests and to `tha` for replies.
 */
export function buildArpFrame(r: ArpRepr, ethDst?: Uint8Array): Msg {
  const m = allocMsg(ETH.MIN_FRAME)
  const o = m.off
  writeEthHeader(m.buf, o, ethDst ?? (r.op === ArpOp.REQUEST ? BROADCAST_MAC : r.tha), r.sha, EtherType.ARP)
  writeArp(m.buf, o + ETH.HLEN, r)
  // IEEE 802.3 minimum frame: pad with zeros (the pooled buffer may hold old bytes).
  m.buf.fill(0, o + ETH.HLEN + ARP.LEN, o + ETH.MIN_FRAME)
  m.end = o + ETH.MIN_FRAME
  return m
}

/** An ARP request for `target` from (`mac`, `ip`); `ip === target` makes it gratuitous (RFC 5227 §3). */
export function buildArpRequest(mac: Uint8Array, ip: number, target: number): Msg {
  return buildArpFrame({ op: ArpOp.REQUEST, sha: mac, spa: ip, tha: ZERO_MAC, tpa: target })
}
