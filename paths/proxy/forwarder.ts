/**
 * The proxy forwarder: accepts client connections on a port of a {@link Host}, runs a
 * {@link ProxyHandler} per session in a 2-path or 1-path layout, and splices, unsplices
 * and tears down on the sessions' requests (Scout §III-IV, DESIGN §4-5).
 *
 * ```
 *   2-path  A: [ETH IP TCP(A) PROXY] end1 ⇄ end1 [PROXY TCP(B) IP ETH]^B (two paths, a queue between)
 *   1-path     [ETH IP TCP(A) PROXY TCP(B) IP ETH]                        (end 1 faces B's device)
 *   splicing   [ETH IP PREFWD IP ETH]     old TCBs drain beside it (Scout step 3)
 *   FWD        [ETH IP FWD IP ETH]        IP/FWD: [ETH IPFWD ETH]
 *   shared     [ETH IPFWD-SHARED ETH]     one path per interface pair, a table row per connection
 *              (mode 'ipfwd-shared': the session's wiring, paths and TCBs are released)
 * ```
 * The splice itself is {@link SpliceEngine}'s (paths/proxy/splice.ts); this file owns the
 * sessions, their TCP legs and their lifetime.
 * @module
 */
import { ConfigError } from '../../core/errors.js'
import type { Path } from '../../core/path.js'
import { Dir } from '../../core/stage.js'
import type { Timer } from '../../core/timers.js'
import { ProxySession, SHARED_NO_UNSPLICE, type BoundAddress, type Endpoint, type ProxyHandler, type ProxyHost, type SpliceMode, type SpliceOptions } from '../../stages/proxy/session.js'
import { NONE, ProxyStage } from '../../stages/proxy/stage.js'
import type { FwdEnd, FwdStage } from '../../stages/fwd/stage.js'
import type { TcpConnection, TcpInterceptor, TcpInterceptRule, TcpListener, TcpModule } from '../../stages/tcp/module.js'
import type { TcpStage } from '../../stages/tcp/stage.js'
import type { TcbConfig } from '../../stages/tcp/tcb.js'
import type { Host, Interface } from '../host.js'
import { SharedIpFwdPath } from './shared-path.js'
import { SpliceEngine } from './splice.js'

/** How a session's two TCP connections meet at the proxy before a splice (DESIGN §4). */
export type ProxyLayout = '1-path' | '2-path'

/** Options of a {@link ProxyForwarder}. */
export interface ProxyForwarderOptions {
  /** The host whose interfaces the proxy uses. */
  host: Host
  /** Its TCP module. */
  tcp: TcpModule
  /**
   * Port to accept clients on (on the host's own addresses). Optional when `intercept`
   * is given: a transparent proxy needs no port of its own.
   */
  port?: number
  /**
   * Transparent mode: also accept connections routed through the host whose destination
   * (and source) match these rules, answering as the original destination; sessions see
   * it as `s.client.localIp`/`localPort` with `s.client.intercepted` true. Other transit
   * traffic is forwarded as before (see {@link TcpModule.intercept}).
   */
  intercept?: readonly TcpInterceptRule[]
  /** The proxy logic, shared by all sessions (per-session state goes in `s.data`). */
  handler: ProxyHandler
  /** Layout before a splice [1-path]. */
  layout?: ProxyLayout
  /** Final stage when a handler does not choose [fwd] (see {@link SpliceMode}). */
  mode?: SpliceMode
  /** TCB tunables of the proxy's connections. */
  tcb?: TcbConfig
  /**
   * Offer the server the options the client negotiated (SACK, timestamps) and an MSS no
   * larger than the client's, so a splice need not strip options (window scaling differs
   * freely: FWD rescales) [true].
   */
  mirrorOptions?: boolean
  /** End a splice after this long without a segment; both peers then get RSTs on their next segment [0: never]. */
  idleMs?: number
  /** Keep a spliced connection's FWD state this long after both FINs were acked (late retransmissions) [2000]. */
  lingerMs?: number
  /** Give up a splice that waits this long for the TCBs to hold no out-of-order data [10000]. */
  spliceWaitMs?: number
  /** Give up an unsplice whose peers did not acknowledge everything forwarded within this time [5000]. */
  unspliceTimeoutMs?: number
  /**
   * Mode 'ipfwd-shared': keep what an unsplice needs of each moved session (the session,
   * its PROXY stages, addresses and the two TCB snapshots of the splice: a `SharedKeep`;
   * no TCB, no path, no buffers) so that `session.unsplice()` works: the row is materialized
   * as a per-connection IP/FWD path and unspliced from there. Costs that record per spliced
   * session beside its table row [false].
   */
  sharedUnsplice?: boolean
}

/** Counters of a {@link ProxyForwarder}. */
export interface ProxyForwarderStats {
  /** Client connections accepted. */
  accepted: number
  /** Sessions now open. */
  active: number
  /** Sessions spliced now (final FWD). */
  spliced: number
  /** Sessions draining now (preliminary FWD). */
  splicing: number
  /** Splices completed. */
  splices: number
  /** Splice requests that failed (the session stayed in control mode). */
  spliceFailures: number
  /** Unsplices completed. */
  unsplices: number
  /** Unsplice requests that failed (the session stayed spliced). */
  unspliceFailures: number
  /** Sessions ended. */
  closed: number
  /** Handler callbacks that threw (their sessions were reset). */
  handlerErrors: number
  /** Sum of splice latencies (request to final FWD), ms. */
  spliceMsTotal: number
  /** Sum of unsplice latencies (request to two live TCBs), ms. */
  unspliceMsTotal: number
  /** Server connections accepted for `acceptFrom` (SOCKS BIND). */
  bindAccepted: number
  /** Connection attempts to a bound port from a peer other than the expected one (RST). */
  bindRefused: number
  /** `acceptFrom` waits that timed out. */
  bindTimeouts: number
}

/** @internal What a session moved to the shared path keeps for an unsplice ({@link ProxyForwarderOptions.sharedUnsplice}). */
export interface SharedKeep {
  /** The session. */
  session: ProxySession
  /** Its layout. */
  layout: ProxyLayout
  /** Its PROXY stages (unlinked; linked again by the unsplice). */
  proxyA: ProxyStage
  /** See proxyA. */
  proxyB: ProxyStage | null
  /** A's interface. */
  ifaceA: Interface
  /** B's interface. */
  ifaceB: Interface | null
  /** Connection A's addresses (ours, the peer's). */
  a: { localIp: number; remoteIp: number }
  /** Connection B's. */
  b: { localIp: number; remoteIp: number }
}

/** @internal Everything the forwarder and the splice engine know about one session. */
export interface Wiring {
  /** The session. */
  session: ProxySession
  /** Its layout. */
  layout: ProxyLayout
  /** Connection A's flow entry. */
  a: TcpConnection
  /** Connection B's flow entry, once connecting. */
  b: TcpConnection | null
  /** The path holding A's stages (the only path in a 1-path layout and once spliced). */
  pathA: Path
  /** 2-path, control mode: B's own path. */
  pathB: Path | null
  /** The PROXY stage next to A's TCP. */
  proxyA: ProxyStage
  /** The PROXY stage next to B's TCP (proxyA in a 1-path layout). */
  proxyB: ProxyStage | null
  /** A's interface. */
  ifaceA: Interface
  /** B's interface. */
  ifaceB: Interface | null
  /** B reached ESTABLISHED. */
  bConnected: boolean
  /** Legs whose TCB reached CLOSED (control mode). */
  closedA: boolean
  /** See closedA. */
  closedB: boolean
  /** The FWD stage while splicing or spliced. */
  fwd: FwdStage | null
  /** The final stage's kind while spliced. */
  mode: SpliceMode
  /** True once finished. */
  done: boolean
  /** While `acceptFrom` waits: the bound port and its timer. */
  bind: { port: number; timer: Timer } | null
}

/** A proxy: sessions, layouts, splices. */
export class ProxyForwarder implements ProxyHost {
  /** The host. */
  readonly host: Host
  /** Its TCP module. */
  readonly tcp: TcpModule
  /** The handler. */
  readonly handler: ProxyHandler
  /** Layout before a splice. */
  readonly layout: ProxyLayout
  /** Default final stage. */
  readonly mode: SpliceMode
  /** The listener on `port`, or the interceptor when there is no port. */
  readonly listener: TcpListener
  /** The interceptor (transparent mode), or null. */
  readonly interceptor: TcpInterceptor | null
  /** Open sessions and their wiring. */
  readonly sessions = new Map<ProxySession, Wiring>()
  /** Counters. */
  readonly stats: ProxyForwarderStats = {
    accepted: 0, active: 0, spliced: 0, splicing: 0, splices: 0, spliceFailures: 0, unsplices: 0, unspliceFailures: 0,
    closed: 0, handlerErrors: 0, spliceMsTotal: 0, unspliceMsTotal: 0, bindAccepted: 0, bindRefused: 0, bindTimeouts: 0,
  }
  /** @internal */
  readonly tcbConfig: TcbConfig
  /** @internal */
  readonly mirrorOptions: boolean
  /** @internal */
  readonly engine: SpliceEngine
  /** The shared IP/FWD paths (mode 'ipfwd-shared'), by interface pair, built on first use. */
  readonly sharedPaths = new Map<string, SharedIpFwdPath>()
  /**
   * Sessions on a shared path that are still watched: their handler has `onClose` (it is
   * told of the end as today) or a callback is running. Others are released at the move.
   */
  private readonly sharedKept = new Map<number, { s: ProxySession; sp: SharedIpFwdPath; row: number; keep: SharedKeep | null }>()
  /** See {@link ProxyForwarderOptions.sharedUnsplice}. */
  readonly sharedUnsplice: boolean
  /** Why rows end while the forwarder ends them itself (reset, close), else null. */
  private sharedEndWhy: string | null = null
  private readonly idleMs: number
  private readonly lingerMs: number

  /** Starts listening. Throws {@link ConfigError} for bad options (before anything starts). */
  constructor(opts: ProxyForwarderOptions) {
    const layout = opts.layout ?? '1-path'
    if (layout !== '1-path' && layout !== '2-path') throw new ConfigError(`proxy: layout must be '1-path' or '2-path', got '${String(layout)}'`)
    const mode = opts.mode ?? 'fwd'
    if (mode !== 'fwd' && mode !== 'ipfwd' && mode !== 'ipfwd-shared') throw new ConfigError(`proxy: mode must be 'fwd', 'ipfwd' or 'ipfwd-shared', got '${String(mode)}'`)
    for (const k of ['idleMs', 'lingerMs', 'spliceWaitMs', 'unspliceTimeoutMs'] as const) {
      const v = opts[k]
      if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new ConfigError(`proxy: ${k} must be a number >= 0, got ${String(v)}`)
    }
    this.host = opts.host
    this.tcp = opts.tcp
    this.handler = opts.handler
    this.layout = layout
    this.mode = mode
    this.tcbConfig = opts.tcb ?? {}
    this.mirrorOptions = opts.mirrorOptions ?? true
    this.idleMs = opts.idleMs ?? 0
    this.lingerMs = opts.lingerMs ?? 2000
    this.sharedUnsplice = opts.sharedUnsplice ?? false
    this.engine = new SpliceEngine(this, {
      idleMs: this.idleMs, lingerMs: this.lingerMs, spliceWaitMs: opts.spliceWaitMs ?? 10_000, unspliceTimeoutMs: opts.unspliceTimeoutMs ?? 5000,
    })
    if (opts.port === undefined && opts.intercept === undefined) throw new ConfigError('proxy: give a port to listen on, intercept rules (transparent mode), or both')
    const interceptor = opts.intercept === undefined ? null : this.tcp.intercept(opts.intercept, conn => this.accept(conn), this.tcbConfig)
    this.interceptor = interceptor
    try {
      this.listener = opts.port === undefined ? interceptor! : this.tcp.listen(opts.port, conn => this.accept(conn), this.tcbConfig)
    } catch (err) {
      if (interceptor !== null) this.tcp.unintercept(interceptor)
      throw err
    }
  }

  /** Stops accepting and resets every session. */
  close(): void {
    if (this.listener !== this.interceptor) this.tcp.unlisten(this.listener.port)
    if (this.interceptor !== null) this.tcp.unintercept(this.interceptor)
    for (const s of [...this.sessions.keys()]) this.reset(s)
    this.sharedEndWhy = 'reset'
    for (const sp of this.sharedPaths.values()) sp.close()
    this.sharedEndWhy = null
    this.sharedPaths.clear()
  }

  /** One line per session. */
  describe(): string[] {
    const out = [...this.sessions.values()].map(w => `${w.session.describe()}\n    ${w.pathA.describe()}${w.pathB ? `\n    ${w.pathB.describe()}` : ''}`)
    for (const sp of this.sharedPaths.values()) out.push(`shared IP/FWD: ${sp.stage.rows} spliced connection(s)\n    ${sp.path.describe()}`)
    return out
  }

  // ------------------------------------------------------------------ the shared IP/FWD path

  /** @internal The shared path between interfaces `x` and `y` (either order), built on first use. */
  sharedPath(x: Interface, y: Interface): SharedIpFwdPath {
    const [lo, hi] = x.index <= y.index ? [x, y] : [y, x]
    const key = `${lo.index}:${hi.index}`
    let sp = this.sharedPaths.get(key)
    if (sp === undefined) {
      const made: SharedIpFwdPath = new SharedIpFwdPath(this.host, this.tcp, lo, hi, {
        scheduler: this.host.scheduler, trustChecksums: this.tcp.trustChecksums, idleMs: this.idleMs, lingerMs: this.lingerMs,
        onEnd: (owner, why) => this.sharedEnded(owner, why),
      })
      sp = made
      this.sharedPaths.set(key, sp)
    }
    return sp
  }

  /**
   * @internal Step 4 done for a session moved to a shared path (row `row`): the wiring is
   * gone (or, with `w`, kept for an unsplice); the session hears 'spliced', and stays
   * watched only if its handler has `onClose` or its wiring is kept.
   */
  movedToShared(s: ProxySession, sp: SharedIpFwdPath, row: number, keep: SharedKeep | null): void {
    s.shared = true
    s.sharedMovable = keep !== null
    s.legs = null
    // Watched while onSpliced runs: it may reset the session.
    this.sharedKept.set(s.id, { s, sp, row, keep })
    s.setState('spliced', 'spliced')
    const k = this.sharedKept.get(s.id)
    if (k !== undefined && s.handler.onClose === undefined && keep === null) this.sharedKept.delete(s.id)
    // Both FINs may have been acknowledged while the TCBs drained.
    if (k !== undefined && sp.stage.table.isLive(row) && sp.stage.finsAcked(row)) sp.stage.end(row, 'fin')
  }

  /** A row of a shared path ended (FIN, RST, idle, or the forwarder's reset). */
  private sharedEnded(owner: number, why: FwdEnd): void {
    const st = this.stats
    st.spliced--
    st.active--
    st.closed++
    const k = this.sharedKept.get(owner)
    if (k === undefined) return
    this.sharedKept.delete(owner)
    k.s.setState('closed', this.sharedEndWhy ?? why)
  }

  // ------------------------------------------------------------------ sessions

  private accept(conn: TcpConnection): void {
    this.tcp.release(conn)
    this.stats.accepted++
    this.stats.active++
    const t = conn.stage.tcb
    const client: Endpoint = { localIp: conn.localIp, localPort: t.localPort, remoteIp: conn.remoteIp, remotePort: t.remotePort }
    if (conn.listener !== null && conn.listener === this.interceptor) client.intercepted = true
    const s = new ProxySession(this.handler, client, this)
    const twoPath = this.layout === '2-path'
    const proxyA = new ProxyStage(s, twoPath
      ? { fromClient: Dir.Forward, fromServer: NONE, toClient: Dir.Backward, toServer: Dir.Forward }
      : { fromClient: Dir.Forward, fromServer: Dir.Backward, toClient: Dir.Backward, toServer: Dir.Forward }, Dir.Forward)
    conn.path.append(proxyA)
    const iface = this.host.route(conn.remoteIp)?.iface ?? this.host.interfaces[0]!
    const w: Wiring = {
      session: s, layout: this.layout, a: conn, b: null, pathA: conn.path, pathB: null, proxyA, proxyB: twoPath ? null : proxyA,
      ifaceA: iface, ifaceB: null, bConnected: false, closedA: false, closedB: false, fwd: null, mode: this.mode, done: false, bind: null,
    }
    this.sessions.set(s, w)
    this.syncLegs(w)
    this.wireLeg(w, 'a', conn.stage)
    s.clientOpened()
  }

  /**
   * @internal The session's legs derive from the wiring (one source of truth): called
   * whenever `w.a`, `w.b` or the PROXY stages change (accept, connect, unsplice).
   */
  syncLegs(w: Wiring): void {
    w.session.setLegs({
      clientTcp: w.a.stage, serverTcp: w.b?.stage ?? null, clientStage: w.proxyA, serverStage: w.b === null ? null : w.proxyB, handover: w.layout === '2-path',
    })
  }

  /** @internal Unsplice: the rebuilt connections replace the old flow entries; both legs are live again. */
  setLegs(w: Wiring, a: TcpConnection, b: TcpConnection): void {
    w.a = a
    w.b = b
    w.closedA = w.closedB = false
    this.syncLegs(w)
    this.wireLeg(w, 'a', a.stage)
    this.wireLeg(w, 'b', b.stage)
  }

  /** @internal Hooks a TCP stage's events to its session (at accept, connect and unsplice). */
  wireLeg(w: Wiring, side: 'a' | 'b', tcp: TcpStage): void {
    const s = w.session
    tcp.app = { onData: () => s.pump() }
    tcp.tcb.events = {
      connected: side === 'b' ? () => this.serverConnected(w) : undefined,
      writable: () => s.pump(),
      end: () => s.peerEnded(side === 'a'),
      error: why => this.legError(w, side, why),
    }
    tcp.tcb.ownerEvents = { closed: () => this.legClosed(w, side) }
  }

  /** Connection B's TCB configuration: the forwarder's, with A's options when `mirrorOptions`. */
  private serverTcbConfig(w: Wiring): TcbConfig {
    const cfg: TcbConfig = { ...this.tcbConfig }
    if (this.mirrorOptions) {
      const a = w.a.stage.tcb
      cfg.sack = a.sackOk
      cfg.timestamps = a.tsOk
      cfg.mss = Math.min(cfg.mss ?? 65495, a.peerMss)
    }
    return cfg
  }

  /** ProxyHost: opens connection B in the session's layout. */
  connectServer(s: ProxySession, ip: number, port: number): void {
    const w = this.wiring(s)
    const cfg = this.serverTcbConfig(w)
    let conn: TcpConnection
    try {
      conn = this.tcp.connect(ip, port, { config: cfg, ...(w.layout === '1-path' ? { path: w.pathA } : {}) })
    } catch (err) {
      queueMicrotask(() => s.serverFailed(err instanceof ConfigError ? 'unreachable' : `error: ${(err as Error).message}`))
      return
    }
    this.tcp.release(conn)
    this.attachServer(w, conn)
  }

  /**
   * ProxyHost: listens for connection B from `ip` (SOCKS BIND, RFC 1928 §4) on a fresh port
   * of our address on the interface that routes to `ip` (the address the server can
   * reach). One connection only, from `ip` only (other SYNs: RST, `bindRefused`); in a
   * 1-path layout its stages are appended to the session's path, in a 2-path layout it
   * gets its own, as `connectServer` does. Throws a ConfigError if no route leads to `ip`.
   */
  acceptServer(s: ProxySession, ip: number, timeoutMs: number): BoundAddress {
    const w = this.wiring(s)
    const route = this.host.route(ip)
    if (route === undefined) throw new ConfigError(`proxy: acceptFrom(${ip >>> 0}): no route to the expected server; add an interface or route towards it`)
    const localIp = route.iface.address
    const port = this.tcp.freePort(localIp)
    const cfg = this.serverTcbConfig(w)
    const listener = this.tcp.listen(port, () => {}, cfg, {
      filter: (src, _sport, dst) => {
        const ok = src === ip && dst === localIp
        if (!ok) this.stats.bindRefused++
        return ok
      },
      ...(w.layout === '1-path' ? { path: w.pathA } : {}),
      onSyn: conn => {
        if (w.bind !== null) w.bind.timer.cancel()
        w.bind = null
        if (w.done) {
          conn.stage.tcb.abort()
          return
        }
        this.stats.bindAccepted++
        this.attachServer(w, conn)
      },
    })
    const timer = this.host.scheduler.timer(() => {
      if (w.bind === null || w.done) return
      this.tcp.unlisten(listener.port)
      w.bind = null
      this.stats.bindTimeouts++
      s.serverFailed('timeout')
    })
    timer.set(timeoutMs)
    w.bind = { port, timer }
    return { ip: localIp, port }
  }

  /** Wires connection B (active or accepted) into the session's layout. */
  private attachServer(w: Wiring, conn: TcpConnection): void {
    const s = w.session
    w.b = conn
    w.ifaceB = this.host.route(conn.remoteIp)?.iface ?? null
    if (w.layout === '2-path') {
      const proxyB = new ProxyStage(s, { fromClient: NONE, fromServer: Dir.Forward, toClient: Dir.Forward, toServer: Dir.Backward }, Dir.Forward)
      conn.path.append(proxyB)
      w.pathB = conn.path
      w.proxyB = proxyB
      w.pathA.connect(1, conn.path.ends[1])
      conn.path.connect(1, w.pathA.ends[1])
    }
    this.syncLegs(w)
    this.wireLeg(w, 'b', conn.stage)
  }

  private serverConnected(w: Wiring): void {
    w.bConnected = true
    const b = w.b!
    const t = b.stage.tcb
    w.session.serverOpened({ localIp: b.localIp, localPort: t.localPort, remoteIp: b.remoteIp, remotePort: t.remotePort })
  }

  /** ProxyHost: splice (Scout's five steps, by the engine). */
  splice(s: ProxySession, opts: SpliceOptions): void {
    this.engine.splice(this.wiring(s), opts)
  }

  /** ProxyHost: unsplice. */
  unsplice(s: ProxySession): void {
    const k = s.shared ? this.sharedKept.get(s.id) : undefined
    if (k !== undefined && k.keep !== null) {
      // From a row: a per-connection IP/FWD path first, then the usual unsplice.
      const w = this.engine.materialize(k.keep, k.sp, k.row)
      if (w === null) return
      this.sharedKept.delete(s.id)
      s.shared = false
      s.sharedMovable = false
      this.engine.unsplice(w)
      return
    }
    this.engine.unsplice(this.wiring(s))
  }

  /** ProxyHost: RST both connections. */
  reset(s: ProxySession): void {
    const w = this.sessions.get(s)
    if (w === undefined && s.shared) {
      // The row ends; the peers' next segments find no flow and get RSTs from the listen path.
      const k = this.sharedKept.get(s.id)
      if (k === undefined) return
      this.sharedEndWhy = s.closedWhy ?? 'reset'
      k.sp.stage.finish(k.row, 'rst')
      this.sharedEndWhy = null
      return
    }
    if (w === undefined || w.done) return
    if (w.fwd !== null) {
      this.engine.teardown(w, 'reset')
      return
    }
    w.a.stage.tcb.abort()
    w.b?.stage.tcb.abort()
    this.finish(w, s.closedWhy ?? 'reset')
  }

  private legError(w: Wiring, side: 'a' | 'b', why: 'reset' | 'refused' | 'timeout'): void {
    if (w.done || w.fwd !== null) return
    if (side === 'b' && !w.bConnected) {
      w.session.serverFailed(why)
      return
    }
    // One connection is gone: the other cannot continue.
    const other = side === 'a' ? w.b : w.a
    other?.stage.tcb.abort()
    this.finish(w, why)
  }

  private legClosed(w: Wiring, side: 'a' | 'b'): void {
    if (side === 'a') w.closedA = true
    else w.closedB = true
    if (w.fwd !== null) return
    const bDone = w.closedB || w.b === null
    if (w.closedA && bDone) this.finish(w, 'closed')
    else if (side === 'a' && w.b !== null && !w.bConnected) {
      // The client left while the server connection was still opening.
      w.b.stage.tcb.abort()
    }
  }

  /** @internal Ends a session: flows, paths and TCBs released. */
  finish(w: Wiring, why: string): void {
    if (w.done) return
    this.release(w)
    this.stats.active--
    this.stats.closed++
    w.session.setState('closed', why)
  }

  /** @internal Forgets a session's wiring: flows, paths and TCBs released (at its end, or when it moves to a shared path). */
  release(w: Wiring): void {
    if (w.done) return
    w.done = true
    const tcp = this.tcp
    if (w.bind !== null) {
      // The client left while the proxy waited for the server: the bound port closes.
      w.bind.timer.cancel()
      tcp.unlisten(w.bind.port)
      w.bind = null
    }
    for (const c of [w.a, w.b]) {
      if (c === null) continue
      const t = c.stage.tcb
      tcp.deleteFlow(c.localIp, t.localPort, c.remoteIp, t.remotePort, c)
      t.dispose()
    }
    for (const p of [w.pathA, w.pathB]) {
      if (p === null) continue
      p.betweenMessages(() => {
        p.close()
        this.host.detach(p)
      })
    }
    this.sessions.delete(w.session)
  }

  /** @internal */
  wiring(s: ProxySession): Wiring {
    const w = this.sessions.get(s)
    if (w === undefined && s.shared) throw new ConfigError(SHARED_NO_UNSPLICE(s.id))
    if (w === undefined) throw new ConfigError(`session ${s.id} does not belong to this forwarder`)
    return w
  }
}
