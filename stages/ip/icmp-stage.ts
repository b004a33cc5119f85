/**
 * ICMP: the host's ICMP endpoint above an unbound IP stage (protocol 1).
 * Consumes: up: an ICMP message with `off` at its header, `msg.l3` at the IP header;
 *           (no messages from above: it originates its own echo requests).
 * Produces: down: echo replies, made in place from the request (type 8 -> 0, checksum
 *           updated incrementally per RFC 1624, destination in `msg.nextHop` for the
 *           unbound IP stage), and echo requests from {@link IcmpStage.sendEcho}.
 *           Datagrams of other protocols (sent here by the classifier when nobody registered
 *           them) are answered with protocol unreachable (3/2, RFC 1122 §3.2.2.1) and dropped.
 * Drops:    'short' | 'bad-checksum' | 'broadcast-echo' | 'unhandled-type' | 'from-above' | 'protocol-unreachable'
 * State:    listeners for echo replies and for ICMP errors.
 * Inspect:  stats() (extra: echoAnswered, echoRepliesIn, errorsIn)
 * @module
 */
import { get16, get32, set16 } from '../../core/bytes.js'
import { csumUpdate16 } from '../../core/checksum.js'
import { allocMsg, type Msg } from '../../core/msg.js'
import { Dir, Stage } from '../../core/stage.js'
import { IP, IpProto } from './header.js'
import { ICMP, IcmpType, UnreachCode, buildIcmpError, checkIcmp, fillIcmpChecksum, isIcmpError } from './icmp.js'

/** An ICMP error as reported to upper layers (TCP uses 3/4 to lower its MSS, RFC 1191). */
export interface IcmpErrorReport {
  /** ICMP type (3, 4, 5, 11, 12). */
  type: number
  /** ICMP code. */
  code: number
  /** Next-hop MTU for type 3 code 4 (0 if the router did not say, RFC 1191 §5), else 0. */
  mtu: number
  /** Who sent the error (u32). */
  from: number
  /** The quoted datagram's source (us, normally). */
  src: number
  /** The quoted datagram's destination. */
  dst: number
  /** The quoted datagram's protocol. */
  protocol: number
  /** First 16 bits of the quoted transport header (source port for TCP/UDP), -1 if absent. */
  srcPort: number
  /** Next 16 bits (destination port), -1 if absent. */
  dstPort: number
}

/** Called for each echo reply: identifier, sequence, sender, ICMP data length. */
export type EchoReplyListener = (id: number, seq: number, from: number, dataLength: number) => void
/** Called for each valid ICMP error message received. */
export type IcmpErrorListener = (report: IcmpErrorReport) => void

/** Drop reasons of {@link IcmpStage}. */
export const ICMP_DROPS = ['short', 'bad-checksum', 'broadcast-echo', 'unhandled-type', 'from-above', 'protocol-unreachable'] as const
/** One of {@link ICMP_DROPS}. */
export type IcmpDrop = (typeof ICMP_DROPS)[number]

/** The host ICMP endpoint. */
export class IcmpStage extends Stage {
  /** Our address (echo requests to anything else, i.e. broadcasts, are not answered). */
  readonly local: number
  /** Receives echo replies (set by the host's ping). */
  onEchoReply: EchoReplyListener | null = null
  /** Receives ICMP errors. */
  onError: IcmpErrorListener | null = null
  /** Echo requests answered. */
  echoAnswered = 0
  /** Echo replies received. */
  echoRepliesIn = 0
  /** Errors received. */
  errorsIn = 0
  /** Protocol-unreachable errors sent for datagrams of unknown protocols. */
  protocolUnreachables = 0

  private readonly isLocal: ((ip: number) => boolean) | null

  /** Creates the endpoint for local address `local`; `isLocal` names the host's other addresses (answered too). */
  constructor(local: number, up: Dir = Dir.Forward, isLocal: ((ip: number) => boolean) | null = null) {
    super('ICMP', up)
    this.local = local >>> 0
    this.isLocal = isLocal
  }

  /** Handles one incoming ICMP message. */
  deliver(msg: Msg, dir: Dir): void {
    if (dir !== this.up) return this.drop(msg, 'from-above')
    const b = msg.buf
    const o = msg.off
    const l3 = msg.l3
    if (l3 >= 0 && b[l3 + IP.PROTO] !== IpProto.ICMP) {
      // RFC 1122 §3.2.2.1: a host SHOULD answer an unsupported transport protocol with 3/2.
      if (this.sendError(b, l3, msg.end, IcmpType.DEST_UNREACHABLE, UnreachCode.PROTOCOL)) this.protocolUnreachables++
      return this.drop(msg, 'protocol-unreachable')
    }
    const bad = checkIcmp(b, o, msg.end)
    if (bad !== null) return this.drop(msg, bad)
    const type = b[o + ICMP.TYPE]!
    if (type === IcmpType.ECHO_REQUEST) {
      // RFC 1122 §3.2.2.6: an echo request to a broadcast address MAY be silently discarded.
      const to = l3 < 0 ? 0 : get32(b, l3 + IP.DST)
      if (to !== this.local && (this.isLocal === null || !this.isLocal(to))) return this.drop(msg, 'broadcast-echo')
      // RFC 792 echo: reverse the addresses, type 0, recompute the checksum (RFC 1624 update).
      const code = b[o + ICMP.CODE]!
      set16(b, o + ICMP.CSUM, csumUpdate16(get16(b, o + ICMP.CSUM), (IcmpType.ECHO_REQUEST << 8) | code, (IcmpType.ECHO_REPLY << 8) | code))
      b[o + ICMP.TYPE] = IcmpType.ECHO_REPLY
      // msg.l3 stays on the request's header: the unbound IP stage answers from its destination.
      msg.nextHop = get32(b, l3 + IP.SRC)
      this.echoAnswered++
      return this.send(msg, this.down)
    }
    if (type === IcmpType.ECHO_REPLY) {
      this.echoRepliesIn++
      const l = this.onEchoReply
      if (l !== null) l(get16(b, o + ICMP.ID), get16(b, o + ICMP.SEQ), l3 >= 0 ? get32(b, l3 + IP.SRC) : 0, msg.end - o - ICMP.HLEN)
      msg.free()
      return
    }
    if (isIcmpError(type) && msg.end - o >= ICMP.HLEN + IP.HLEN) {
      this.errorsIn++
      const l = this.onError
      if (l !== null) l(this.report(msg))
      msg.free()
      return
    }
    this.drop(msg, 'unhandled-type')
  }

  /** Sends an echo request to `dst` with `dataLength` bytes of pattern data. */
  sendEcho(dst: number, id: number, seq: number, dataLength = 56): void {
    const m = allocMsg(ICMP.HLEN + dataLength)
    const o = m.off
    const b = m.buf
    b[o + ICMP.TYPE] = IcmpType.ECHO_REQUEST
    b[o + ICMP.CODE] = 0
    set16(b, o + ICMP.ID, id)
    set16(b, o + ICMP.SEQ, seq)
    for (let i = 0; i < dataLength; i++) b[o + ICMP.HLEN + i] = (i + seq) & 0xff
    m.end = o + ICMP.HLEN + dataLength
    fillIcmpChecksum(b, o, m.end)
    m.nextHop = dst >>> 0
    this.originate(m, this.down)
  }

  /**
   * Sends an ICMP error about the datagram at `b[ipOff..ipEnd)` back to its source
   * (subject to RFC 1122 §3.2.2's rules: returns false when it must not be sent).
   */
  sendError(b: Uint8Array, ipOff: number, ipEnd: number, type: number, code: number, rest = 0): boolean {
    const m = buildIcmpError(b, ipOff, ipEnd, type, code, rest, this.local)
    if (m === null) return false
    // The IP stage below adds the header: hand it the ICMP message only.
    m.nextHop = get32(m.buf, m.off + IP.DST)
    m.off += IP.HLEN
    m.l3 = -1
    m.l4 = m.off
    this.originate(m, this.down)
    return true
  }

  private report(msg: Msg): IcmpErrorReport {
    const b = msg.buf
    const o = msg.off
    const q = o + ICMP.HLEN
    const qh = (b[q]! & 0x0f) << 2
    const type = b[o]!
    const code = b[o + 1]!
    const hasPorts = msg.end - q >= qh + 4
    return {
      type,
      code,
      mtu: type === IcmpType.DEST_UNREACHABLE && code === 4 ? get16(b, o + ICMP.MTU) : 0,
      from: msg.l3 >= 0 ? get32(b, msg.l3 + IP.SRC) : 0,
      src: get32(b, q + IP.SRC),
      dst: get32(b, q + IP.DST),
      protocol: b[q + IP.PROTO]!,
      srcPort: hasPorts ? get16(b, q + qh) : -1,
      dstPort: hasPorts ? get16(b, q + qh + 2) : -1,
    }
  }

  /** Counters beyond the drops. */
  override extraStats(): Record<string, number> {
    return { echoAnswered: this.echoAnswered, echoRepliesIn: this.echoRepliesIn, errorsIn: this.errorsIn, protocolUnreachables: this.protocolUnreachables }
  }
}
