/**
 * IP: the IPv4 stage of a host path (one transport protocol, one local address, and
 * either one remote address or, unbound, a destination per message).
 * Consumes: up: a datagram with `off` at its IPv4 header (ETH popped);
 *           down: a transport message with `off` at the transport header, its checksum
 *           already computed over the pseudo-header (local, remote); an unbound stage
 *           reads the destination from `msg.nextHop` and, when `msg.l3` still points
 *           at the datagram being answered and that was addressed to one of the host's
 *           addresses, uses that address as source (an echo reply comes from the
 *           address that was pinged, RFC 1122 §3.2.2.6).
 * Produces: up: `msg.l3` = IP header offset, `off` = `msg.l4` = transport header,
 *           `end` trimmed to the total length (link padding removed);
 *           down: a 20-byte header pushed (TTL, DF, id, checksum), `msg.l3` set,
 *           `msg.nextHop` = the route's gateway or the destination; datagrams larger
 *           than the link MTU are fragmented unless DF is set (GSO super-frames,
 *           `msg.vnet.gsoType != 0`, pass: the device segments them). No allocation
 *           unless fragmenting.
 * Drops:    header errors ('short' | 'bad-version' | 'bad-ihl' | 'bad-length' |
 *           'bad-checksum' | 'bad-options' | 'bad-src' | 'reserved-flag') and 'fragment' |
 *           'wrong-protocol' | 'not-for-us' | 'wrong-source' | 'no-route' |
 *           'wrong-interface' | 'no-headroom' | 'too-big' | 'needs-frag'
 * State:    addresses, protocol, TTL/DF, the next id, a cached route (re-checked by table version).
 * Inspect:  stats() (extra: fragmentsOut)
 * @module
 */
import { get16, get32 } from '../../core/bytes.js'
import type { Msg } from '../../core/msg.js'
import { Dir, Stage } from '../../core/stage.js'
import { DEFAULT_TTL, IP, IP_HEADER_ERRORS, IpFlags, checkIpv4, writeIpv4Header } from './header.js'
import { fragmentDatagram } from './fragment.js'
import type { Route, RouteTable } from './routes.js'

/** Drop reasons of {@link IpStage}: the header errors of {@link checkIpv4} plus its own. */
export const IP_DROPS = [
  ...IP_HEADER_ERRORS, 'fragment', 'wrong-protocol', 'not-for-us', 'wrong-source', 'no-route', 'wrong-interface', 'no-headroom', 'too-big', 'needs-frag',
] as const
/** One of {@link IP_DROPS}. */
export type IpDrop = (typeof IP_DROPS)[number]

/** What an IP stage needs to know about the interface below it. */
export interface IpLink {
  /** Interface name (dumps). */
  readonly name: string
  /** Our address on it (u32). */
  readonly address: number
  /** Prefix length of the attached network. */
  readonly prefixLength: number
  /** Largest datagram the link carries. */
  readonly mtu: number
}

/** The directed broadcast address of `link`'s network (RFC 919/922), or -1 for /31 and /32. */
export function directedBroadcast(link: IpLink): number {
  if (link.prefixLength >= 31) return -1
  const host = link.prefixLength === 0 ? 0xffffffff : (1 << (32 - link.prefixLength)) - 1
  return (link.address | host) >>> 0
}

/** Options of an {@link IpStage}. */
export interface IpStageOptions<L extends IpLink> {
  /** The interface below (its address is the local address). */
  link: L
  /** Routing table used downwards. */
  routes: RouteTable<L>
  /** Transport protocol carried (6 TCP, 1 ICMP, ...). */
  protocol: number
  /** The remote address, or 0 for an unbound stage (destination per message in `msg.nextHop`). */
  remote?: number
  /**
   * Our address on this stage's datagrams (default: the link's). A transparent proxy's
   * intercepted connection answers as the destination the client asked for.
   */
  local?: number
  /** TTL of datagrams sent (default 64). */
  ttl?: number
  /** Set DF on datagrams sent (default false; a TCP path doing PMTU discovery sets it, RFC 1191). */
  df?: boolean
  /** Pass datagrams of any protocol up (the host's ICMP path, which answers unknown ones with protocol unreachable). */
  anyProtocol?: boolean
  /** Unbound stages: which addresses are the host's (default: only the link's). Weak host model, RFC 1122 §3.3.4.2. */
  isLocal?: (ip: number) => boolean
  /** First identification value (default: random 16 bits). */
  firstId?: number
  /** Direction that is up the stack (default Forward). */
  up?: Dir
}

/** The host IPv4 stage. */
export class IpStage<L extends IpLink = IpLink> extends Stage {
  /** Interface below. */
  readonly link: L
  /** Local address. */
  readonly local: number
  /** Remote address (0: unbound). */
  readonly remote: number
  /** Protocol. */
  readonly protocol: number
  /** TTL sent. */
  ttl: number
  /** DF sent. */
  df: boolean
  /** Fragments sent. */
  fragmentsOut = 0
  private readonly routes: RouteTable<L>
  private readonly bcast: number
  private readonly isLocal: ((ip: number) => boolean) | null
  private readonly anyProtocol: boolean
  private nextId: number
  private route: Route<L> | undefined
  private routeVersion = -1

  /** Creates the stage; see {@link IpStageOptions}. */
  constructor(opts: IpStageOptions<L>) {
    super('IP', opts.up ?? Dir.Forward)
    this.link = opts.link
    this.local = (opts.local ?? opts.link.address) >>> 0
    this.remote = (opts.remote ?? 0) >>> 0
    this.protocol = opts.protocol
    this.ttl = opts.ttl ?? DEFAULT_TTL
    this.df = opts.df ?? false
    this.routes = opts.routes
    this.bcast = directedBroadcast(opts.link)
    this.isLocal = opts.isLocal ?? null
    this.anyProtocol = opts.anyProtocol ?? false
    this.nextId = (opts.firstId ?? Math.floor(Math.random() * 65536)) & 0xffff
  }

  /** Validates and strips going up; adds the header going down. */
  deliver(msg: Msg, dir: Dir): void {
    if (dir === this.up) this.receive(msg, dir)
    else this.transmit(msg, dir)
  }

  private receive(msg: Msg, dir: Dir): void {
    const b = msg.buf
    const o = msg.off
    const h = checkIpv4(b, o, msg.end)
    if (typeof h === 'string') return this.drop(msg, h)
    // RFC 894: Ethernet pads short frames; the IP total length is authoritative.
    msg.end = o + get16(b, o + IP.LEN)
    // Reassembly happens before classification (fragments carry no ports), never here.
    if ((get16(b, o + IP.FRAG) & (IpFlags.MF | IpFlags.OFFSET_MASK)) !== 0) return this.drop(msg, 'fragment')
    if (b[o + IP.PROTO] !== this.protocol && !this.anyProtocol) return this.drop(msg, 'wrong-protocol')
    const dst = get32(b, o + IP.DST)
    // RFC 1122 §3.2.1.3: accept our address and the broadcast addresses of the link.
    if (dst !== this.local && dst !== 0xffffffff && dst !== this.bcast && (this.remote !== 0 || this.isLocal === null || !this.isLocal(dst))) {
      return this.drop(msg, 'not-for-us')
    }
    if (this.remote !== 0 && get32(b, o + IP.SRC) !== this.remote) return this.drop(msg, 'wrong-source')
    msg.l3 = o
    msg.off = o + h
    msg.l4 = msg.off
    this.send(msg, dir)
  }

  private transmit(msg: Msg, dir: Dir): void {
    const dst = this.remote !== 0 ? this.remote : msg.nextHop >>> 0
    let route = this.route
    if (this.routeVersion !== this.routes.version || this.remote === 0) {
      route = this.routes.lookup(dst)
      if (this.remote !== 0) {
        this.route = route
        this.routeVersion = this.routes.version
      }
    }
    if (route === undefined) return this.drop(msg, 'no-route')
    if (route.iface !== this.link) return this.drop(msg, 'wrong-interface')
    if (msg.off < IP.HLEN) return this.drop(msg, 'no-headroom')
    const len = msg.end - msg.off + IP.HLEN
    if (len > 65535) return this.drop(msg, 'too-big')
    let src = this.local
    if (this.remote === 0 && msg.l3 >= 0 && this.isLocal !== null && msg.l3 + IP.HLEN <= msg.buf.length) {
      const answered = get32(msg.buf, msg.l3 + IP.DST)
      if (this.isLocal(answered)) src = answered
    }
    const o = (msg.off -= IP.HLEN)
    const id = this.nextId
    this.nextId = (id + 1) & 0xffff
    writeIpv4Header(msg.buf, o, len, id, this.df ? IpFlags.DF : 0, this.ttl, this.protocol, src, dst)
    msg.l3 = o
    msg.nextHop = dst === 0xffffffff || dst === this.bcast ? 0xffffffff : route.gateway !== 0 ? route.gateway : dst
    if (len <= this.link.mtu) return this.send(msg, dir)
    // A GSO super-frame is cut into MTU-sized segments by the device (virtio-net GSO).
    if (msg.vnet !== null && msg.vnet.gsoType !== 0) return this.send(msg, dir)
    // RFC 1191: with DF the transport must send smaller segments; we cannot fragment.
    if (this.df) return this.drop(msg, 'needs-frag')
    const r = fragmentDatagram(msg, this.link.mtu, f => {
      this.fragmentsOut++
      this.send(f, dir)
    })
    if (typeof r === 'string') return this.drop(msg, r === 'df-set' ? 'needs-frag' : 'too-big')
    msg.free()
  }

  /** `IP(10.0.0.1 > 10.0.0.2 proto 6)` for path dumps. */
  override describe(): string {
    const f = (a: number): string => `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`
    return `${this.name}(${f(this.local)} > ${this.remote === 0 ? '*' : f(this.remote)} proto ${this.protocol})`
  }

  /** Counters beyond the drops. */
  override extraStats(): Record<string, number> {
    return { fragmentsOut: this.fragmentsOut }
  }
}
