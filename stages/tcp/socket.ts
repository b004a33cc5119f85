/**
 * The application API over our TCP: {@link TcpSocket} is a Node `Duplex` (so `pipe`,
 * `pipeline`, async iteration and backpressure work as with `net.Socket`), and
 * {@link TcpServer} accepts connections (`'connection'` events or `accept()`).
 *
 * Backpressure both ways: `write()` returns false once the TCB's send buffer is full
 * (the rest waits for ACKs); received data is pushed only while the stream wants more,
 * and what is left stays in the TCB, shrinking the advertised window.
 * @module
 */
import { EventEmitter } from 'node:events'
import { Duplex } from 'node:stream'
import { formatIPv4, parseIPv4 } from '../../core/bytes.js'
import type { TcpConnection, TcpListener, TcpModule } from './module.js'
import type { TcpApp } from './stage.js'
import type { Tcb, TcbConfig, TcpState } from './tcb.js'

/** Error with a Node-style `code` (ECONNRESET, ECONNREFUSED, ETIMEDOUT). */
export interface TcpSocketError extends Error {
  /** Node-style code. */
  code: string
}

function sockError(reason: 'reset' | 'refused' | 'timeout', where: string): TcpSocketError {
  const code = reason === 'reset' ? 'ECONNRESET' : reason === 'refused' ? 'ECONNREFUSED' : 'ETIMEDOUT'
  const e = new Error(`${code}: connection ${reason === 'timeout' ? 'timed out' : reason} (${where})`) as TcpSocketError
  e.code = code
  return e
}

/**
 * One connection as a Duplex stream. Events besides the stream ones: `'connect'`,
 * `'state'` (from, to, why).
 */
export class TcpSocket extends Duplex implements TcpApp {
  /** The connection (path, stage). */
  readonly conn: TcpConnection
  /** True once ESTABLISHED was reached. */
  connected = false
  private pending: { chunk: Uint8Array; off: number; cb: (err?: Error | null) => void } | null = null
  private wantRead = false
  private ended = false

  /** Wraps `conn`; the TCB's events are taken over by the socket. */
  constructor(conn: TcpConnection, opts: { highWaterMark?: number } = {}) {
    super({ allowHalfOpen: true, ...(opts.highWaterMark !== undefined ? { readableHighWaterMark: opts.highWaterMark, writableHighWaterMark: opts.highWaterMark } : {}) })
    this.conn = conn
    conn.stage.app = this
    const tcb = conn.stage.tcb
    this.connected = tcb.state === 'ESTABLISHED' || tcb.state === 'CLOSE-WAIT'
    tcb.events = {
      state: (from, to, why) => this.emit('state', from, to, why),
      connected: () => {
        this.connected = true
        this.emit('connect')
        this.flushPending()
      },
      end: () => this.onData(),
      writable: () => this.flushPending(),
      error: reason => this.destroy(sockError(reason, `${this.localPort} > ${this.remoteAddress}:${this.remotePort}`)),
      closed: () => {
        if (!this.destroyed && this.ended && this.writableFinished) this.destroy()
      },
    }
    if (tcb.readableLength > 0 || tcb.peerFinished) queueMicrotask(() => this.onData())
  }

  /** The control block (sequence variables, windows, options: see {@link Tcb.snapshot}). */
  get tcb(): Tcb {
    return this.conn.stage.tcb
  }

  /** TCP state. */
  get state(): TcpState {
    return this.tcb.state
  }

  /** Our port. */
  get localPort(): number {
    return this.tcb.localPort
  }

  /** The peer's port. */
  get remotePort(): number {
    return this.tcb.remotePort
  }

  /** Our address as text. */
  get localAddress(): string {
    return formatIPv4(this.conn.localIp)
  }

  /** The peer's address as text. */
  get remoteAddress(): string {
    return formatIPv4(this.conn.remoteIp)
  }

  /** Turns Nagle's algorithm off (true) or on. */
  setNoDelay(noDelay = true): this {
    this.tcb.setNoDelay(noDelay)
    return this
  }

  /** Keep-alive on (`initialDelay` ms idle before probing, default 2 hours) or off, like `net.Socket.setKeepAlive`. */
  setKeepAlive(enable = false, initialDelay = 0): this {
    this.tcb.setKeepAlive(enable ? (initialDelay > 0 ? initialDelay : 7_200_000) : 0)
    return this
  }

  /** Aborts with a RST (like `net.Socket.resetAndDestroy`). */
  resetAndDestroy(): this {
    this.tcb.abort()
    return this.destroy()
  }

  /** @internal TcpApp: new data or FIN. */
  onData(): void {
    if (!this.wantRead || this.destroyed) return
    const tcb = this.tcb
    while (tcb.readableLength > 0) {
      const n = Math.min(tcb.readableLength, 65536)
      const buf = Buffer.allocUnsafe(n)
      tcb.read(buf, 0, n)
      if (!this.push(buf)) {
        this.wantRead = false
        return
      }
    }
    if (tcb.peerFinished && !this.ended) {
      this.ended = true
      this.push(null)
    }
  }

  /** @internal Duplex: the consumer wants data. */
  override _read(): void {
    this.wantRead = true
    this.onData()
  }

  /** @internal Duplex: queue a chunk; the callback waits until all of it is in the send buffer. */
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.pending = { chunk, off: 0, cb }
    this.flushPending()
  }

  /** @internal Duplex: end() -> FIN after the buffered data (half close). */
  override _final(cb: (err?: Error | null) => void): void {
    const st = this.tcb.state
    if (st === 'SYN-SENT' || st === 'SYN-RECEIVED') {
      // end() before the handshake finished: the FIN follows once connected (RFC 9293's
      // CLOSE in SYN-SENT would delete the TCB and the queued data with it).
      const onErr = (e: Error): void => cb(e)
      this.once('error', onErr)
      this.once('connect', () => {
        this.off('error', onErr)
        this.tcb.shutdown()
        cb()
      })
      return
    }
    this.tcb.shutdown()
    cb()
  }

  /** @internal Duplex: a graceful end leaves the TCB closing; anything else aborts (RST). */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const tcb = this.tcb
    const p = this.pending
    this.pending = null
    if (p) p.cb(err ?? new Error('socket destroyed'))
    if (tcb.state !== 'CLOSED') {
      const graceful = err === null && tcb.finQueued && tcb.peerFinished
      if (graceful) tcb.close()
      else tcb.abort()
    }
    cb(err)
  }

  private flushPending(): void {
    const p = this.pending
    if (p === null) return
    const tcb = this.tcb
    const took = tcb.write(p.chunk, p.off, p.chunk.length - p.off)
    p.off += took
    if (p.off >= p.chunk.length) {
      this.pending = null
      p.cb()
    } else if (tcb.state === 'CLOSED') {
      this.pending = null
      p.cb(sockError('reset', 'write on a closed connection'))
    }
  }
}

/** Accepts connections on one port: `'connection'` events, or `await server.accept()`. */
export class TcpServer extends EventEmitter {
  /** The module it listens on. */
  readonly module: TcpModule
  private listener: TcpListener | null = null
  private readonly backlog: TcpSocket[] = []
  private readonly waiters: ((s: TcpSocket) => void)[] = []

  /** Creates a server on `module`; call `listen(port)`. */
  constructor(module: TcpModule) {
    super()
    this.module = module
  }

  /** Listens on `port` with optional TCB tunables. */
  listen(port: number, config: TcbConfig = {}): this {
    this.listener = this.module.listen(port, conn => this.onConnection(conn), config)
    return this
  }

  /** The port listened on (0 before `listen`). */
  get port(): number {
    return this.listener?.port ?? 0
  }

  /** Resolves with the next connection (sockets not taken by a `'connection'` listener queue up). */
  accept(): Promise<TcpSocket> {
    const s = this.backlog.shift()
    if (s) return Promise.resolve(s)
    return new Promise(resolve => this.waiters.push(resolve))
  }

  /** Stops listening (connections stay open). */
  close(): void {
    if (this.listener) this.module.unlisten(this.listener.port)
    this.listener = null
  }

  private onConnection(conn: TcpConnection): void {
    const s = new TcpSocket(conn)
    if (this.listenerCount('connection') > 0) {
      this.emit('connection', s)
      return
    }
    const w = this.waiters.shift()
    if (w) w(s)
    else if (this.backlog.length < this.module.acceptBacklog) this.backlog.push(s)
    else s.resetAndDestroy()
  }
}

/** Opens a connection (`remote` as text or u32) and resolves once ESTABLISHED; rejects on RST or timeout. */
export function connect(module: TcpModule, remote: string | number, port: number, opts: { localPort?: number; config?: TcbConfig } = {}): Promise<TcpSocket> {
  const ip = typeof remote === 'string' ? parseIPv4(remote) : remote >>> 0
  const conn = module.connect(ip, port, opts)
  const s = new TcpSocket(conn)
  return new Promise((resolve, reject) => {
    const onErr = (e: Error): void => reject(e)
    s.once('error', onErr)
    s.once('connect', () => {
      s.off('error', onErr)
      resolve(s)
    })
  })
}
