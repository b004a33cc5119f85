/**
 * ROUTER: forwards IPv4 datagrams between the two interfaces of an IP router path
 * (RFC 1812 §5.2-5.3): the leanest stage in pathsplice, the baseline of every benchmark.
 * Consumes: a datagram with `off` at its IPv4 header (ETH popped), in either direction:
 *           Forward = arrived on `sides[0]`, Backward = arrived on `sides[1]`.
 * Produces: the same buffer, TTL decremented with the checksum updated incrementally
 *           (RFC 1624), `msg.nextHop` = the route's gateway or the destination, sent
 *           on towards the route's interface (back the way it came if the route says so).
 *           Datagrams over the egress MTU are fragmented (RFC 791; GSO super-frames
 *           pass whole, the egress device segments them), or, with DF,
 *           answered with ICMP 3/4 carrying the MTU (RFC 1191). Expired TTL gets ICMP
 *           11/0, no route ICMP 3/0, both rate-limited (RFC 1812 §4.3.2.8). No
 *           allocation for a datagram that is forwarded whole.
 * Drops:    IPv4 header errors ('short' | 'bad-version' | 'bad-ihl' | 'bad-length' |
 *           'bad-checksum' | 'bad-options' | 'bad-src' | 'reserved-flag') and
 *           'link-broadcast' | 'martian-src' | 'martian-dst' | 'not-forwardable' | 'directed-broadcast' |
 *           'ttl-exceeded' | 'no-route' | 'wrong-interface' | 'needs-frag' | 'mtu-too-small'
 * State:    the routing table, the two interfaces, a one-entry route cache, an ICMP token bucket.
 * Inspect:  stats() (extra: forwarded, fragmentsOut, icmpSent, icmpRateLimited)
 * @module
 */
import { get16, get32, set16 } from '../../core/bytes.js'
import { csumUpdate16 } from '../../core/checksum.js'
import type { Clock } from '../../core/clock.js'
import type { Msg } from '../../core/msg.js'
import { Dir, Stage } from '../../core/stage.js'
import { IP, IpFlags, checkIpv4 } from '../ip/header.js'
import { fragmentDatagram } from '../ip/fragment.js'
import { IcmpType, TimeExceededCode, UnreachCode, buildIcmpError } from '../ip/icmp.js'
import type { Route, RouteTable } from '../ip/routes.js'
import { directedBroadcast, type IpLink } from '../ip/stage.js'

/** Drop reasons of {@link RouterStage}. */
export const ROUTER_DROPS = [
  'short', 'bad-version', 'bad-ihl', 'bad-length', 'bad-checksum', 'bad-options', 'bad-src', 'reserved-flag',
  'link-broadcast', 'martian-src', 'martian-dst', 'not-forwardable', 'directed-broadcast', 'ttl-exceeded', 'no-route',
  'wrong-interface', 'needs-frag', 'mtu-too-small',
] as const
/** One of {@link ROUTER_DROPS}. */
export type RouterDrop = (typeof ROUTER_DROPS)[number]

/** An ICMP error rate limit (RFC 1812 §4.3.2.8): a token bucket. */
export interface IcmpRateLimit {
  /** Tokens added per second (default 100). */
  perSecond?: number
  /** Bucket size (default 50). */
  burst?: number
}

/** Options of a {@link RouterStage}. */
export interface RouterStageOptions<L extends IpLink> {
  /** The routing table. */
  routes: RouteTable<L>
  /** The interface at end 0 and the one at end 1. */
  sides: readonly [L, L]
  /** Clock for the ICMP rate limit. */
  clock: Clock
  /** ICMP errors per second (default 100) and burst (default 50); RFC 1812 §4.3.2.8. */
  icmpRate?: IcmpRateLimit
}

/** The IPv4 forwarding stage of an IP router path. */
export class RouterStage<L extends IpLink = IpLink> extends Stage {
  /** Datagrams forwarded. */
  forwarded = 0
  /** Fragments sent. */
  fragmentsOut = 0
  /** ICMP errors sent. */
  icmpSent = 0
  /** ICMP errors suppressed by the rate limit. */
  icmpRateLimited = 0
  private readonly routes: RouteTable<L>
  private readonly sides: readonly [L, L]
  private readonly bcast: readonly [number, number]
  private readonly clock: Clock
  private readonly ratePerMs: number
  private readonly burst: number
  private tokens: number
  private tokensAt = 0
  private cacheDst = -1
  private cacheRoute: Route<L> | undefined
  private cacheVersion = -1

  /** Creates the stage; see {@link RouterStageOptions}. */
  constructor(opts: RouterStageOptions<L>) {
    super('ROUTER', Dir.Forward)
    this.routes = opts.routes
    this.sides = opts.sides
    this.bcast = [directedBroadcast(opts.sides[0]), directedBroadcast(opts.sides[1])]
    this.clock = opts.clock
    this.ratePerMs = (opts.icmpRate?.perSecond ?? 100) / 1000
    this.burst = opts.icmpRate?.burst ?? 50
    this.tokens = this.burst
  }

  /** Forwards one datagram (see the contract above). */
  deliver(msg: Msg, dir: Dir): void {
    const b = msg.buf
    const o = msg.off
    const avail = msg.end - o
    if (avail < IP.HLEN) return this.drop(msg, 'short')
    if (b[o] === 0x45) {
      // The common case, inline: no options (RFC 1812 §5.2.2 checks, cheapest first).
      const total = (b[o + 2]! << 8) | b[o + 3]!
      if (total < IP.HLEN || total > avail) return this.drop(msg, 'bad-length')
      let s =
        0x4500 + b[o + 1]! + total + ((b[o + 4]! << 8) | b[o + 5]!) + ((b[o + 6]! << 8) | b[o + 7]!) +
        ((b[o + 8]! << 8) | b[o + 9]!) + ((b[o + 10]! << 8) | b[o + 11]!) + ((b[o + 12]! << 8) | b[o + 13]!) +
        ((b[o + 14]! << 8) | b[o + 15]!) + ((b[o + 16]! << 8) | b[o + 17]!) + ((b[o + 18]! << 8) | b[o + 19]!)
      s = (s & 0xffff) + (s >>> 16)
      s = (s & 0xffff) + (s >>> 16)
      if (s !== 0xffff) return this.drop(msg, 'bad-checksum')
      if ((b[o + 6]! & 0x80) !== 0) return this.drop(msg, 'reserved-flag')
      if (b[o + 12]! >= 224) return this.drop(msg, 'bad-src')
      msg.end = o + total
    } else {
      // Deviation from RFC 1812 §5.2.4/§5.3.13: options are validated for framing and
      // forwarded unchanged; Record Route, Timestamp and source routes are not processed.
      const h = checkIpv4(b, o, msg.end)
      if (typeof h === 'string') return this.drop(msg, h)
      msg.end = o + get16(b, o + IP.LEN)
    }
    // RFC 1812 §5.3.4: a datagram that arrived as a link-layer broadcast or multicast is
    // not forwarded (the Ethernet header popped by ETH is still in front of `off`).
    if (o >= 14 && (b[o - 14]! & 1) !== 0) return this.drop(msg, 'link-broadcast')
    // RFC 1812 §5.3.7: never forward from 0/8 or 127/8 sources, nor to 0/8, 127/8.
    const s0 = b[o + 12]!
    if (s0 === 0 || s0 === 127) return this.drop(msg, 'martian-src')
    const d0 = b[o + 16]!
    if (d0 === 0 || d0 === 127) return this.drop(msg, 'martian-dst')
    // RFC 1812 §5.3.5.1 / §5.3.4: limited broadcast and multicast are not forwarded here.
    if (d0 >= 224) return this.drop(msg, 'not-forwardable')
    const ttl = b[o + IP.TTL]!
    // RFC 1812 §5.3.1: a datagram whose TTL would reach zero is discarded with ICMP 11/0.
    if (ttl <= 1) {
      this.icmpError(msg, dir, IcmpType.TIME_EXCEEDED, TimeExceededCode.TTL, 0)
      return this.drop(msg, 'ttl-exceeded')
    }
    const dst = get32(b, o + IP.DST)
    let route = this.cacheRoute
    if (dst !== this.cacheDst || this.cacheVersion !== this.routes.version) {
      route = this.routes.lookup(dst)
      this.cacheDst = dst
      this.cacheRoute = route
      this.cacheVersion = this.routes.version
    }
    if (route === undefined) {
      // RFC 1812 §5.2.7.1: no route -> destination unreachable, network.
      this.icmpError(msg, dir, IcmpType.DEST_UNREACHABLE, UnreachCode.NET, 0)
      return this.drop(msg, 'no-route')
    }
    const iface = route.iface
    let out: Dir
    let side: number
    if (iface === this.sides[dir ^ 1]) {
      out = dir
      side = dir ^ 1
    } else if (iface === this.sides[dir]) {
      // Back out of the interface it came in on. Deviation: RFC 1812 §5.2.7.2 says a
      // router SHOULD also send a Redirect; we do not (redirects are rarely wanted now).
      out = (dir ^ 1) as Dir
      side = dir
    } else return this.drop(msg, 'wrong-interface')
    // RFC 2644: directed broadcasts are not forwarded by default.
    if (dst === this.bcast[side]) return this.drop(msg, 'directed-broadcast')
    // RFC 1812 §5.3.1 + RFC 1624 eqn. 3: TTL - 1, checksum updated from the old word.
    const word = (ttl << 8) | b[o + IP.PROTO]!
    b[o + IP.TTL] = ttl - 1
    set16(b, o + IP.CSUM, csumUpdate16((b[o + IP.CSUM]! << 8) | b[o + IP.CSUM + 1]!, word, word - 0x100))
    msg.l3 = o
    msg.nextHop = route.gateway !== 0 ? route.gateway : dst
    const len = msg.end - o
    // A GSO super-frame (TSO device to TSO device) is segmented by the egress device.
    if (len <= iface.mtu || (msg.vnet !== null && msg.vnet.gsoType !== 0)) {
      this.forwarded++
      return this.send(msg, out)
    }
    if ((get16(b, o + IP.FRAG) & IpFlags.DF) !== 0) {
      // RFC 1191 §4: fragmentation needed and DF set, with the next-hop MTU.
      this.icmpError(msg, dir, IcmpType.DEST_UNREACHABLE, UnreachCode.FRAG_NEEDED, iface.mtu & 0xffff)
      return this.drop(msg, 'needs-frag')
    }
    const r = fragmentDatagram(msg, iface.mtu, f => {
      this.fragmentsOut++
      this.send(f, out)
    })
    if (typeof r === 'string') return this.drop(msg, 'mtu-too-small')
    this.forwarded++
    msg.free()
  }

  /** Sends an ICMP error about `msg` back towards its source (out of the side it came in on). */
  private icmpError(msg: Msg, dir: Dir, type: number, code: number, rest: number): void {
    // RFC 1812 §4.3.2.8: rate-limit ICMP errors (token bucket).
    const now = this.clock.now()
    this.tokens = Math.min(this.burst, this.tokens + (now - this.tokensAt) * this.ratePerMs)
    this.tokensAt = now
    if (this.tokens < 1) {
      this.icmpRateLimited++
      return
    }
    const ingress = this.sides[dir]
    const err = buildIcmpError(msg.buf, msg.off, msg.end, type, code, rest, ingress.address)
    if (err === null) return
    const to = get32(err.buf, err.off + IP.DST)
    const r = this.routes.lookup(to)
    if (r === undefined || r.iface !== ingress) {
      err.free()
      return
    }
    this.tokens -= 1
    this.icmpSent++
    err.nextHop = r.gateway !== 0 ? r.gateway : to
    this.originate(err, (dir ^ 1) as Dir)
  }

  /** Counters beyond the drops. */
  override extraStats(): Record<string, number> {
    return { forwarded: this.forwarded, fragmentsOut: this.fragmentsOut, icmpSent: this.icmpSent, icmpRateLimited: this.icmpRateLimited }
  }
}
