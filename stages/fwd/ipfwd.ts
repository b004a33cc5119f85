/**
 * IP/FWD: the merged stage of a spliced connection that bypasses IP reassembly (Scout
 * §IV: IP/FWD, 24 µs against FWD's 39 µs). It sits directly above ETH on both sides.
 * Consumes: IPv4 datagrams, protocol 6, unfragmented; `msg.off` at the IP header.
 * Produces: the datagram for the other connection: IP addresses rewritten with the IP
 *           checksum updated incrementally, TTL reset to 64 as a fresh header would be,
 *           the TCP segment rewritten as by FWD, `msg.nextHop` set for ETH's ARP lookup.
 * Drops:    FWD's reasons, plus 'fragment' (fragments need the FWD path, which reassembles),
 *           'not-tcp', 'bad-ip-header', 'bad-ip-checksum'.
 * @module
 */
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import { checksum, fold } from '../../core/checksum.js'
import type { Msg } from '../../core/msg.js'
import { Dir, type Dir as DirT } from '../../core/stage.js'
import { FwdStage, type FwdConfig } from './stage.js'

/** IP header fields used here. */
const IP_LEN = 2
const IP_FRAG = 6
const IP_TTL = 8
const IP_PROTO = 9
const IP_CSUM = 10
const IP_SRC = 12
const IP_DST = 16
/** TTL of the rewritten datagram: the proxy host originates it, like the IP stage would. */
const OUT_TTL = 64

/** Configuration of an {@link IpFwdStage}: FWD's, plus where each direction's datagrams go next. */
export interface IpFwdConfig extends FwdConfig {
  /** Next-hop address for A -> B datagrams (B's peer, or the gateway towards it). */
  abNextHop: number
  /** Next-hop address for B -> A datagrams. */
  baNextHop: number
}

/** The merged IP + FWD stage. */
export class IpFwdStage extends FwdStage {
  private readonly abNextHop: number
  private readonly baNextHop: number

  /** Creates the stage. */
  constructor(cfg: IpFwdConfig) {
    super(cfg, 'IPFWD')
    this.abNextHop = cfg.abNextHop >>> 0
    this.baNextHop = cfg.baNextHop >>> 0
  }

  /** Rewrites and forwards one datagram. */
  override deliver(msg: Msg, dir: DirT): void {
    if (this.ended !== null) return this.drop(msg, 'closed')
    const b = msg.buf
    let ip = msg.off
    if (msg.end - ip < 20 || b[ip]! >>> 4 !== 4) return this.drop(msg, 'bad-ip-header')
    const ihl = (b[ip]! & 0xf) << 2
    const total = get16(b, ip + IP_LEN)
    if (ihl < 20 || total < ihl || ip + total > msg.end) return this.drop(msg, 'bad-ip-header')
    if (b[ip + IP_PROTO] !== 6) return this.drop(msg, 'not-tcp')
    // MF set or a non-zero offset: a fragment. Reassembly is what IP/FWD bypasses.
    if ((get16(b, ip + IP_FRAG) & 0x3fff) !== 0) return this.drop(msg, 'fragment')
    // The header is rewritten (and on a chop recomputed): it must be intact first.
    if (ihl === 20) {
      // The common case, inline (as the router does): the ones' complement sum of the ten
      // header words must be 0xffff (RFC 1071).
      let h =
        ((b[ip]! << 8) | b[ip + 1]!) + total + ((b[ip + 4]! << 8) | b[ip + 5]!) + ((b[ip + 6]! << 8) | b[ip + 7]!) +
        ((b[ip + 8]! << 8) | b[ip + 9]!) + ((b[ip + 10]! << 8) | b[ip + 11]!) + ((b[ip + 12]! << 8) | b[ip + 13]!) +
        ((b[ip + 14]! << 8) | b[ip + 15]!) + ((b[ip + 16]! << 8) | b[ip + 17]!) + ((b[ip + 18]! << 8) | b[ip + 19]!)
      h = (h & 0xffff) + (h >>> 16)
      h = (h & 0xffff) + (h >>> 16)
      if (h !== 0xffff) return this.drop(msg, 'bad-ip-checksum')
    } else if (checksum(b, ip, ihl) !== 0) return this.drop(msg, 'bad-ip-checksum')
    msg.end = ip + total // strip Ethernet padding
    // int32, not uint32: passed to calls unboxed (see FwdStage.deliver).
    const srcIp = get32(b, ip + IP_SRC) | 0
    const dstIp = get32(b, ip + IP_DST) | 0
    const chop = this.rewrite(msg, dir, ip + ihl, srcIp, dstIp)
    if (chop < 0) return
    const forward = dir === Dir.Forward
    const d = forward ? this.ab : this.ba
    if (chop > 0) {
      // The TCP header moved forward over chopped data; move the IP header after it.
      b.copyWithin(ip + chop, ip, ip + ihl)
      ip += chop
      msg.off = ip
      set16(b, ip + IP_LEN, total - chop)
      b[ip + IP_TTL] = OUT_TTL
      set32(b, ip + IP_SRC, d.outSrcIp)
      set32(b, ip + IP_DST, d.outDstIp)
      set16(b, ip + IP_CSUM, 0)
      set16(b, ip + IP_CSUM, checksum(b, ip, ihl))
    } else {
      // RFC 1624 eqn. 3 for TTL/protocol and both addresses, folded once (see rewriteSegment).
      const os = d.outSrcIp
      const od = d.outDstIp
      const sum =
        (~get16(b, ip + IP_CSUM) & 0xffff) + (0xffff - get16(b, ip + IP_TTL)) + ((OUT_TTL << 8) | 6) +
        (0x1fffe - (srcIp >>> 16) - (srcIp & 0xffff)) + (os >>> 16) + (os & 0xffff) +
        (0x1fffe - (dstIp >>> 16) - (dstIp & 0xffff)) + (od >>> 16) + (od & 0xffff)
      const c = ~fold(sum) & 0xffff
      b[ip + IP_TTL] = OUT_TTL
      set32(b, ip + IP_SRC, d.outSrcIp)
      set32(b, ip + IP_DST, d.outDstIp)
      set16(b, ip + IP_CSUM, c)
    }
    msg.l3 = ip
    msg.l4 = ip + ihl
    msg.nextHop = forward ? this.abNextHop : this.baNextHop
    this.forward(msg, dir, ip + ihl)
  }
}
