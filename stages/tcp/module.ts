/**
 * The TCP module of a {@link Host}: the listen table, the 4-tuple flow demux hung under
 * the IP protocol demux, the SYN and accept backlogs, ISNs per RFC 6528, and one path
 * per connection (`[ETH, IP, TCP]`).
 *
 * ```
 *   IP proto 6 ─▶ TCP flow (FlowTable: remote ip, local ip, remote port << 16 | local port)
 *                   ├─ hit  ─▶ connection path end 0: [ETH, IP(remote), TCP]
 *                   └─ miss ─▶ per-interface default path: [ETH, IP(*), TCP-LISTEN]
 *                                SYN to a listening port: new connection path, SYN handed over
 *                                anything else: RST (RFC 9293 §3.10.7.1), counted
 *
 *   IPv4 dst not ours ─▶ TCP intercept (only with interceptors, see {@link TcpModule.intercept})
 *                   ├─ no rule matches (dst prefix, dst port, src prefix) ─▶ forwarded as before
 *                   ├─ flow hit ─▶ the intercepted connection's path (or its splice)
 *                   ├─ SYN      ─▶ per-interface intercept path: [ETH, IP(*), TCP-LISTEN(intercept)]
 *                   │              the new connection answers as the original destination
 *                   └─ other    ─▶ forwarded (a flow that predates the rule)
 * ```
 * @module
 */
import { createHash, randomBytes } from 'node:crypto'
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import type { ClassifierNode } from '../../core/classifier.js'
import { ConfigError } from '../../core/errors.js'
import { allocMsg, type Msg } from '../../core/msg.js'
import { Path, type PathEnd } from '../../core/path.js'
import { Dir, Stage } from '../../core/stage.js'
import { FlowTable } from '../../core/flow-table.js'
import type { Host, Interface } from '../../paths/host.js'
import { parseCidr } from '../ip/routes.js'
import { EthStage } from '../eth/stage.js'
import { IpStage } from '../ip/stage.js'
import { checkSegment, fillTcpChecksum, TcpField, TcpFlag } from './segment.js'
import { TcpStage } from './stage.js'
import type { TcbConfig } from './tcb.js'

/** IP protocol number of TCP. */
export const IPPROTO_TCP = 6

/** Drop reasons of the listen stage. */
export const LISTEN_DROP_REASONS = ['short-header', 'bad-data-offset', 'bad-checksum', 'no-listener', 'syn-backlog-full', 'not-syn', 'no-route', 'refused-peer'] as const

/** Options of a {@link TcpModule}. */
export interface TcpModuleOptions {
  /** TCB tunables for every connection (a listener or connect call may override). */
  config?: TcbConfig
  /** Most embryonic (SYN-RECEIVED) connections per listener [128]. */
  synBacklog?: number
  /** Most established connections waiting for `accept` per listener [128]. */
  acceptBacklog?: number
  /** Secret key of the ISN function (RFC 6528 §3; default: 16 random bytes). */
  isnSecret?: Uint8Array
  /** Ephemeral port range for `connect` [32768, 60999] (Linux's default). */
  ephemeralPorts?: [number, number]
  /** Set DF on our datagrams (RFC 1191 path MTU discovery) [true]. */
  df?: boolean
  /** Trust checksums of received segments (devices that verify them) [false]. */
  trustChecksums?: boolean
}

/** One connection known to the module. */
export interface TcpConnection {
  /** The connection path `[ETH, IP, TCP]` (or the shared path it was appended to). */
  readonly path: Path
  /**
   * Where the flow demux sends this connection's segments: end 0 of its own path, end 1
   * of a path it was appended to, or, once spliced, the FWD path's end (the splice
   * engine retargets it).
   */
  end: PathEnd
  /** Its TCP stage (and TCB). */
  readonly stage: TcpStage
  /** Our address. */
  readonly localIp: number
  /** The peer's address. */
  readonly remoteIp: number
  /** The listener it came from (passive), or null (active). */
  readonly listener: TcpListener | null
}

/**
 * A flow index outside the connection table, consulted when the table misses (before the
 * listen path): the shared IP/FWD path keeps its spliced connections' 4-tuples in its own
 * table, so "after a splice the TCP 4-tuple still selects the spliced path" (DESIGN §3)
 * without a per-connection flow entry.
 */
export interface TcpFlowClaim {
  /**
   * The path end for an incoming segment of (`src`, `dst`, `ports` = source port << 16 |
   * destination port) that arrived on interface `ingress`, or null if not this index's.
   */
  claim(src: number, dst: number, ports: number, ingress: number): PathEnd | null
}

/** Options of {@link TcpModule.connect}. */
export interface TcpConnectOptions {
  /** Local port (default: a free ephemeral port). */
  localPort?: number
  /** TCB tunables for this connection. */
  config?: TcbConfig
  /** Append the connection's stages to this path at end 1 instead of building its own path (1-path proxies). */
  path?: Path
}

/**
 * Options of {@link TcpModule.listen} for a listener that accepts one particular peer
 * (a SOCKS BIND, RFC 1928 §4: the proxy waits for the server named in the request).
 */
export interface TcpListenOptions {
  /** Only SYNs this returns true for open a connection; others get a RST ('refused-peer', counted). */
  filter?: (remoteIp: number, remotePort: number, localIp: number) => boolean
  /**
   * Called with the embryonic connection right after its SYN was processed (SYN-RECEIVED,
   * SYN-ACK sent), instead of `onConnection` at ESTABLISHED: the caller owns it from here
   * (as after {@link TcpModule.release}), and the listener closes (one connection only).
   */
  onSyn?: (conn: TcpConnection) => void
  /** With `onSyn`: append the connection's stages to this path at end 1 (the server side of a 1-path proxy). */
  path?: Path
}

/** Counters of a {@link TcpListener}. */
export interface TcpListenerStats {
  /** Connections that reached ESTABLISHED and were handed over. */
  accepted: number
  /** SYNs refused because the SYN backlog was full. */
  synBacklogDrops: number
  /** SYNs refused by the listener's `filter` (answered with a RST). */
  refusedPeers: number
}

/** What {@link TcpModule.isn} returns. */
export interface IsnResult {
  /** The initial send sequence number. */
  iss: number
  /** A per-connection offset for the TSval clock (RFC 7323 §7.1 suggests randomizing it). */
  tsOffset: number
}

/** A listening port: new connections are handed to `onConnection` once ESTABLISHED. */
export class TcpListener {
  /** The port. */
  readonly port: number
  /** Connections accepted by the kernel side but not yet handed over (bounded by acceptBacklog). */
  embryonic = 0
  /** Called with each established connection. */
  onConnection: (conn: TcpConnection) => void
  /** Config override for this listener's connections. */
  readonly config: TcbConfig
  /** Peer filter, one-shot hand-over, target path (see {@link TcpListenOptions}). */
  readonly options: TcpListenOptions
  /** Counters. */
  readonly stats: TcpListenerStats = { accepted: 0, synBacklogDrops: 0, refusedPeers: 0 }

  /** @internal Use {@link TcpModule.listen}. */
  constructor(port: number, config: TcbConfig, onConnection: (conn: TcpConnection) => void, options: TcpListenOptions = {}) {
    this.port = port
    this.config = config
    this.onConnection = onConnection
    this.options = options
  }
}

/** One interception rule of {@link TcpModule.intercept}: which transit SYNs are taken locally. */
export interface TcpInterceptRule {
  /** Destination network, `10.0.1.0/24`, or one address `10.0.1.7`. */
  dst: string
  /** Destination port(s) (default: any). */
  ports?: number | readonly number[]
  /** Source network (default: any). */
  src?: string
}

interface CompiledIntercept {
  dstBase: number
  dstMask: number
  srcBase: number
  srcMask: number
  /** null: any port. */
  ports: Set<number> | null
}

/**
 * A set of interception rules with its own backlog and callback: a {@link TcpListener}
 * for transit connections (its `port` is 0; the rules say which ports). Connections it
 * accepts have `localIp` = the destination the client asked for.
 */
export class TcpInterceptor extends TcpListener {
  /** The rules as given. */
  readonly rules: readonly TcpInterceptRule[]
  private readonly compiled: CompiledIntercept[]

  /** @internal Use {@link TcpModule.intercept}. */
  constructor(rules: readonly TcpInterceptRule[], config: TcbConfig, onConnection: (conn: TcpConnection) => void) {
    super(0, config, onConnection)
    this.rules = rules
    this.compiled = compileInterceptRules(rules)
  }

  /** True if a segment from `src` to `dst`:`port` is to be intercepted. */
  matches(src: number, dst: number, port: number): boolean {
    const c = this.compiled
    for (let i = 0; i < c.length; i++) {
      const r = c[i]!
      if (((dst & r.dstMask) >>> 0) !== r.dstBase || ((src & r.srcMask) >>> 0) !== r.srcBase) continue
      if (r.ports === null || r.ports.has(port)) return true
    }
    return false
  }

  /** `10.0.1.0/24 ports 80,8080 from 10.0.0.0/24; ...` for dumps. */
  describe(): string {
    return this.rules.map(r => {
      const p = r.ports === undefined ? '' : ` ports ${typeof r.ports === 'number' ? r.ports : r.ports.join(',')}`
      return `${r.dst}${p}${r.src === undefined ? '' : ` from ${r.src}`}`
    }).join('; ')
  }
}

/** Checks and compiles rules; throws a {@link ConfigError} naming the bad rule and the fix. */
function compileInterceptRules(rules: readonly TcpInterceptRule[]): CompiledIntercept[] {
  if (!Array.isArray(rules) || rules.length === 0) throw new ConfigError('TCP intercept: give at least one rule, e.g. [{ dst: \'10.0.1.0/24\', ports: [80] }]')
  return rules.map((r, i) => {
    const where = `TCP intercept: rules[${i}]`
    if (typeof r.dst !== 'string') throw new ConfigError(`${where}: dst is required: a network like '10.0.1.0/24' or an address`)
    const [dst, dlen] = parseCidr(r.dst, `${where}.dst`)
    const [src, slen] = r.src === undefined ? [0, 0] : parseCidr(r.src, `${where}.src`)
    const list = r.ports === undefined ? null : typeof r.ports === 'number' ? [r.ports] : r.ports
    if (list !== null) {
      if (!Array.isArray(list) || list.length === 0) throw new ConfigError(`${where}.ports: give a port or a non-empty list of ports, or leave it out for any port`)
      for (const p of list) if (!(Number.isInteger(p) && p > 0 && p < 65536)) throw new ConfigError(`${where}.ports: ${String(p)} is not a port 1..65535`)
    }
    const mask = (n: number): number => (n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0)
    return { dstBase: (dst & mask(dlen)) >>> 0, dstMask: mask(dlen), srcBase: (src & mask(slen)) >>> 0, srcMask: mask(slen), ports: list === null ? null : new Set(list) }
  })
}

/**
 * The "not ours" level of the classifier when the module intercepts: `off` is at the
 * IPv4 header of a datagram routed through the host. Costs a rule check for transit
 * traffic; a flow lookup only for what a rule matches.
 */
export class TcpInterceptDemux implements ClassifierNode {
  /** Name in dumps. */
  readonly name = 'TCP intercept'
  private readonly module: TcpModule

  /** @internal */
  constructor(module: TcpModule) {
    this.module = module
  }

  /** An intercepted connection's path end, the intercept listen path (a matching SYN), or null (forward it). */
  classify(msg: Msg, off: number): PathEnd | null {
    const b = msg.buf
    // Fragments carry no ports (or not ours to judge): they are routed like any transit datagram.
    if (msg.end - off < 20 || b[off + 9] !== IPPROTO_TCP || (get16(b, off + 6) & 0x3fff) !== 0) return null
    const t = off + ((b[off]! & 0x0f) << 2)
    if (msg.end - t < TcpField.HEADER_LEN) return null
    const src = get32(b, off + 12)
    const dst = get32(b, off + 16)
    const m = this.module
    if (m.interceptorFor(src, dst, get16(b, t + 2)) === undefined) return null
    const end = m.connectionEnd(src | 0, dst | 0, get32(b, t) | 0, msg.ingress)
    if (end !== null) return end
    if ((b[t + TcpField.FLAGS]! & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.RST)) !== TcpFlag.SYN) return null
    return m.interceptEnd(msg.ingress)
  }

  /** Dumps the rules. */
  describe(indent: string, out: string[]): void {
    out.push(`${indent}${this.name}`)
    for (const i of this.module.interceptors) out.push(`${indent}  ${i.describe()} -> intercept paths`)
  }
}

/**
 * Finds the IPv4 header in front of a transport header at `off`: IHL 5 first, then with
 * options (the classifier hands us only the transport offset).
 */
function ipHeaderBefore(b: Uint8Array, off: number): number {
  for (let ihl = 5; ihl <= 15; ihl++) {
    const p = off - ihl * 4
    if (p < 0) return -1
    if (b[p] === (0x40 | ihl) && b[p + 9] === IPPROTO_TCP) return p
  }
  return -1
}

/** The 4-tuple level of the classifier tree (a {@link ClassifierNode} under IP protocol 6). */
export class TcpFlowDemux implements ClassifierNode {
  /** Name in dumps. */
  readonly name = 'TCP flow'
  private readonly module: TcpModule

  /** @internal */
  constructor(module: TcpModule) {
    this.module = module
  }

  /** Classifies the segment at `off`: its connection's path, else the interface's listen path. */
  classify(msg: Msg, off: number): PathEnd | null {
    const b = msg.buf
    if (msg.end - off < TcpField.HEADER_LEN) return null
    const ip = ipHeaderBefore(b, off)
    if (ip < 0) return null
    const m = this.module
    return m.connectionEnd(get32(b, ip + 12) | 0, get32(b, ip + 16) | 0, get32(b, off) | 0, msg.ingress) ?? m.defaultEnd(msg.ingress)
  }

  /** Dumps the flows. */
  describe(indent: string, out: string[]): void {
    out.push(`${indent}${this.name} (${this.module.flows.size} connections)`)
    this.module.flows.forEach(c => out.push(`${indent}  ${c.stage.describe()} -> ${c.end.name}`))
    if (this.module.claims.length > 0) out.push(`${indent}  then ${this.module.claims.length} flow claim(s) (shared IP/FWD paths' own 4-tuple indexes)`)
    out.push(`${indent}  default -> listen paths (ports ${[...this.module.listeners.keys()].join(', ') || 'none'})`)
  }
}

/**
 * TCP-LISTEN: the default path's stage. Consumes segments of no known connection
 * (`off` at the TCP header, `l3` at IPv4); a SYN to a listening port creates a connection
 * path and hands the SYN to its TCB; anything else is answered with a RST.
 */
export class TcpListenStage extends Stage {
  private readonly module: TcpModule
  private readonly iface: Interface
  private readonly intercepting: boolean

  /** @internal With `intercepting`, SYNs are for interceptors (transit destinations), not listeners. */
  constructor(module: TcpModule, iface: Interface, intercepting = false) {
    super(intercepting ? 'TCP-INTERCEPT' : 'TCP-LISTEN', Dir.Forward)
    this.module = module
    this.iface = iface
    this.intercepting = intercepting
  }

  /** Handles one segment for no connection. */
  deliver(msg: Msg, dir: Dir): void {
    if (dir !== this.up) return this.drop(msg, 'not-syn')
    const b = msg.buf
    const src = get32(b, msg.l3 + 12)
    const dst = get32(b, msg.l3 + 16)
    const bad = checkSegment(msg, src, dst, !this.module.trustChecksums)
    if (bad !== null) return this.drop(msg, bad)
    const o = msg.off
    // Classified before its connection existed (e.g. a duplicated SYN in the same receive
    // batch as the first copy): hand it to the connection now that it does.
    const known = this.module.flows.get(src, dst, get32(b, o))
    if (known !== undefined) {
      known.stage.receive(msg)
      return
    }
    const flags = b[o + TcpField.FLAGS]!
    const dport = get16(b, o + 2)
    const listener = this.intercepting ? this.module.interceptorFor(src, dst, dport) : this.module.listeners.get(dport)
    if ((flags & (TcpFlag.SYN | TcpFlag.ACK | TcpFlag.RST)) === TcpFlag.SYN && listener !== undefined) {
      const sport = get16(b, o)
      const lo = listener.options
      if (lo.filter !== undefined && !lo.filter(src, sport, dst)) {
        // Not the peer this listener waits for (a BIND's expected server): refused.
        listener.stats.refusedPeers++
        this.sendReset(msg, src, dst, flags)
        return this.drop(msg, 'refused-peer')
      }
      const max = this.module.synBacklog
      if (listener.embryonic >= max) {
        listener.stats.synBacklogDrops++
        return this.drop(msg, 'syn-backlog-full')
      }
      let conn: TcpConnection
      try {
        if (lo.path !== undefined) {
          // Appended to an existing path: its stages face the device at end 1.
          const ns = this.module.host.netStages(src, IPPROTO_TCP, { df: this.module.df, up: Dir.Backward })
          conn = this.module.createConnection(ns.iface, dst, src, dport, sport, listener, undefined, ns.stages, lo.path)
        } else {
          conn = this.module.createConnection(this.iface, dst, src, dport, sport, listener)
        }
      } catch {
        // No route back to the client (host.netStages throws): a per-packet problem, a drop.
        return this.drop(msg, 'no-route')
      }
      conn.stage.tcb.listen()
      if (lo.onSyn !== undefined) {
        // One connection only: nobody else may take this port's next SYN.
        this.module.unlisten(dport)
        conn.stage.receive(msg)
        this.module.release(conn)
        listener.stats.accepted++
        lo.onSyn(conn)
        return
      }
      conn.stage.receive(msg)
      return
    }
    // RFC 9293 §3.10.7.1: no connection: RST unless it is one.
    if ((flags & TcpFlag.RST) === 0) this.sendReset(msg, src, dst, flags)
    this.drop(msg, listener === undefined ? 'no-listener' : 'not-syn')
  }

  private sendReset(msg: Msg, src: number, dst: number, flags: number): void {
    const b = msg.buf
    const o = msg.off
    const hl = (b[o + 12]! >>> 4) << 2
    const len = msg.end - o - hl + (flags & TcpFlag.SYN ? 1 : 0) + (flags & TcpFlag.FIN ? 1 : 0)
    const m = allocMsg(TcpField.HEADER_LEN)
    const r = m.buf
    const p = m.off
    r.fill(0, p, p + TcpField.HEADER_LEN)
    set16(r, p, get16(b, o + 2))
    set16(r, p + 2, get16(b, o))
    if (flags & TcpFlag.ACK) {
      set32(r, p + 4, get32(b, o + 8))
      r[p + 13] = TcpFlag.RST
    } else {
      set32(r, p + 8, (get32(b, o + 4) + len) >>> 0)
      r[p + 13] = TcpFlag.RST | TcpFlag.ACK
    }
    r[p + 12] = 5 << 4
    m.end = p + TcpField.HEADER_LEN
    fillTcpChecksum(r, p, TcpField.HEADER_LEN, dst, src)
    m.nextHop = src
    this.originate(m, this.down)
  }
}

/** The TCP module of one host. */
export class TcpModule {
  /** Name. */
  readonly name = 'TCP'
  /** The host below. */
  readonly host: Host
  /** Connections by (remote ip, local ip, remote port << 16 | local port). */
  readonly flows = new FlowTable<TcpConnection>(1024)
  /** Listeners by port. */
  readonly listeners = new Map<number, TcpListener>()
  /** Flow indexes consulted after {@link TcpModule.flows} misses (see {@link TcpFlowClaim}); change with addClaim/removeClaim. */
  readonly claims: TcpFlowClaim[] = []
  /** The classifier node hung under IP protocol 6. */
  readonly demux: TcpFlowDemux
  /** Embryonic connection bound per listener. */
  readonly synBacklog: number
  /** Accept queue bound per listener. */
  readonly acceptBacklog: number
  /** Trust received checksums. */
  readonly trustChecksums: boolean
  private readonly config: TcbConfig
  private readonly secret: Uint8Array
  private readonly ephemeral: [number, number]
  /** @internal Set DF on our datagrams. */
  readonly df: boolean
  private readonly defaults = new Map<number, Path>()
  private readonly interceptPaths = new Map<number, Path>()
  /** Interceptors, first match wins (see {@link TcpModule.intercept}). */
  readonly interceptors: TcpInterceptor[] = []
  /** The classifier node hung in the hosts' "not ours" branch while there are interceptors. */
  readonly interceptDemux: TcpInterceptDemux
  private readonly unsubscribeIcmp: () => void

  /** Creates the module and registers its demux for protocol 6 on `host`. */
  constructor(host: Host, opts: TcpModuleOptions = {}) {
    this.host = host
    this.config = opts.config ?? {}
    this.synBacklog = opts.synBacklog ?? 128
    this.acceptBacklog = opts.acceptBacklog ?? 128
    this.secret = opts.isnSecret ?? randomBytes(16)
    this.ephemeral = opts.ephemeralPorts ?? [32768, 60999]
    this.df = opts.df ?? true
    this.trustChecksums = opts.trustChecksums ?? false
    this.demux = new TcpFlowDemux(this)
    this.interceptDemux = new TcpInterceptDemux(this)
    host.registerProtocol(IPPROTO_TCP, this.demux)
    // RFC 1191 §6.3: ICMP "fragmentation needed" lowers the connection's segment size.
    this.unsubscribeIcmp = host.onIcmpError(r => {
      if (r.protocol !== IPPROTO_TCP || r.type !== 3 || r.code !== 4 || r.srcPort < 0) return
      const conn = this.flows.get(r.dst, r.src, ((r.dstPort << 16) | r.srcPort) >>> 0)
      if (conn !== undefined) conn.stage.tcb.setPathMtu(r.mtu)
    })
  }

  /** Starts listening on `port`; `onConnection` gets each established connection. Throws {@link ConfigError} if taken. */
  listen(port: number, onConnection: (conn: TcpConnection) => void, config: TcbConfig = {}, options: TcpListenOptions = {}): TcpListener {
    if (!(Number.isInteger(port) && port > 0 && port < 65536)) throw new ConfigError(`TCP listen: port ${port} is not 1..65535`)
    if (this.listeners.has(port)) throw new ConfigError(`TCP listen: port ${port} already has a listener; close it first`)
    if (options.path !== undefined && options.onSyn === undefined) throw new ConfigError(`TCP listen: port ${port}: options.path needs options.onSyn (one connection per path)`)
    const l = new TcpListener(port, { ...this.config, ...config }, onConnection, options)
    this.listeners.set(port, l)
    return l
  }

  /**
   * Intercepts TCP connections routed through the host (a transparent proxy): SYNs whose
   * destination is not ours but matches a rule are accepted locally, and the connection
   * answers as that destination (`conn.localIp`/`localPort` are what the client asked
   * for; `conn.listener` is the returned interceptor). Transit traffic no rule matches is
   * forwarded as before. Throws {@link ConfigError} for bad rules.
   */
  intercept(rules: readonly TcpInterceptRule[], onConnection: (conn: TcpConnection) => void, config: TcbConfig = {}): TcpInterceptor {
    const i = new TcpInterceptor(rules, { ...this.config, ...config }, onConnection)
    this.interceptors.push(i)
    this.host.setIntercept(this.interceptDemux)
    return i
  }

  /** Stops intercepting for `interceptor` (existing connections stay). */
  unintercept(interceptor: TcpInterceptor): void {
    const k = this.interceptors.indexOf(interceptor)
    if (k >= 0) this.interceptors.splice(k, 1)
    if (this.interceptors.length === 0) this.host.setIntercept(null)
  }

  /** @internal The first interceptor whose rules take a segment from `src` to `dst`:`port`. */
  interceptorFor(src: number, dst: number, port: number): TcpInterceptor | undefined {
    const a = this.interceptors
    for (let i = 0; i < a.length; i++) if (a[i]!.matches(src, dst, port)) return a[i]
    return undefined
  }

  /** @internal The intercept path's end for SYNs from interface `index`: its IP stage accepts any destination (the classifier chose). */
  interceptEnd(index: number): PathEnd | null {
    let p = this.interceptPaths.get(index)
    if (p === undefined) {
      const iface = this.host.interfaces[index]
      if (iface === undefined) return null
      const eth = new EthStage({ mac: iface.mac, arp: iface.arp, up: Dir.Forward })
      const ip = new IpStage<Interface>({ link: iface, routes: this.host.routes, protocol: IPPROTO_TCP, isLocal: () => true })
      p = new Path([eth, ip, new TcpListenStage(this, iface, true)], { name: `${this.host.name}/${iface.name}/tcp-intercept` })
      this.host.attach(p, iface)
      this.interceptPaths.set(index, p)
    }
    return p.ends[0]
  }

  /** Stops listening on `port` (existing connections stay). */
  unlisten(port: number): void {
    this.listeners.delete(port)
  }

  /**
   * Opens a connection to `remote`:`remotePort` (active OPEN) and returns it at once
   * (SYN-SENT); watch `conn.stage.tcb.events` or wrap it in a socket. With `opts.path`
   * the connection's stages `[TCP, IP, ETH]` are appended to that path (end 1 faces the
   * device) instead of getting a path of their own: the server side of a 1-path proxy.
   */
  connect(remote: number, remotePort: number, opts: TcpConnectOptions = {}): TcpConnection {
    const up = opts.path !== undefined ? Dir.Backward : Dir.Forward
    const ns = this.host.netStages(remote, IPPROTO_TCP, { df: this.df, up })
    const localPort = opts.localPort ?? this.pickPort(ns.localIp, remote, remotePort)
    const inUse = ((remotePort << 16) | localPort) >>> 0
    if (this.inUse(remote, ns.localIp, inUse)) {
      throw new ConfigError(`TCP connect: ${localPort} -> ${remotePort} is already in use`)
    }
    const conn = this.createConnection(ns.iface, ns.localIp, remote, localPort, remotePort, null, opts.config, ns.stages, opts.path)
    conn.stage.tcb.connect()
    return conn
  }

  /** Points the flow of (`localIp`:`localPort`, `remoteIp`:`remotePort`) at `entry` (the splice engine's retargeting). */
  setFlow(localIp: number, localPort: number, remoteIp: number, remotePort: number, entry: TcpConnection): void {
    this.flows.set(remoteIp >>> 0, localIp >>> 0, ((remotePort << 16) | localPort) >>> 0, entry)
  }

  /** Adds a flow index consulted after the connection table (the shared IP/FWD path's). */
  addClaim(c: TcpFlowClaim): void {
    if (!this.claims.includes(c)) this.claims.push(c)
  }

  /** Removes a flow index added with {@link TcpModule.addClaim}. */
  removeClaim(c: TcpFlowClaim): void {
    const k = this.claims.indexOf(c)
    if (k >= 0) this.claims.splice(k, 1)
  }

  /**
   * @internal The path end of the connection an incoming segment's 4-tuple names: its flow
   * entry, else a {@link TcpFlowClaim} (a shared IP/FWD path), else null. Per segment:
   * pass the words as int32 (`| 0`; the tables hash and compare bit patterns), since a
   * uint32 >= 2^31 (a source port >= 32768 in the ports word, a 192.168/16 address)
   * passed to a call is boxed, an allocation per segment.
   */
  connectionEnd(src: number, dst: number, ports: number, ingress: number): PathEnd | null {
    const conn = this.flows.get(src, dst, ports)
    if (conn !== undefined) return conn.end
    return this.claims.length > 0 ? this.claimed(src, dst, ports, ingress) : null
  }

  /** @internal True if the 4-tuple (as an incoming segment carries it) has a connection: a flow entry or a claim. */
  inUse(src: number, dst: number, ports: number): boolean {
    // Off the fast path (connect, port picks): uint32 words are fine here.
    return this.connectionEnd(src, dst, ports, -1) !== null
  }

  /** @internal The end a {@link TcpFlowClaim} gives an incoming segment's 4-tuple, or null. */
  claimed(src: number, dst: number, ports: number, ingress: number): PathEnd | null {
    const c = this.claims
    for (let i = 0; i < c.length; i++) {
      const e = c[i]!.claim(src, dst, ports, ingress)
      if (e !== null) return e
    }
    return null
  }

  /** Removes a flow entry if it is `entry`. */
  deleteFlow(localIp: number, localPort: number, remoteIp: number, remotePort: number, entry: TcpConnection): void {
    const key = ((remotePort << 16) | localPort) >>> 0
    if (this.flows.get(remoteIp >>> 0, localIp >>> 0, key) === entry) this.flows.delete(remoteIp >>> 0, localIp >>> 0, key)
  }

  /** @internal The default (listen) path's end for frames from interface `index`. */
  defaultEnd(index: number): PathEnd | null {
    let p = this.defaults.get(index)
    if (p === undefined) {
      const iface = this.host.interfaces[index]
      if (iface === undefined) return null
      const eth = new EthStage({ mac: iface.mac, arp: iface.arp, up: Dir.Forward })
      const ip = new IpStage<Interface>({ link: iface, routes: this.host.routes, protocol: IPPROTO_TCP })
      p = new Path([eth, ip, new TcpListenStage(this, iface)], { name: `${this.host.name}/${iface.name}/tcp-listen` })
      this.host.attach(p, iface)
      this.defaults.set(index, p)
    }
    return p.ends[0]
  }

  /** RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a 4 µs clock. */
  isn(localIp: number, localPort: number, remoteIp: number, remotePort: number): IsnResult {
    const h = createHash('sha256')
    const t = new Uint8Array(12)
    set32(t, 0, localIp)
    set32(t, 4, remoteIp)
    set16(t, 8, localPort)
    set16(t, 10, remotePort)
    h.update(t)
    h.update(this.secret)
    const d = h.digest()
    const m = Math.floor(this.host.scheduler.now() * 250)
    return { iss: (m + d.readUInt32BE(0)) >>> 0, tsOffset: d.readUInt32BE(4) }
  }

  /** @internal Builds a connection path and registers its flow. */
  createConnection(
    iface: Interface, localIp: number, remoteIp: number, localPort: number, remotePort: number,
    listener: TcpListener | null, config?: TcbConfig, stages?: Stage[], into?: Path,
  ): TcpConnection {
    const net = stages ?? this.host.netStages(remoteIp, IPPROTO_TCP, { df: this.df, local: localIp }).stages
    const { iss, tsOffset } = this.isn(localIp, localPort, remoteIp, remotePort)
    const cfg = { ...(listener?.config ?? this.config), ...config }
    if (cfg.mss === undefined) cfg.mss = iface.mtu - 40
    else cfg.mss = Math.min(cfg.mss, iface.mtu - 40)
    const stage = new TcpStage({
      time: this.host.scheduler, localIp, remoteIp, localPort, remotePort, iss, tsOffset, config: cfg, trustChecksums: this.trustChecksums,
      up: into !== undefined ? Dir.Backward : Dir.Forward,
    })
    let path: Path
    if (into !== undefined) {
      // Appended after what the path holds: [.., TCP, IP, ETH], end 1 facing the device.
      path = into
      path.append(stage)
      for (const s of net) path.append(s)
      this.host.attach(path, iface, 1)
    } else {
      path = new Path([...net, stage], { name: `${this.host.name}/tcp:${localPort}>${remotePort}` })
      this.host.attach(path, iface)
    }
    const conn: TcpConnection = { path, end: path.ends[into !== undefined ? 1 : 0], stage, localIp, remoteIp, listener }
    const key = ((remotePort << 16) | localPort) >>> 0
    this.flows.set(remoteIp, localIp, key, conn)
    const tcb = stage.tcb
    if (listener !== null) listener.embryonic++
    let counted = listener !== null
    tcb.ownerEvents = {
      connected: () => {
        if (counted && listener !== null) {
          counted = false
          listener.embryonic--
          listener.stats.accepted++
          listener.onConnection(conn)
        }
      },
      closed: () => {
        if (counted && listener !== null) {
          counted = false
          listener.embryonic--
        }
        this.remove(conn)
      },
      reopen: msg => {
        // RFC 6191: only a listener can take the new incarnation.
        const l = listener instanceof TcpInterceptor ? (this.interceptors.includes(listener) ? listener : undefined) : this.listeners.get(localPort)
        if (l === undefined || l.embryonic >= this.synBacklog) return false
        const fresh = this.createConnection(iface, localIp, remoteIp, localPort, remotePort, l)
        fresh.stage.tcb.listen()
        fresh.stage.receive(msg)
        return true
      },
    }
    return conn
  }

  /**
   * Hands a connection over to someone else (the splice engine): the module stops
   * watching its TCB (no path close when it reaches CLOSED, no TIME-WAIT reuse) and, with
   * `keepFlow` false, forgets its flow entry too. The path and the flow entry then belong
   * to the caller.
   */
  release(conn: TcpConnection, keepFlow = true): void {
    conn.stage.tcb.ownerEvents = {}
    if (conn.listener !== null && conn.stage.tcb.state === 'SYN-RECEIVED') conn.listener.embryonic--
    if (!keepFlow) {
      const key = ((conn.stage.tcb.remotePort << 16) | conn.stage.tcb.localPort) >>> 0
      if (this.flows.get(conn.remoteIp, conn.localIp, key) === conn) this.flows.delete(conn.remoteIp, conn.localIp, key)
    }
  }

  /** Forgets a connection and closes its path (between messages). */
  remove(conn: TcpConnection): void {
    const key = ((conn.stage.tcb.remotePort << 16) | conn.stage.tcb.localPort) >>> 0
    if (this.flows.get(conn.remoteIp, conn.localIp, key) === conn) this.flows.delete(conn.remoteIp, conn.localIp, key)
    conn.path.betweenMessages(() => {
      conn.stage.tcb.dispose()
      conn.path.close()
      this.host.detach(conn.path)
    })
  }

  /** Closes every connection (RST) and the default paths. */
  close(): void {
    const all: TcpConnection[] = []
    this.flows.forEach(c => all.push(c))
    for (const c of all) c.stage.tcb.abort()
    for (const p of [...this.defaults.values(), ...this.interceptPaths.values()]) {
      p.close()
      this.host.detach(p)
    }
    this.defaults.clear()
    this.interceptPaths.clear()
    this.interceptors.length = 0
    this.host.setIntercept(null)
    this.listeners.clear()
    this.host.unregisterProtocol(IPPROTO_TCP)
    this.unsubscribeIcmp()
  }

  /** A free port for a new listener (in the ephemeral range, neither listened on nor used by a connection from `localIp`). */
  freePort(localIp: number): number {
    const [lo, hi] = this.ephemeral
    const span = hi - lo + 1
    const start = Math.floor(Math.random() * span)
    for (let i = 0; i < span; i++) {
      const p = lo + ((start + i) % span)
      if (this.listeners.has(p)) continue
      let used = false
      this.flows.forEach(c => { if (c.localIp === localIp && c.stage.tcb.localPort === p) used = true })
      if (!used) return p
    }
    throw new ConfigError(`TCP listen: no free port in ${lo}-${hi} on ${localIp >>> 0}`)
  }

  private pickPort(localIp: number, remote: number, remotePort: number): number {
    const [lo, hi] = this.ephemeral
    const span = hi - lo + 1
    const start = Math.floor(Math.random() * span)
    for (let i = 0; i < span; i++) {
      const p = lo + ((start + i) % span)
      const key = ((remotePort << 16) | p) >>> 0
      if (!this.inUse(remote, localIp, key) && !this.listeners.has(p)) return p
    }
    throw new ConfigError(`TCP connect: no free ephemeral port in ${lo}-${hi} towards ${remotePort}`)
  }
}
