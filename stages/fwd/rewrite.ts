/**
 * The spliced-segment rewrite shared by FWD and IP/FWD (DESIGN §5, Scout §III-C, IBM TCP
 * Splice §3): one direction of a spliced connection, A's segment made into B's.
 *
 * ```
 *   out.srcPort = local port on B      out.dstPort = remote port on B
 *   out.seq     = in.seq + seqOffset   (this direction)
 *   out.ack     = in.ack - ackOffset   (= the other direction's seqOffset)
 *   out.window  = (in.window << inShift) >> outShift, clamped to 0xffff
 *   TSval       = in.TSval + tsvalOffset;  TSecr = in.TSecr - tsecrOffset  (or NOPs)
 *   SACK blocks = block - ackOffset (or NOPs)
 *   checksum    = RFC 1624 incremental update of every changed word, pseudo-header too
 * ```
 * All arithmetic is modulo 2^32. No allocation: the fields are numbers on a class whose
 * shape never changes, and the segment is rewritten in place.
 * @module
 */
import { get32, set16, set32 } from '../../core/bytes.js'
import { checksum, csumUpdate32, fold, pseudoHeaderSum, sumBytes } from '../../core/checksum.js'
import { VNET_F_NEEDS_CSUM, type VnetHeader } from '../../core/msg.js'
import { seqAdd, seqDiff, seqGt, seqLt } from '../../core/seq.js'
import { TcpField, TcpFlag } from '../tcp/segment.js'

/** How the Timestamps option is carried across the splice. */
export const TsMode = {
  /** Neither connection uses timestamps: nothing to do. */
  None: 0,
  /** Both use them: TSval and TSecr are shifted by per-direction offsets. */
  Map: 1,
  /** Only one side uses them: the option is overwritten with NOPs. */
  Nop: 2,
} as const
/** One of {@link TsMode}. */
export type TsMode = (typeof TsMode)[keyof typeof TsMode]

/** Why a rewrite refused a segment. 0 means it was rewritten. */
export const FWD_DROP_REASONS = ['syn-on-spliced', 'blind-injection', 'truncated', 'below-splice-base'] as const
/** One of {@link FWD_DROP_REASONS}. */
export type FwdDropReason = (typeof FWD_DROP_REASONS)[number]

/** Configuration of one direction of a splice (from connection X's peer to connection Y's peer). */
export interface FwdDirectionConfig {
  /** Our address on the outgoing connection (source of the rewritten segment). */
  outSrcIp: number
  /** The outgoing connection's peer address. */
  outDstIp: number
  /** Our port on the outgoing connection. */
  outSrcPort: number
  /** The outgoing connection's peer port. */
  outDstPort: number
  /** Added to every incoming seq: `snd_nxt(Y) - rcv_nxt(X)` once drained (mod 2^32). */
  seqOffset: number
  /** Subtracted from every incoming ack: the other direction's `seqOffset`. */
  ackOffset: number
  /** The incoming peer's window shift (what it announced in its SYN; 0 if no scaling). */
  inShift: number
  /** The shift the outgoing peer applies to our window (what we announced to it). */
  outShift: number
  /** Timestamp handling. */
  tsMode: TsMode
  /** Added to TSval: `lastSentTS(Y) - lastRecvTS(X)`. */
  tsvalOffset: number
  /** Subtracted from TSecr: the other direction's `tsvalOffset`. */
  tsecrOffset: number
  /** True when both connections negotiated SACK (blocks are mapped); else they are NOP-ed. */
  sack: boolean
  /** Splice base point in the incoming sequence space: data below it was consumed by the proxy and is chopped. */
  base: number
  /** Highest incoming sequence seen (seq + len), in the incoming space: the blind-injection reference. */
  highSeq: number
  /** Incoming peer's last window in bytes. */
  window: number
  /** Incoming peer's last ack (its own space) at the splice: the TCB's SND.UNA towards it. */
  lastAck?: number
  /** Incoming peer's last TSval at the splice (TS.Recent), for unsplicing. */
  tsLastIn?: number
  /** Sequence number of the FIN the incoming peer sent before the splice, if it did (a half-closed stream). */
  finSeq?: number
  /** The MSS the outgoing peer announced (0: unknown): GSO super-segments are cut to it. */
  outMss?: number
}

/** Smallest tolerance for the blind-injection check (a segment this far outside the windows is refused). */
export const MIN_INJECTION_TOLERANCE = 128 * 1024

/** How far the splice base may trail the highest sequence forwarded (1 GiB, well inside 2^31). */
const BASE_TRAIL = 2 ** 30

/**
 * One direction's live splice state. Field order is fixed so V8 keeps one hidden class.
 * Every field starts as a number (not undefined, as a bare class field would): V8 then
 * gives the sequence fields a double representation whose box is updated in place; a field
 * that first held undefined becomes a tagged field, and every store of a number >= 2^31
 * into it allocates a new heap number (one per segment; found by the heap profiler).
 */
export class FwdDirection {
  /** See {@link FwdDirectionConfig.outSrcIp}. */
  outSrcIp = 0
  /** See {@link FwdDirectionConfig.outDstIp}. */
  outDstIp = 0
  /** See {@link FwdDirectionConfig.outSrcPort}. */
  outSrcPort = 0
  /** See {@link FwdDirectionConfig.outDstPort}. */
  outDstPort = 0
  /** See {@link FwdDirectionConfig.seqOffset}. */
  seqOffset = 0
  /** See {@link FwdDirectionConfig.ackOffset}. */
  ackOffset = 0
  /** See {@link FwdDirectionConfig.inShift}. */
  inShift = 0
  /** See {@link FwdDirectionConfig.outShift}. */
  outShift = 0
  /** See {@link FwdDirectionConfig.tsMode}. */
  tsMode: TsMode = TsMode.None
  /** See {@link FwdDirectionConfig.tsvalOffset}. */
  tsvalOffset = 0
  /** See {@link FwdDirectionConfig.tsecrOffset}. */
  tsecrOffset = 0
  /** See {@link FwdDirectionConfig.sack}. */
  sack = false
  /** See {@link FwdDirectionConfig.base}. */
  base = 0
  /** Highest incoming seq + len seen (incoming space). */
  highSeq = 0
  /** Last ack seen from the incoming peer (in its own space: the outgoing space of the other direction), for unsplicing. */
  lastAck = 0
  /** Last TSval seen from the incoming peer, for unsplicing. */
  tsLastIn = 0
  /** Incoming peer's last window in bytes. */
  window = 0
  /** Largest window seen, for the blind-injection tolerance. */
  maxWindow = 0
  /** Sequence number of the FIN received from the incoming peer, when one was. */
  finSeq = 0
  /** True once the incoming peer sent FIN. */
  finSeen = false
  /** Segments rewritten. */
  segments = 0
  /** Payload bytes forwarded. */
  bytes = 0
  /** Bytes chopped below the splice base. */
  chopped = 0
  /** The outgoing peer's MSS (0: unknown), for the GSO size of super-segments. */
  outMss = 0

  /** Creates a direction from its configuration. */
  constructor(c: FwdDirectionConfig) {
    this.outSrcIp = c.outSrcIp >>> 0
    this.outDstIp = c.outDstIp >>> 0
    this.outSrcPort = c.outSrcPort
    this.outDstPort = c.outDstPort
    this.seqOffset = c.seqOffset >>> 0
    this.ackOffset = c.ackOffset >>> 0
    this.inShift = Math.min(14, c.inShift)
    this.outShift = Math.min(14, c.outShift)
    this.tsMode = c.tsMode
    this.tsvalOffset = c.tsvalOffset >>> 0
    this.tsecrOffset = c.tsecrOffset >>> 0
    this.sack = c.sack
    this.base = c.base >>> 0
    this.highSeq = c.highSeq >>> 0
    this.window = c.window
    this.maxWindow = c.window
    this.lastAck = (c.lastAck ?? 0) >>> 0
    this.tsLastIn = (c.tsLastIn ?? 0) >>> 0
    this.outMss = c.outMss ?? 0
    if (c.finSeq !== undefined) {
      this.finSeen = true
      this.finSeq = c.finSeq >>> 0
    }
  }
}

/** Result of {@link rewriteSegment}: the payload bytes chopped from the front (when >= 0) or a drop reason. */
export type RewriteResult = number | FwdDropReason

/**
 * Rewrites the TCP segment at `buf[tcp..end)` in place for the outgoing connection.
 * `srcIp`/`dstIp` are the incoming datagram's addresses (for the pseudo-header change).
 * Chopping below the splice base moves the header forward: the caller must then start the
 * segment at `tcp + result`. Returns a drop reason instead when the segment must not pass.
 */
export function rewriteSegment(buf: Uint8Array, tcp: number, end: number, srcIp: number, dstIp: number, d: FwdDirection, other: FwdDirection): RewriteResult {
  if (end - tcp < 20) return 'truncated'
  const hlen = (buf[tcp + TcpField.DATA_OFF]! >>> 4) << 2
  if (hlen < 20 || tcp + hlen > end) return 'truncated'
  const flags = buf[tcp + TcpField.FLAGS]!
  // DESIGN §5: a SYN on a spliced connection is never forwarded (no new connection can
  // be opened through a splice, and a SYN in the middle of one is an attack or a bug).
  if ((flags & TcpFlag.SYN) !== 0) return 'syn-on-spliced'
  const q = tcp + TcpField.SEQ
  const seq = ((buf[q]! << 24) | (buf[q + 1]! << 16) | (buf[q + 2]! << 8) | buf[q + 3]!) >>> 0
  const ack = ((buf[q + 4]! << 24) | (buf[q + 5]! << 16) | (buf[q + 6]! << 8) | buf[q + 7]!) >>> 0
  let payload = end - tcp - hlen
  // Blind injection (RFC 5961 spirit, DESIGN §5): seq must be near what the peer has sent,
  // ack near what we have sent it; anything far outside both windows is refused.
  const tol = Math.max(MIN_INJECTION_TOLERANCE, 2 * d.maxWindow, 2 * other.maxWindow)
  const ahead = seqDiff(seq, d.highSeq)
  if (ahead > tol || -ahead > tol) return 'blind-injection'
  if ((flags & TcpFlag.ACK) !== 0) {
    // The ack is in the other direction's outgoing space: compare with what was sent.
    const sentHigh = seqAdd(other.highSeq, other.seqOffset)
    const ackAhead = seqDiff(ack, sentHigh)
    if (ackAhead > tol || -ackAhead > tol) return 'blind-injection'
  }
  let chop = 0
  let full = false
  if (payload > 0 && seqLt(seq, d.base)) {
    // Data below the base point is a retransmission the proxy already consumed.
    chop = Math.min(payload, seqDiff(d.base, seq))
    if (chop === payload && (flags & (TcpFlag.FIN | TcpFlag.RST)) === 0 && (flags & TcpFlag.ACK) === 0) return 'below-splice-base'
    // What is left of a wholly chopped segment is an ACK whose sequence number stays below
    // the receiver's RCV.NXT, on purpose: the sender retransmits because it never heard
    // the ACK of bytes the proxy consumed, and nobody but the receiver can send that ACK
    // now. RFC 9293 §3.10.7.4 makes the receiver answer an unacceptable segment with an
    // ACK, which the FWD maps back to the sender. (Moved to the receiver's window, the
    // segment is taken silently and the sender retransmits until it times out.)
    if (chop > 0) {
      // Move the header forward over the chopped bytes; the checksum is recomputed below.
      buf.copyWithin(tcp + chop, tcp, tcp + hlen)
      tcp += chop
      set32(buf, tcp + TcpField.SEQ, seqAdd(seq, chop))
      payload -= chop
      d.chopped += chop
      full = true
    }
  }
  const inSeq = (seq + chop) >>> 0
  const segEnd = seqAdd(inSeq, payload + ((flags & TcpFlag.FIN) !== 0 ? 1 : 0))
  // Only data and FIN advance what was forwarded: a pure ACK carries SND.NXT, which is
  // beyond a gap when the data before it was lost. Counting it would put the unsplice
  // point past bytes never forwarded, and let their retransmission (and its FIN) cross it.
  if (segEnd !== inSeq && seqGt(segEnd, d.highSeq)) {
    d.highSeq = segEnd
    // The base only guards the bytes near the splice point. Comparisons mod 2^32 flip after
    // 2^31 bytes (RFC 1982), so a base left behind would make all new data look old: keep
    // it at most BASE_TRAIL behind highSeq (anything older is a blind injection anyway).
    if (seqDiff(segEnd, d.base) > BASE_TRAIL) d.base = seqAdd(segEnd, -BASE_TRAIL)
  }
  if ((flags & TcpFlag.FIN) !== 0 && !d.finSeen) {
    d.finSeen = true
    d.finSeq = seqAdd(inSeq, payload)
  }
  if ((flags & TcpFlag.ACK) !== 0 && seqGt(ack, d.lastAck)) d.lastAck = ack
  d.segments++
  d.bytes += payload

  // The fields are read and written byte by byte below, not through get16/set32: this
  // function is too large for V8 to inline every helper, and a call that passes a sequence
  // number >= 2^31 boxes it (a heap allocation per segment, found by the heap profiler).
  let c = (buf[tcp + TcpField.CHECKSUM]! << 8) | buf[tcp + TcpField.CHECKSUM + 1]!
  const oldSport = (buf[tcp]! << 8) | buf[tcp + 1]!
  const oldDport = (buf[tcp + 2]! << 8) | buf[tcp + 3]!
  const outSport = d.outSrcPort
  const outDport = d.outDstPort
  buf[tcp] = outSport >>> 8
  buf[tcp + 1] = outSport & 0xff
  buf[tcp + 2] = outDport >>> 8
  buf[tcp + 3] = outDport & 0xff
  const outSeq = (inSeq + d.seqOffset) >>> 0
  const o = tcp + TcpField.SEQ
  buf[o] = outSeq >>> 24
  buf[o + 1] = (outSeq >>> 16) & 0xff
  buf[o + 2] = (outSeq >>> 8) & 0xff
  buf[o + 3] = outSeq & 0xff
  const outAck = (ack - d.ackOffset) >>> 0
  buf[o + 4] = outAck >>> 24
  buf[o + 5] = (outAck >>> 16) & 0xff
  buf[o + 6] = (outAck >>> 8) & 0xff
  buf[o + 7] = outAck & 0xff
  const w = tcp + TcpField.WINDOW
  const win = (buf[w]! << 8) | buf[w + 1]!
  // Scaled windows stay below 2^30 (shifts are capped at 14, RFC 7323 §2.3): shifts are exact.
  const winBytes = win << d.inShift
  d.window = winBytes
  if (winBytes > d.maxWindow) d.maxWindow = winBytes
  let outWin = winBytes >>> d.outShift
  if (outWin > 0xffff) outWin = 0xffff
  buf[w] = outWin >>> 8
  buf[w + 1] = outWin & 0xff
  if (!full) {
    // RFC 1624 eqn. 3 for every changed word at once, HC' = ~(~HC + sum(~m) + sum(m')):
    // one fold instead of one per field, the same result (ones' complement addition is
    // associative, and the sum is zero only when each term is). The pseudo-header's
    // addresses change from (X peer, us on X) to (us on Y, Y peer).
    const os = d.outSrcIp
    const od = d.outDstIp
    const sum =
      (~c & 0xffff) +
      (0x1fffe - (srcIp >>> 16) - (srcIp & 0xffff)) + (os >>> 16) + (os & 0xffff) +
      (0x1fffe - (dstIp >>> 16) - (dstIp & 0xffff)) + (od >>> 16) + (od & 0xffff) +
      (0xffff - oldSport) + outSport + (0xffff - oldDport) + outDport +
      (0x1fffe - (seq >>> 16) - (seq & 0xffff)) + (outSeq >>> 16) + (outSeq & 0xffff) +
      (0x1fffe - (ack >>> 16) - (ack & 0xffff)) + (outAck >>> 16) + (outAck & 0xffff) +
      (0xffff - win) + outWin
    // Fold (the sum of 22 terms stays below 2^21: two steps suffice).
    let f = (sum & 0xffff) + (sum >>> 16)
    f = (f & 0xffff) + (f >>> 16)
    c = ~f & 0xffff
  }
  if (hlen > 20) {
    const r = rewriteOptions(buf, tcp, hlen, d, c, full)
    if (r < 0) full = true
    else c = r
  }
  if (full) {
    set16(buf, tcp + TcpField.CHECKSUM, 0)
    const len = hlen + payload
    c = checksum(buf, tcp, len, pseudoHeaderSum(d.outSrcIp, d.outDstIp, 6, len))
  }
  buf[tcp + TcpField.CHECKSUM] = c >>> 8
  buf[tcp + TcpField.CHECKSUM + 1] = c & 0xff
  return chop
}

/** Replaces `n` bytes at `at` with NOPs; returns the updated checksum (or -1 if the region is not 16-bit aligned). */
function nopOut(buf: Uint8Array, tcp: number, at: number, n: number, c: number, full: boolean): number {
  const aligned = ((at - tcp) & 1) === 0 && (n & 1) === 0
  const oldSum = aligned && !full ? fold(sumBytes(buf, at, n)) : 0
  buf.fill(1, at, at + n)
  if (!aligned || full) return -1
  const newSum = fold(sumBytes(buf, at, n))
  return ~fold((~c & 0xffff) + (~oldSum & 0xffff) + newSum) & 0xffff
}

/**
 * Maps the Timestamps and SACK options; returns the updated checksum, or -1 when a full
 * recompute is needed (a field at an odd offset, or the checksum is recomputed anyway).
 */
function rewriteOptions(buf: Uint8Array, tcp: number, hlen: number, d: FwdDirection, c: number, full: boolean): number {
  let i = tcp + 20
  const end = tcp + hlen
  let needFull = full
  while (i < end) {
    const kind = buf[i]!
    if (kind === 0) break
    if (kind === 1) {
      i++
      continue
    }
    if (i + 1 >= end) break
    const len = buf[i + 1]!
    if (len < 2 || i + len > end) break // malformed: leave the rest untouched
    if (kind === 8 && len === 10) {
      if (d.tsMode === TsMode.Nop) {
        const r = nopOut(buf, tcp, i, 10, c, needFull)
        if (r < 0) needFull = true
        else c = r
      } else if (d.tsMode === TsMode.Map) {
        const val = get32(buf, i + 2)
        const ecr = get32(buf, i + 6)
        // The newest TSval (a reordered segment carries an older one): the unsplice
        // continues the clocks above it (RFC 7323 §5.3 PAWS).
        if (seqGt(val, d.tsLastIn)) d.tsLastIn = val
        const nval = (val + d.tsvalOffset) >>> 0
        const necr = ecr === 0 ? 0 : (ecr - d.tsecrOffset) >>> 0
        set32(buf, i + 2, nval)
        set32(buf, i + 6, necr)
        if (((i + 2 - tcp) & 1) === 0) {
          c = csumUpdate32(c, val, nval)
          c = csumUpdate32(c, ecr, necr)
        } else needFull = true
      }
    } else if (kind === 5 && len >= 10 && (len - 2) % 8 === 0) {
      if (!d.sack) {
        const r = nopOut(buf, tcp, i, len, c, needFull)
        if (r < 0) needFull = true
        else c = r
      } else {
        // SACK blocks acknowledge the other direction's data: map them like the ack.
        const aligned = ((i + 2 - tcp) & 1) === 0
        for (let b = i + 2; b < i + len; b += 4) {
          const v = get32(buf, b)
          const nv = (v - d.ackOffset) >>> 0
          set32(buf, b, nv)
          if (aligned) c = csumUpdate32(c, v, nv)
        }
        if (!aligned) needFull = true
      }
    }
    i += len
  }
  return needFull ? -1 : c
}

/**
 * Fixes the virtio-net header of a rewritten segment (`tcp..end`, header length `hlen`)
 * for the outgoing connection (DESIGN §5 with offloads):
 * - NEEDS_CSUM: the checksum field must hold the pseudo-header sum of the OUTGOING
 *   addresses and TCP length (virtio spec §5.1.6.2: "set to the sum of the TCP pseudo
 *   header"; Linux's __tcp_v4_send_check writes `~tcp_v4_check(skb->len, saddr, daddr, 0)`,
 *   the length included, for GSO frames too, and tcp_gso_segment swaps that length for
 *   each segment's). The device sums the header and data itself, so the rewritten ports,
 *   seq, ack and options must not be folded in: the sum is rebuilt, not updated.
 * - GSO: `gsoSize` is cut to the outgoing peer's MSS less the options (RFC 6691), so no
 *   segment the device cuts is larger than the outgoing connection allows. The device
 *   rewrites csumStart/hdrLen from the outgoing header offset ({@link Msg.l4}).
 */
export function fixVnet(buf: Uint8Array, tcp: number, end: number, v: VnetHeader, d: FwdDirection): void {
  if ((v.flags & VNET_F_NEEDS_CSUM) !== 0) {
    set16(buf, tcp + TcpField.CHECKSUM, fold(pseudoHeaderSum(d.outSrcIp, d.outDstIp, 6, end - tcp)))
  }
  if (v.gsoType !== 0 && d.outMss > 0) {
    const hlen = (buf[tcp + TcpField.DATA_OFF]! >>> 4) << 2
    const max = d.outMss - (hlen - 20)
    if (v.gsoSize > max) v.gsoSize = max > 0 ? max : 1
  }
}
