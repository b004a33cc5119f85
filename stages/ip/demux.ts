/**
 * The IPv4 level of a host's classifier tree: local delivery (by protocol), reassembly
 * (fragments), forwarding (when the host routes), or a counted drop.
 * @module
 */
import { get16, get32 } from '../../core/bytes.js'
import { FieldDemux, type ClassifierNode, type DemuxTarget } from '../../core/classifier.js'
import type { Msg } from '../../core/msg.js'
import { PathEnd } from '../../core/path.js'
import { IP, IpFlags } from './header.js'

/** A {@link FieldDemux} keyed by the IPv4 protocol field; the next level starts after the header (IHL). */
export function ipProtoDemux(name = 'IP proto'): FieldDemux {
  return new FieldDemux(name, {
    key: (b, off, end) => (end - off < IP.HLEN ? -1 : b[off + IP.PROTO]!),
    next: (b, off) => off + ((b[off]! & 0x0f) << 2),
  })
}

/** Why the {@link Ipv4Demux} claimed no path for a datagram (the frame is freed by ingress). */
export interface Ipv4DemuxCounters {
  /** Shorter than an IPv4 header. */
  short: number
  /** Not addressed to us, and we do not forward. */
  notForUs: number
  /** Protocol nobody registered. */
  unknownProtocol: number
  /** Registered protocol whose node claimed no path (e.g. TCP with no connection or listener). */
  unclaimedBelow: number
}

/**
 * The IPv4 classifier level of one interface. Reads the destination: ours (or a
 * broadcast of the link) goes to `reassembly` if it is a fragment, else down the
 * protocol demux; anything else goes to `forward` (an IP router path's end) or nowhere.
 */
export class Ipv4Demux implements ClassifierNode {
  /** Name in dumps. */
  readonly name: string
  /** Protocol level below. */
  readonly protocols: FieldDemux
  /** Where fragments for us go (a reassembly path's end), or null to refuse them. */
  reassembly: PathEnd | null = null
  /** Where datagrams of protocols nobody registered go (the ICMP path, to answer 3/2), or null. */
  unknownProtocol: PathEnd | null = null
  /**
   * Asked first about datagrams for others (TCP interception for a transparent proxy):
   * a path end takes the datagram locally, null lets it go on to `forward`.
   */
  intercept: ClassifierNode | null = null
  /** Where datagrams for others go (the router path), or null (not a router). */
  forward: DemuxTarget | null = null
  /** Drops by reason. */
  readonly counters: Ipv4DemuxCounters = { short: 0, notForUs: 0, unknownProtocol: 0, unclaimedBelow: 0 }
  /** The host's other addresses, also delivered locally (weak host model, RFC 1122 §3.3.4.2). */
  isLocal: ((ip: number) => boolean) | null = null
  private readonly local: number
  private readonly bcast: number

  /** Creates the level for local address `local` and directed broadcast `bcast` (-1 for none). */
  constructor(local: number, bcast: number, name = 'IPv4 dst') {
    this.name = name
    this.local = local >>> 0
    this.bcast = bcast
    this.protocols = ipProtoDemux()
  }

  /** Classifies the datagram whose IPv4 header starts at `off`. */
  classify(msg: Msg, off: number): PathEnd | null {
    const b = msg.buf
    if (msg.end - off < IP.HLEN) {
      this.counters.short++
      return null
    }
    const dst = get32(b, off + IP.DST)
    if (dst !== this.local && dst !== 0xffffffff && dst !== this.bcast && (this.isLocal === null || !this.isLocal(dst))) {
      const ic = this.intercept
      if (ic !== null) {
        const e = ic.classify(msg, off)
        if (e !== null) return e
      }
      const f = this.forward
      if (f === null) {
        this.counters.notForUs++
        return null
      }
      return f instanceof PathEnd ? f : f.classify(msg, off)
    }
    if ((get16(b, off + IP.FRAG) & (IpFlags.MF | IpFlags.OFFSET_MASK)) !== 0 && this.reassembly !== null) return this.reassembly
    const r = this.protocols.classify(msg, off)
    if (r === null) {
      if (this.protocols.get(b[off + IP.PROTO]!) === undefined) {
        this.counters.unknownProtocol++
        return this.unknownProtocol
      }
      this.counters.unclaimedBelow++
    }
    return r
  }

  /** Dumps this level and the protocols below. */
  describe(indent: string, out: string[]): void {
    const f = (a: number): string => `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`
    out.push(`${indent}${this.name} (local ${f(this.local)})`)
    if (this.reassembly !== null) out.push(`${indent}  fragment -> ${this.reassembly.name}`)
    this.protocols.describe(indent + '  ', out)
    if (this.intercept !== null) {
      out.push(`${indent}  not local, intercepted`)
      this.intercept.describe(indent + '    ', out)
    }
    if (this.forward !== null) {
      out.push(`${indent}  not local ${this.forward instanceof PathEnd ? `-> ${this.forward.name}` : ''}`.trimEnd())
      if (!(this.forward instanceof PathEnd)) this.forward.describe(indent + '    ', out)
    }
  }
}
