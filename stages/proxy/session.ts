/**
 * ProxySession: one client connection through a proxy, and the API proxy writers use
 * (in the spirit of the IBM and symmetric TCP splice socket APIs): read and write both
 * byte streams in control mode, connect to a server, relay, then splice (optionally after
 * `n` more bytes to the client, the SOCKS "OK" message) and unsplice later.
 *
 * ```
 *   control ──splice()──▶ splicing ──both TCBs drained──▶ spliced ──unsplice()──▶ unsplicing ──▶ control
 *      └──────── close()/reset()/FIN both ways/RST/idle ─────────▶ closed
 * ```
 * Flow control: bytes move from one TCP to the other only as fast as the other's send
 * buffer frees up; what waits stays in the receiving TCB, whose window closes. Writes by
 * the handler queue in the session (`pending*`) when the TCB has no room.
 *
 * The forwarder (paths/proxy) owns the paths and does the work behind `connect`,
 * `splice`, `unsplice` and `close` through a {@link ProxyHost}.
 * @module
 */
import { formatIPv4 } from '../../core/bytes.js'
import { SpliceStateError } from '../../core/errors.js'
import { allocMsg, type Msg } from '../../core/msg.js'
import type { TcpStage } from '../tcp/stage.js'
import type { ProxyStage } from './stage.js'

/**
 * A proxy's logic: callbacks for one session. Handlers without `onClientData` relay the
 * client's bytes to the server once connected (a plug gateway); without `onServerData`
 * the server's bytes are relayed to the client. Exceptions thrown by a callback reset
 * the session (and are counted by the forwarder), they never reach the event loop.
 */
export interface ProxyHandler {
  /** Name in dumps and stats. */
  readonly name: string
  /** Connection A (client) is established. Typical: parse nothing yet, or `s.connect(...)` (plug gateway). */
  onClientOpen?(s: ProxySessionApi): void
  /** Bytes from the client. `data` is only valid during the call: copy what you keep. */
  onClientData?(s: ProxySessionApi, data: Uint8Array): void
  /** The client sent FIN (default: FIN to the server once everything before it was relayed). */
  onClientEnd?(s: ProxySessionApi): void
  /** The server connection is established. */
  onServerOpen?(s: ProxySessionApi): void
  /** Bytes from the server (default: relayed to the client). */
  onServerData?(s: ProxySessionApi, data: Uint8Array): void
  /** The server sent FIN (default: FIN to the client once everything before it was relayed). */
  onServerEnd?(s: ProxySessionApi): void
  /** The server connection failed: 'refused', 'timeout', 'reset' or 'unreachable'. */
  onServerError?(s: ProxySessionApi, why: string): void
  /** The splice is complete: the old TCBs drained; only FWD state is left. */
  onSpliced?(s: ProxySessionApi): void
  /** A splice request could not be carried out; the session stays in control mode. */
  onSpliceFailed?(s: ProxySessionApi, why: string): void
  /** Back in control mode after `unsplice()`, with two live TCP connections. */
  onUnspliced?(s: ProxySessionApi): void
  /** Unsplicing failed (timed out waiting for the peers' ACKs); the session stays spliced. */
  onUnspliceFailed?(s: ProxySessionApi, why: string): void
  /** The session ended ('fin', 'rst', 'idle', 'reset', 'timeout', 'closed', 'error: ...'). */
  onClose?(s: ProxySessionApi, why: string): void
}

/**
 * The final stage of a splice: `fwd` (FWD on the connection's own path), `ipfwd` (IP/FWD
 * on its own path), or `ipfwd-shared` (IP/FWD as one row of the forwarder's shared path:
 * a few hundred bytes per connection, no tap, no unsplice unless the forwarder keeps the
 * wiring with `sharedUnsplice`; see docs/ipfwd-shared.md).
 */
export type SpliceMode = 'fwd' | 'ipfwd' | 'ipfwd-shared'

/** Options of {@link ProxySessionApi.splice}. */
export interface SpliceOptions {
  /** Splice once this many more bytes have been written to the client (default 0: now). */
  afterClientBytes?: number
  /**
   * The final stage: `fwd` substitutes a FWD stage on the same path (IP reassembly still
   * works); `ipfwd` puts one merged IP/FWD stage above ETH (unfragmented datagrams only);
   * `ipfwd-shared` moves the connection onto the forwarder's shared IP/FWD path as a row of
   * its table (no tap then; no unsplice unless the forwarder keeps the wiring, `sharedUnsplice`). Default: the forwarder's.
   */
  mode?: SpliceMode
  /** A read-only copy of every new spliced byte, per direction (for caching). */
  tap?: (dir: 'toServer' | 'toClient', data: Uint8Array) => void
  /**
   * Unsplice by itself once this many more bytes of the server's stream have been
   * forwarded to the client, counted from the last byte the handler was given when it
   * called `splice()` (bytes relayed while the splice starts count too): an HTTP response
   * body of known length.
   */
  unspliceAfterServerBytes?: number
}

/** Session states. */
export type SessionState = 'control' | 'splicing' | 'spliced' | 'unsplicing' | 'closed'

/** Addresses of one connection, from the proxy's side. */
export interface Endpoint {
  /** Our address. */
  localIp: number
  /** Our port. */
  localPort: number
  /** The peer's address. */
  remoteIp: number
  /** The peer's port. */
  remotePort: number
  /**
   * True when the client's connection was intercepted (a transparent proxy): `localIp` and
   * `localPort` are then the original destination the client asked for, not ours.
   */
  intercepted?: boolean
}

/** Byte counters of a session in control mode (spliced bytes are the FWD stage's). */
export interface SessionCounters {
  /** Bytes received from the client. */
  fromClient: number
  /** Bytes written (or relayed) to the client. */
  toClient: number
  /** Bytes received from the server. */
  fromServer: number
  /** Bytes written (or relayed) to the server. */
  toServer: number
}

/** What a {@link ProxyHandler} sees of its session. */
export interface ProxySessionApi {
  /** Unique id. */
  readonly id: number
  /** Connection A's addresses (the client). */
  readonly client: Endpoint
  /** Connection B's addresses, once connected. */
  readonly server: Endpoint | null
  /** Current state. */
  readonly state: SessionState
  /** Control-mode byte counters. */
  readonly bytes: SessionCounters
  /** Free-form per-session storage for the handler. */
  readonly data: Record<string, unknown>
  /** Opens the server connection (control mode, once). `onServerOpen` or `onServerError` follows. */
  connect(ip: number, port: number): void
  /**
   * The other way to get a server connection (SOCKS BIND, RFC 1928 §4): listens on a fresh
   * port of the proxy's address towards `ip` and returns that address at once; only `ip`
   * may connect (other peers get a RST and are counted in the forwarder's `bindRefused`).
   * `onServerOpen` follows when it connected (then `server` holds its address), or
   * `onServerError(s, 'timeout')` after `timeoutMs` without one (the port is closed).
   * Control mode, once, instead of `connect`.
   */
  acceptFrom(ip: number, timeoutMs: number): BoundAddress
  /** Writes bytes to the client (copied; queued if the TCB is full). */
  writeToClient(data: Uint8Array): void
  /** Writes bytes to the server (copied; queued). Throws before `connect`. */
  writeToServer(data: Uint8Array): void
  /** From now on, relay both directions without calling the data callbacks (no copies). */
  relay(): void
  /** Asks to splice (see {@link SpliceOptions}). Needs a server connection. */
  splice(opts?: SpliceOptions): void
  /** Asks to unsplice a spliced session. */
  unsplice(): void
  /** Closes gracefully: FIN to both peers after what is queued (spliced: stop watching; the splice runs on). */
  close(): void
  /** Resets both connections (RST), spliced or not. */
  reset(): void
}

/** Where a proxy listens for a server connection ({@link ProxySessionApi.acceptFrom}). */
export interface BoundAddress {
  /** The proxy's address (u32), the one the expected server routes to. */
  ip: number
  /** The port. */
  port: number
}

/** What the forwarder does for a session. */
export interface ProxyHost {
  /** Opens the server connection. */
  connectServer(s: ProxySession, ip: number, port: number): void
  /** Listens for the server connection from `ip` (see {@link ProxySessionApi.acceptFrom}). */
  acceptServer(s: ProxySession, ip: number, timeoutMs: number): BoundAddress
  /** Splices (the session checked its state). */
  splice(s: ProxySession, opts: SpliceOptions): void
  /** Unsplices (the session checked its state). */
  unsplice(s: ProxySession): void
  /** Resets both connections. */
  reset(s: ProxySession): void
}

/** @internal What the session moves bytes through; the forwarder sets and updates it. */
export interface SessionLegs {
  /** Connection A's TCP stage. */
  clientTcp: TcpStage
  /** Connection B's TCP stage, once connecting. */
  serverTcp: TcpStage | null
  /** The PROXY stage next to A's TCP. */
  clientStage: ProxyStage
  /** The PROXY stage next to B's TCP (the same one in a 1-path layout). */
  serverStage: ProxyStage | null
  /** 2-path: relayed data crosses from one path to the other through the end queues. */
  handover: boolean
}

/** Bytes waiting for room in one direction. */
class Pending {
  chunks: Uint8Array[] = []
  bytes = 0
  /** Relayed Msgs on their way through the 2-path hand-over queue. */
  inTransit = 0
  /** Close (FIN) once everything queued is written. */
  finAfter = false
  /** FIN already given to the TCB. */
  finDone = false
}

let nextSessionId = 1

/** @internal Why a session on the shared IP/FWD path cannot be unspliced (or moved by MSOCKS RECONNECT). */
export const SHARED_NO_UNSPLICE = (id: number): string =>
  `session ${id} was spliced onto the shared IP/FWD path (mode 'ipfwd-shared'), which keeps only a row of FWD state per connection: it cannot be unspliced or moved; use mode 'ipfwd' or 'fwd' for proxies that unsplice (HTTP keep-alive, MSOCKS), or the forwarder option sharedUnsplice for unsplice() alone`

/** One client connection through a proxy. */
export class ProxySession implements ProxySessionApi {
  /** Unique id. */
  readonly id = nextSessionId++
  /** The proxy logic. */
  readonly handler: ProxyHandler
  /** Connection A. */
  readonly client: Endpoint
  /** Connection B, once connected. */
  server: Endpoint | null = null
  /** Current state. */
  state: SessionState = 'control'
  /** Byte counters. */
  readonly bytes: SessionCounters = { fromClient: 0, toClient: 0, fromServer: 0, toServer: 0 }
  /** Free-form per-session storage for the handler. */
  readonly data: Record<string, unknown> = {}
  /** Why it closed, once closed. */
  closedWhy: string | null = null
  /** True once `relay()` was called. */
  relaying = false
  /** True once `close()` was called while spliced: no more callbacks. */
  detachedHandler = false
  /** @internal Set by the forwarder. */
  legs: SessionLegs | null = null
  /** @internal Set once the session was moved onto the shared IP/FWD path: no wiring is left to unsplice from. */
  shared = false
  /** @internal With `shared`: the forwarder kept the wiring (`sharedUnsplice`), so it can unsplice. */
  sharedMovable = false
  /** @internal Bytes for the server. */
  readonly toServerQ = new Pending()
  /** @internal Bytes for the client. */
  readonly toClientQ = new Pending()
  /** @internal The client sent FIN. */
  clientEnded = false
  /** @internal The server sent FIN. */
  serverEnded = false
  private readonly host: ProxyHost
  private pendingSplice: { at: number; opts: SpliceOptions } | null = null
  /**
   * @internal Where the server's stream stood for the handler (B's RCV.NXT less what it
   * has not read) at the last `splice()` call: `unspliceAfterServerBytes` counts from here.
   */
  spliceServerMark: number | null = null
  private pumping = false
  /** acceptFrom() was called. */
  private accepting = false

  /** @internal Created by the forwarder. */
  constructor(handler: ProxyHandler, client: Endpoint, host: ProxyHost) {
    this.handler = handler
    this.client = client
    this.host = host
  }

  /** The handler's name. */
  get handlerName(): string {
    return this.handler.name
  }

  /** `session 3 socks5: client 10.0.0.2:40000 -> server 10.0.1.2:80 (spliced)` */
  describe(): string {
    const c = `${formatIPv4(this.client.remoteIp)}:${this.client.remotePort}`
    const s = this.server ? `${formatIPv4(this.server.remoteIp)}:${this.server.remotePort}` : '-'
    return `session ${this.id} ${this.handler.name}: client ${c} -> server ${s} (${this.state})`
  }

  /** Opens the server connection (control mode). `onServerOpen` or `onServerError` follows. */
  connect(ip: number, port: number): void {
    this.expect('control', 'connect')
    if (this.legs?.serverTcp != null || this.accepting) throw new SpliceStateError(`session ${this.id}: connect() called twice (or after acceptFrom()); one session has one server connection`)
    if (!(Number.isInteger(port) && port > 0 && port < 65536)) throw new SpliceStateError(`session ${this.id}: connect(): port ${port} is not 1..65535`)
    this.host.connectServer(this, ip >>> 0, port)
  }

  /** Listens for the server connection from `ip` (control mode, once, instead of `connect`). */
  acceptFrom(ip: number, timeoutMs: number): BoundAddress {
    this.expect('control', 'acceptFrom')
    if (this.legs?.serverTcp != null || this.accepting) throw new SpliceStateError(`session ${this.id}: acceptFrom() after connect() or acceptFrom(); one session has one server connection`)
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new SpliceStateError(`session ${this.id}: acceptFrom(): timeoutMs must be a number > 0, got ${timeoutMs}`)
    this.accepting = true
    return this.host.acceptServer(this, ip >>> 0, timeoutMs)
  }

  /** Writes bytes to the client (copied; queued while the TCB has no room). */
  writeToClient(data: Uint8Array): void {
    this.expectControl('writeToClient')
    if (data.length === 0) return
    this.toClientQ.chunks.push(data.slice())
    this.toClientQ.bytes += data.length
    this.bytes.toClient += data.length
    this.flushToClient()
    this.maybeSplice()
  }

  /** Writes bytes to the server (copied; queued). Throws before `connect`. */
  writeToServer(data: Uint8Array): void {
    this.expectControl('writeToServer')
    if (this.legs?.serverTcp == null) throw new SpliceStateError(`session ${this.id}: writeToServer() before connect(): open the server connection first`)
    if (data.length === 0) return
    this.toServerQ.chunks.push(data.slice())
    this.toServerQ.bytes += data.length
    this.bytes.toServer += data.length
    this.flushToServer()
  }

  /** Relays both directions from now on, without data callbacks. */
  relay(): void {
    this.relaying = true
    this.pump()
  }

  /**
   * Asks to splice: now, or once `afterClientBytes` more bytes have been written to the
   * client. Needs a server connection. From this call on, client and server bytes are no
   * longer given to the handler: they are bound for the other side.
   */
  splice(opts: SpliceOptions = {}): void {
    this.expect('control', 'splice')
    if (this.legs?.serverTcp == null) throw new SpliceStateError(`session ${this.id}: splice() before connect(): there is nothing to splice to`)
    if (this.pendingSplice !== null) throw new SpliceStateError(`session ${this.id}: splice() already requested`)
    const after = opts.afterClientBytes ?? 0
    if (!(Number.isInteger(after) && after >= 0)) throw new SpliceStateError(`session ${this.id}: splice(): afterClientBytes must be an integer >= 0, got ${after}`)
    const n = opts.unspliceAfterServerBytes
    if (n !== undefined && !(Number.isInteger(n) && n >= 0)) throw new SpliceStateError(`session ${this.id}: splice(): unspliceAfterServerBytes must be an integer >= 0, got ${n}`)
    if (opts.mode === 'ipfwd-shared' && (opts.tap !== undefined || n !== undefined)) {
      throw new SpliceStateError(`session ${this.id}: splice(): mode 'ipfwd-shared' keeps no per-connection callbacks or state: it cannot ${opts.tap !== undefined ? 'tap' : 'unsplice after n bytes'}; use mode 'ipfwd' or 'fwd'`)
    }
    const b = this.legs.serverTcp.tcb
    this.spliceServerMark = (b.rcvNxt - b.readableLength) >>> 0
    this.pendingSplice = { at: this.bytes.toClient + after, opts }
    this.maybeSplice()
  }

  /** True while a splice waits for its "after n bytes" condition or for the forwarder. */
  get splicePending(): boolean {
    return this.pendingSplice !== null
  }

  /** Asks to unsplice a spliced session (back to control mode with two live TCBs). */
  unsplice(): void {
    if (this.shared && !this.sharedMovable) throw new SpliceStateError(SHARED_NO_UNSPLICE(this.id))
    this.expect('spliced', 'unsplice')
    this.state = 'unsplicing'
    this.host.unsplice(this)
  }

  /** Closes gracefully: FIN to both peers once what is queued is written. While spliced: the handler lets go; the splice runs on. */
  close(): void {
    if (this.state === 'closed') return
    if (this.state !== 'control') {
      this.detachedHandler = true
      return
    }
    this.toClientQ.finAfter = true
    this.toServerQ.finAfter = true
    this.flushToClient()
    this.flushToServer()
  }

  /** Resets both connections (RST). */
  reset(): void {
    if (this.state === 'closed') return
    this.host.reset(this)
  }

  // ------------------------------------------------------------- from the forwarder and stages

  /** @internal Moves whatever can move, both ways. */
  pump(): void {
    if (this.pumping) return
    this.pumping = true
    try {
      this.flushToServer()
      this.flushToClient()
      this.pumpFrom(true)
      this.pumpFrom(false)
    } finally {
      this.pumping = false
    }
  }

  /** @internal Client data arrived at `stage`. Takes ownership of `msg`. */
  fromClient(msg: Msg, stage: ProxyStage): void {
    const n = msg.end - msg.off
    this.bytes.fromClient += n
    if (this.bound(true)) return this.relayMsg(msg, stage, true)
    const cb = this.handler.onClientData
    const data = msg.buf.subarray(msg.off, msg.end)
    if (cb !== undefined && this.state === 'control') this.call(() => cb.call(this.handler, this, data))
    else this.queue(this.toServerQ, data)
    msg.free()
  }

  /** @internal Server data arrived at `stage`. Takes ownership of `msg`. */
  fromServer(msg: Msg, stage: ProxyStage): void {
    const n = msg.end - msg.off
    this.bytes.fromServer += n
    if (this.bound(false)) {
      this.relayMsg(msg, stage, false)
      this.maybeSplice()
      return
    }
    const cb = this.handler.onServerData
    const data = msg.buf.subarray(msg.off, msg.end)
    if (cb !== undefined && this.state === 'control') this.call(() => cb.call(this.handler, this, data))
    else this.queue(this.toClientQ, data)
    msg.free()
  }

  /** @internal A relayed Msg came out of the 2-path hand-over queue at `stage`. */
  handedOver(msg: Msg, toServer: boolean): void {
    const q = toServer ? this.toServerQ : this.toClientQ
    q.inTransit -= msg.end - msg.off
    if (q.inTransit === 0 && (q.bytes > 0 || q.finAfter)) queueMicrotask(() => this.pump())
  }

  /** @internal The server connection is established. */
  serverOpened(server: Endpoint): void {
    this.server = server
    const cb = this.handler.onServerOpen
    if (cb !== undefined) this.call(() => cb.call(this.handler, this))
    this.pump()
  }

  /** @internal The server connection failed. */
  serverFailed(why: string): void {
    const cb = this.handler.onServerError
    if (cb !== undefined) this.call(() => cb.call(this.handler, this, why))
    else this.reset()
  }

  /** @internal The client connection is established. */
  clientOpened(): void {
    const cb = this.handler.onClientOpen
    if (cb !== undefined) this.call(() => cb.call(this.handler, this))
    this.pump()
  }

  /** @internal A peer sent FIN (after all its data was read). */
  peerEnded(client: boolean): void {
    if (client) this.clientEnded = true
    else this.serverEnded = true
    const cb = client ? this.handler.onClientEnd : this.handler.onServerEnd
    if (cb !== undefined && this.state === 'control' && !this.bound(client)) {
      this.call(() => cb.call(this.handler, this))
      return
    }
    // Default: pass the FIN on once everything before it went out.
    const q = client ? this.toServerQ : this.toClientQ
    q.finAfter = true
    this.pump()
  }

  /** @internal Fires the handler callback for a finished state change. */
  setState(state: SessionState, why = ''): void {
    if (this.state === 'closed') return
    this.state = state
    const h = this.handler
    if (state === 'closed') {
      this.closedWhy = why
      this.pendingSplice = null
      if (h.onClose !== undefined) this.call(() => h.onClose!(this, why), false)
    } else if (state === 'spliced' && why === 'spliced') {
      if (h.onSpliced !== undefined) this.call(() => h.onSpliced!(this))
    } else if (state === 'control' && why === 'unspliced') {
      if (h.onUnspliced !== undefined) this.call(() => h.onUnspliced!(this))
      this.pump()
    } else if (state === 'control' && why.startsWith('splice failed')) {
      if (h.onSpliceFailed !== undefined) this.call(() => h.onSpliceFailed!(this, why))
      this.pump()
    } else if (state === 'spliced' && why.startsWith('unsplice failed')) {
      if (h.onUnspliceFailed !== undefined) this.call(() => h.onUnspliceFailed!(this, why))
    }
  }

  /**
   * @internal New legs (the forwarder, before any byte moves on them): nothing is in
   * transit between paths. Resetting later would forget Msgs relayed in between, and a
   * negative count lets the relay overrun the other TCB's send buffer.
   */
  setLegs(legs: SessionLegs): void {
    this.legs = legs
    this.toServerQ.inTransit = 0
    this.toClientQ.inTransit = 0
  }

  /** @internal Takes the queued bytes for one direction (the splice moves them into the TCB). */
  takeQueued(toServer: boolean): Uint8Array[] {
    const q = toServer ? this.toServerQ : this.toClientQ
    const c = q.chunks
    q.chunks = []
    q.bytes = 0
    return c
  }

  // ------------------------------------------------------------- internals

  /**
   * Bytes move between the TCBs in control mode, and while a splice waits to start (its
   * TCBs must not fill up meanwhile: a full receive buffer would keep a hole from ever
   * being filled). Once the splice unlinked the TCP stages, nothing moves.
   */
  private get moving(): boolean {
    return this.state === 'control' || this.state === 'splicing'
  }

  /** True when bytes from this side go straight to the other (relay, no data callback, or a splice requested). */
  private bound(fromClient: boolean): boolean {
    if (this.pendingSplice !== null || this.state !== 'control' || this.relaying) return true
    return (fromClient ? this.handler.onClientData : this.handler.onServerData) === undefined
  }

  /** Relays a Msg to the other side's TCP: through the hand-over queue (2-path) or directly. */
  private relayMsg(msg: Msg, stage: ProxyStage, toServer: boolean): void {
    const q = toServer ? this.toServerQ : this.toClientQ
    const n = msg.end - msg.off
    if (toServer) this.bytes.toServer += n
    else this.bytes.toClient += n
    const legs = this.legs
    if (!this.moving || legs === null || q.bytes > 0 || (toServer && legs.serverTcp === null)) {
      // Not the steady relay: keep the order behind what is queued.
      this.queue(q, msg.buf.subarray(msg.off, msg.end))
      msg.free()
      this.flush(toServer)
      return
    }
    if (legs.handover) q.inTransit += n
    stage.send(msg, toServer ? stage.wiring.toServer : stage.wiring.toClient)
  }

  private queue(q: Pending, data: Uint8Array): void {
    if (data.length === 0) return
    q.chunks.push(data.slice())
    q.bytes += data.length
  }

  /** Reads from one side's TCB as far as the other side has room. */
  private pumpFrom(client: boolean): void {
    const legs = this.legs
    if (legs === null || !this.moving) return
    const from = client ? legs.clientTcp : legs.serverTcp
    if (from === null || from.path === null) return
    const readable = from.tcb.readableLength
    if (readable === 0) return
    if (!this.bound(client)) {
      from.pushUp(readable)
      return
    }
    const to = client ? legs.serverTcp : legs.clientTcp
    const q = client ? this.toServerQ : this.toClientQ
    if (to === null || q.bytes > 0 || (client && this.server === null)) return
    const room = to.tcb.writableLength - q.inTransit
    if (room > 0) from.pushUp(Math.min(room, readable))
  }

  private flush(toServer: boolean): void {
    if (toServer) this.flushToServer()
    else this.flushToClient()
  }

  /** Writes queued bytes for the server as far as its TCB has room, then its FIN. */
  private flushToServer(): void {
    const legs = this.legs
    if (legs === null || legs.serverTcp === null || legs.serverStage === null || this.server === null) return
    this.flushQueue(this.toServerQ, legs.serverTcp, legs.serverStage, legs.serverStage.wiring.toServer)
  }

  /** Writes queued bytes for the client as far as its TCB has room, then its FIN. */
  private flushToClient(): void {
    const legs = this.legs
    if (legs === null) return
    this.flushQueue(this.toClientQ, legs.clientTcp, legs.clientStage, legs.clientStage.wiring.toClient)
  }

  private flushQueue(q: Pending, tcp: TcpStage, stage: ProxyStage, dir: 0 | 1): void {
    if (!this.moving || q.inTransit > 0 || stage.path === null) return
    while (q.chunks.length > 0) {
      const room = tcp.tcb.writableLength
      if (room <= 0) return
      const c = q.chunks[0]!
      const n = Math.min(room, c.length, 65536)
      const m = allocMsg(n)
      m.buf.set(c.subarray(0, n), m.off)
      m.end = m.off + n
      if (n === c.length) q.chunks.shift()
      else q.chunks[0] = c.subarray(n)
      q.bytes -= n
      stage.originate(m, dir)
    }
    if (q.finAfter && !q.finDone && this.readDone(tcp)) {
      q.finDone = true
      tcp.tcb.shutdown()
    }
  }

  /** The FIN for the TCB `to` may go once its source has nothing unread left. */
  private readDone(to: TcpStage): boolean {
    const legs = this.legs!
    const from = to === legs.serverTcp ? legs.clientTcp : legs.serverTcp
    return from === null || from.tcb.readableLength === 0
  }

  private maybeSplice(): void {
    const p = this.pendingSplice
    if (p === null || this.state !== 'control' || this.bytes.toClient < p.at) return
    this.pendingSplice = null
    this.state = 'splicing'
    this.host.splice(this, p.opts)
  }

  /** Runs a handler callback; an exception resets the session instead of escaping. */
  private call(fn: () => void, resetOnThrow = true): void {
    if (this.detachedHandler) return
    try {
      fn()
    } catch (err) {
      this.closedWhy = `error: ${(err as Error)?.message ?? String(err)}`
      if (resetOnThrow) this.reset()
    }
  }

  private expect(state: SessionState, what: string): void {
    if (this.state !== state) throw new SpliceStateError(`session ${this.id}: ${what}() needs state ${state}, the session is ${this.state}`)
  }

  private expectControl(what: string): void {
    if (this.state !== 'control') throw new SpliceStateError(`session ${this.id}: ${what}() only works in control mode, the session is ${this.state}`)
    if (this.pendingSplice !== null && what === 'writeToServer') throw new SpliceStateError(`session ${this.id}: writeToServer() after splice(): the client's bytes own that stream now`)
  }
}
