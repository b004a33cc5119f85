/**
 * MobileSocket: the MSOCKS library of §III-C for Node. A `Duplex` like `net.Socket`, over
 * Node's own TCP (or any socket factory), that connects through an MSOCKS proxy and can
 * move its session to another local address or interface without the application seeing
 * it: `reconnect({ localAddress })`, or by itself when the connection breaks.
 *
 * ```
 *  app ──write──▶ ring (last ringBytes octets) ──▶ socket A ─────▶ proxy ══FWD══ server
 *  app ◀──read─── data_read counted here       ◀── socket A
 *  move:  socket E ─ greeting/auth ─ RECONNECT(id, data_read, data_written) ─▶ proxy
 *                  ◀─ OK(data_salvage, data_write)
 *         read data_salvage more octets from A (acked, unread: Fig. 8), drop A's rest,
 *         write the last data_write octets again on E (the hole: Fig. 10), go on on E
 * ```
 * `data_read` counts the octets taken from the sockets (they are then the library's to
 * deliver, so a paused reader does not lose them); `data_written` the octets handed to
 * the socket. The ring must hold every written octet the server may not have yet: the
 * socket send buffer and what is in flight (default 8 MiB: Linux's largest default
 * `tcp_wmem` is 4 MiB).
 * @module
 */
import net from 'node:net'
import { Duplex } from 'node:stream'
import { parseIPv4 } from '../../core/bytes.js'
import {
  MSOCKS_CMD_BIND, MSOCKS_CMD_CONNECT, MsocksRep, buildReconnect, parseConnectReply, parseReconnectReply,
} from '../../stages/proxy/handlers/msocks.js'
import { Socks5Method, buildGreeting,  buildRequest, buildUserPass, type Socks5Address, type Socks5Parse } from '../../stages/proxy/handlers/socks5.js'
import { WriteRing } from './ring.js'

/** An endpoint. */
export interface MobileEndpoint {
  /** IPv4 address (or, for the target, a name the proxy resolves). */
  host: string
  /** Port. */
  port: number
}

/** What a socket factory is asked for. */
export interface MobileConnectTarget extends MobileEndpoint {
  /** The local address to connect from, if chosen. */
  localAddress?: string
}

/** A stream socket as MobileSocket needs it (net.Socket and pathsplice's TcpSocket fit). */
export type MobileTransport = Duplex

/** Options of a {@link MobileSocket}. */
export interface MobileSocketOptions {
  /** The MSOCKS proxy. */
  proxy: MobileEndpoint
  /**
   * The server to reach through it; with `bind`, the server expected to connect in (its
   * address; the port may be 0).
   */
  target: MobileEndpoint
  /**
   * MBIND instead of MCONNECT (RFC 1928 §4 BIND with an identifier): the proxy listens for
   * `target.host`; the 'bound' event (and {@link MobileSocket.bindRemote}) gives the address the
   * server is to connect to, 'connect' follows when it did. The proxy needs `bind: true`.
   */
  bind?: boolean
  /** Local address of the first connection. */
  localAddress?: string
  /** RFC 1929 credentials, when the proxy wants them. */
  auth?: {
    /** UNAME. */
    user: string
    /** PASSWD. */
    password: string
  }
  /**
   * Opens a connection (default: `net.connect`, half-open allowed); it must emit 'connect'
   * once open, and should allow half-open streams (the server's FIN must not end our side).
   */
  connect?: (t: MobileConnectTarget) => MobileTransport
  /** Octets of recently written data kept for rewrites [8 MiB]. */
  ringBytes?: number
  /** Move by itself when the connection breaks (an error or close, not both FINs) [true]. */
  autoReconnect?: boolean
  /**
   * Where automatic moves go, one per attempt in turn (e.g. the other interface's address
   * and the proxy address reached through it) [one entry: the same addresses as before].
   */
  fallbacks?: ReconnectOptions[]
  /** Attempts per move (each a new connection) [5]. */
  retries?: number
  /** Wait before the next attempt, doubled each time [100 ms]. */
  retryDelayMs?: number
  /** Give up one attempt (handshake, salvage) after this long [5000 ms]. */
  attemptTimeoutMs?: number
  /** The clock latencies are measured with (ms) [performance.now; a test's virtual clock]. */
  now?: () => number
  /** With `bind`: how long to wait for the server to connect in [60000 ms; the proxy's own timeout may be shorter]. */
  bindTimeoutMs?: number
}

/** What {@link MobileSocket.bindRemote} resolves with. */
export interface MobileBind {
  /** The socket; 'connect' once the server connected in. */
  socket: MobileSocket
  /** Where the proxy listens for the server (BND.ADDR/BND.PORT of the first reply). */
  bound: MobileEndpoint
}

/** Options of {@link MobileSocket.reconnect}. */
export interface ReconnectOptions {
  /** Local address of the new connection. */
  localAddress?: string
  /** Another address of the proxy (the identifier is valid on any of its addresses). */
  proxyHost?: string
}

/** What a move did, in the 'reconnect' event. */
export interface ReconnectInfo {
  /** Time from the new connection's start to the RECONNECT reply (ms). */
  replyMs: number
  /** Time until the session runs on the new connection (salvage and rewrite done, ms). */
  totalMs: number
  /** Octets salvaged from the old socket. */
  dataSalvage: number
  /** Octets rewritten. */
  dataWrite: number
  /** Attempts it took. */
  attempts: number
}

/** A MobileSocket error: `code` is one of 'ERR_MSOCKS_PROXY', 'ERR_MSOCKS_REFUSED', 'ERR_MSOCKS_LOST', 'ERR_MSOCKS_MOVE'. */
export interface MobileSocketError extends Error {
  /** Machine-readable kind. */
  code: string
  /** The proxy's REP, when it refused. */
  rep?: number
}

function mkError(code: string, message: string, rep?: number): MobileSocketError {
  const e = new Error(message) as MobileSocketError
  e.code = code
  if (rep !== undefined) e.rep = rep
  return e
}

type Mode = 'handshake' | 'data' | 'salvage' | 'hold'

/** One underlying connection and where its octets go. */
class Leg {
  readonly sock: MobileTransport
  mode: Mode = 'handshake'
  buf: Uint8Array = new Uint8Array(0)
  /** Octets received in 'salvage' or 'hold' mode. */
  kept: Uint8Array[] = []
  keptBytes = 0
  closed = false
  /** The peer's FIN arrived (delivered once the leg carries data). */
  gotEnd = false
  waiter: (() => void) | null = null
  constructor(sock: MobileTransport) {
    this.sock = sock
  }
  wake(): void {
    const w = this.waiter
    this.waiter = null
    w?.()
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b
  const r = new Uint8Array(a.length + b.length)
  r.set(a, 0)
  r.set(b, a.length)
  return r
}

function targetAddress(host: string): Socks5Address {
  try {
    return { type: 'ipv4', ip: parseIPv4(host) }
  } catch {
    return { type: 'domain', name: host }
  }
}

/**
 * A mobile connection through an MSOCKS proxy. Events besides the stream ones:
 * `'connect'` (the MCONNECT reply arrived; with `bind`, the second MBIND reply: the server
 * connected in), `'bound'` (with `bind`: the first reply, a {@link MobileEndpoint} to give
 * the server), `'reconnect'` ({@link ReconnectInfo}), `'reconnecting'` (a move started: `reason`).
 */
export class MobileSocket extends Duplex {
  /** Server octets taken from the sockets (data_read). */
  dataRead = 0
  /** Application octets handed to the sockets (data_written). */
  dataWritten = 0
  /** Moves completed. */
  moves = 0
  /** The connection identifier, once connected. */
  id: Uint8Array | null = null
  private readonly o: Required<Omit<MobileSocketOptions, 'auth' | 'localAddress'>> & Pick<MobileSocketOptions, 'auth' | 'localAddress'>
  /** With `bind`: where the proxy listens for the server (the first BIND reply), once known. */
  bound: MobileEndpoint | null = null
  /** With `bind`: the server that connected in (the second reply), once known. */
  peer: MobileEndpoint | null = null
  /** Automatic moves in total. */
  autoMoves = 0
  private readonly ring: WriteRing
  private leg: Leg | null = null
  private state: 'connecting' | 'open' | 'moving' | 'closed' = 'connecting'
  private waitingWrite: (() => void) | null = null
  private readPaused = false
  private finalCb: ((err?: Error | null) => void) | null = null
  private ended = false
  private moving: Promise<void> | null = null

  /** Starts connecting at once (like `net.connect`). */
  constructor(opts: MobileSocketOptions) {
    super({ allowHalfOpen: true })
    this.o = {
      connect: opts.connect ?? (t => net.connect({ host: t.host, port: t.port, allowHalfOpen: true, ...(t.localAddress !== undefined ? { localAddress: t.localAddress } : {}) })),
      ringBytes: opts.ringBytes ?? 8 * 1024 * 1024, autoReconnect: opts.autoReconnect ?? true, retries: opts.retries ?? 5,
      retryDelayMs: opts.retryDelayMs ?? 100, attemptTimeoutMs: opts.attemptTimeoutMs ?? 5000, now: opts.now ?? (() => performance.now()),
      proxy: opts.proxy, target: opts.target, auth: opts.auth, localAddress: opts.localAddress,
      fallbacks: opts.fallbacks !== undefined && opts.fallbacks.length > 0 ? opts.fallbacks : [{}],
      bind: opts.bind ?? false, bindTimeoutMs: opts.bindTimeoutMs ?? 60_000,
    }
    this.ring = new WriteRing(this.o.ringBytes)
    void this.start()
  }

  /**
   * MBIND through the proxy: resolves with the socket and the address the server is to
   * connect to (the first reply), to be told to the server out of band; the socket's
   * 'connect' follows when the server connected in. Rejects if the proxy refused.
   */
  static bindRemote(opts: Omit<MobileSocketOptions, 'bind'>): Promise<MobileBind> {
    const socket = new MobileSocket({ ...opts, bind: true })
    return new Promise((resolve, reject) => {
      const onErr = (e: Error): void => reject(e)
      socket.once('error', onErr)
      socket.once('bound', (bound: MobileEndpoint) => {
        socket.off('error', onErr)
        resolve({ socket, bound })
      })
    })
  }

  /** True while the session is open on a connection (not connecting, moving or closed). */
  get isOpen(): boolean {
    return this.state === 'open'
  }

  /** True once destroyed (read through a getter: moves run across awaits). */
  get isClosed(): boolean {
    return this.state === 'closed'
  }

  /** The current connection's local address (as the underlying socket reports it). */
  get localAddress(): string | undefined {
    return (this.leg?.sock as net.Socket | undefined)?.localAddress
  }

  /**
   * Moves the session to a new connection (optionally from `localAddress`). Resolves once
   * the session runs on it; rejects (and the socket is destroyed) if every attempt failed.
   */
  reconnect(opts: ReconnectOptions = {}): Promise<void> {
    if (this.state === 'closed') return Promise.reject(mkError('ERR_MSOCKS_MOVE', 'msocks: the socket is closed'))
    if (this.state === 'connecting') return Promise.reject(mkError('ERR_MSOCKS_MOVE', 'msocks: not connected yet'))
    if (this.moving !== null) return this.moving
    this.emit('reconnecting', 'requested')
    this.moving = this.move(opts).finally(() => { this.moving = null })
    return this.moving
  }

  // ------------------------------------------------------------------ Duplex

  /** @internal */
  override _read(): void {
    if (!this.readPaused) return
    this.readPaused = false
    const l = this.leg
    if (l !== null && l.mode === 'data') l.sock.resume()
  }

  /** @internal */
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const go = (): void => {
      const l = this.leg!
      const data = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)
      this.ring.append(data)
      this.dataWritten += data.length
      // Bounded by the socket's highWaterMark: written octets stay within the ring.
      if (l.sock.write(data)) cb()
      else this.waitingWrite = cb
    }
    if (this.state === 'open') go()
    else if (this.state === 'closed') cb(mkError('ERR_MSOCKS_MOVE', 'msocks: the socket is closed'))
    else this.waitingWrite = () => go()
  }

  /** @internal */
  override _final(cb: (err?: Error | null) => void): void {
    this.ended = true
    // 'finish' once the FIN is handed to the socket (a destroy before that could drop it).
    if (this.state === 'open') this.leg!.sock.end(() => cb())
    else this.finalCb = cb
  }

  /** @internal */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.state = 'closed'
    this.leg?.sock.destroy()
    this.leg = null
    cb(err)
  }

  // ------------------------------------------------------------------ connections

  private async start(): Promise<void> {
    const p = this.o.proxy
    let leg: Leg | null = null
    try {
      leg = await this.open({ host: p.host, port: p.port, ...(this.o.localAddress !== undefined ? { localAddress: this.o.localAddress } : {}) })
      const req = buildRequest(this.o.bind ? MSOCKS_CMD_BIND : MSOCKS_CMD_CONNECT, targetAddress(this.o.target.host), this.o.target.port)
      await this.negotiate(leg, req)
      if (this.o.bind) {
        // RFC 1928 §6: the first BIND reply is the plain one, with where the server connects.
        const first = await this.expect(leg, b => (b.length >= 2 && b[1] !== 0 ? parseConnectReply(b) : parsePlainReply(b)))
        if (first.rep !== 0) throw mkError('ERR_MSOCKS_REFUSED', `msocks: the proxy refused the BIND (REP ${first.rep})`, first.rep)
        this.bound = { host: formatIp(first.bindIp), port: first.bindPort }
        this.emit('bound', this.bound)
      }
      const r = await this.expect(leg, parseConnectReply, this.o.bind ? this.o.bindTimeoutMs : undefined)
      if (this.o.bind && r.rep === 0) this.peer = { host: formatIp(r.bindIp), port: r.bindPort }
      if (r.rep !== 0 || r.id === null) throw mkError('ERR_MSOCKS_REFUSED', `msocks: the proxy refused the connection (REP ${r.rep})`, r.rep)
      this.id = r.id
    } catch (err) {
      // The refused (or broken) connection is not the session's yet: close it here.
      leg?.sock.destroy()
      this.destroy(err as Error)
      return
    }
    this.use(leg)
    this.state = 'open'
    this.emit('connect')
    this.flushWaiting()
  }

  /** Opens a connection and wires its events; resolves once connected. */
  private open(t: MobileConnectTarget): Promise<Leg> {
    const sock = this.o.connect(t)
    const leg = new Leg(sock)
    sock.on('data', (d: Uint8Array) => this.onData(leg, d))
    sock.on('drain', () => {
      if (leg === this.leg) this.releaseWrite()
    })
    const gone = (err?: Error): void => {
      if (leg.closed) return
      leg.closed = true
      leg.wake()
      // Both FINs exchanged: the session is over, not broken.
      if (leg === this.leg && !(leg.gotEnd && this.ended)) this.broken(err ?? null)
    }
    sock.on('error', gone)
    sock.on('close', () => gone())
    sock.on('end', () => {
      // The server's FIN (forwarded through the splice): the stream ends.
      leg.gotEnd = true
      if (leg === this.leg && leg.mode === 'data') this.push(null)
    })
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        sock.destroy()
        reject(mkError('ERR_MSOCKS_PROXY', `msocks: connecting to ${t.host}:${t.port} timed out`))
      }, this.o.attemptTimeoutMs)
      sock.once('connect', () => {
        clearTimeout(timer)
        resolve(leg)
      })
      sock.once('error', err => {
        clearTimeout(timer)
        reject(err)
      })
    })
  }

  private onData(leg: Leg, d: Uint8Array): void {
    switch (leg.mode) {
      case 'handshake':
        leg.buf = concat(leg.buf, new Uint8Array(d))
        leg.wake()
        return
      case 'data':
        this.deliver(d)
        if (this.readPaused) leg.sock.pause()
        return
      case 'salvage':
      case 'hold':
        leg.kept.push(new Uint8Array(d))
        leg.keptBytes += d.length
        leg.wake()
    }
  }

  private deliver(d: Uint8Array): void {
    if (d.length === 0) return
    this.dataRead += d.length
    if (!this.push(d)) this.readPaused = true
  }

  /**
   * RFC 1928 §3 method negotiation, RFC 1929 §2 username/password, then `request`. All
   * are sent at once (we offer one method, so we know the answer): with the TCP handshake
   * a move costs 2 RTTs to the reply, and the first moved octets arrive half an RTT later
   * (the paper's bound of 2.5 RTT).
   */
  private async negotiate(leg: Leg, request: Uint8Array): Promise<void> {
    const auth = this.o.auth
    const greeting = buildGreeting([auth === undefined ? Socks5Method.NoAuth : Socks5Method.UserPass])
    leg.sock.write(concat(concat(greeting, auth === undefined ? new Uint8Array(0) : buildUserPass(auth.user, auth.password)), request))
    const m = await this.expect(leg, b => (b.length < 2 ? { kind: 'need-more' } : { kind: 'ok', value: b[1]!, length: 2 }))
    if (m === Socks5Method.NoAcceptable) throw mkError('ERR_MSOCKS_PROXY', 'msocks: the proxy accepts none of our methods (credentials needed?)')
    if (m === Socks5Method.UserPass) {
      if (auth === undefined) throw mkError('ERR_MSOCKS_PROXY', 'msocks: the proxy wants a username and password')
      const st = await this.expect(leg, b => (b.length < 2 ? { kind: 'need-more' } : { kind: 'ok', value: b[1]!, length: 2 }))
      if (st !== 0) throw mkError('ERR_MSOCKS_REFUSED', 'msocks: the proxy refused our credentials')
    }
  }

  /** Waits until `parse` accepts the handshake octets; keeps what follows. */
  private async expect<T>(leg: Leg, parse: (b: Uint8Array) => Socks5Parse<T>, timeoutMs = this.o.attemptTimeoutMs): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const r = parse(leg.buf)
      if (r.kind === 'ok') {
        leg.buf = leg.buf.subarray(r.length)
        return r.value
      }
      if (r.kind === 'error') throw mkError('ERR_MSOCKS_PROXY', `msocks: bad reply from the proxy: ${r.reason}`)
      if (leg.closed) throw mkError('ERR_MSOCKS_PROXY', 'msocks: the proxy closed the connection during the handshake')
      await this.waitLeg(leg, deadline)
    }
  }

  private waitLeg(leg: Leg, deadline: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const left = deadline - Date.now()
      if (left <= 0) return reject(mkError('ERR_MSOCKS_PROXY', 'msocks: the proxy did not answer in time'))
      const t = setTimeout(() => {
        leg.waiter = null
        reject(mkError('ERR_MSOCKS_PROXY', 'msocks: the proxy did not answer in time'))
      }, left)
      leg.waiter = () => {
        clearTimeout(t)
        resolve()
      }
    })
  }

  /** Makes `leg` the session's connection: what followed the reply is server data. */
  private use(leg: Leg): void {
    this.leg = leg
    leg.mode = 'data'
    const rest = leg.buf
    leg.buf = new Uint8Array(0)
    for (const c of leg.kept) this.deliver(c)
    leg.kept = []
    leg.keptBytes = 0
    this.deliver(rest)
    if (leg.gotEnd) this.push(null)
    else if (this.readPaused) leg.sock.pause()
  }

  private broken(err: Error | null): void {
    if (this.state !== 'open' || !this.o.autoReconnect) {
      if (this.state === 'open') this.destroy(err ?? mkError('ERR_MSOCKS_LOST', 'msocks: the connection closed'))
      return
    }
    this.emit('reconnecting', err?.message ?? 'connection closed')
    this.autoMoves++
    // A failure is reported by destroy(err) (an 'error' event), or the old leg is kept.
    this.moving = this.move(null).catch(() => {}).finally(() => { this.moving = null })
  }

  /** Moves the session; `opts` null: an automatic move through the fallbacks. */
  private async move(given: ReconnectOptions | null): Promise<void> {
    const old = this.leg!
    this.state = 'moving'
    // From now on the old socket's octets are salvage candidates, not data.
    old.mode = 'salvage'
    old.sock.resume()
    const t0 = this.o.now()
    let delay = this.o.retryDelayMs
    let lastErr: Error | null = null
    for (let attempt = 1; attempt <= this.o.retries; attempt++) {
      if (this.isClosed) return
      let leg: Leg | null = null
      const fb = this.o.fallbacks
      const opts = given ?? fb[(attempt - 1) % fb.length]!
      try {
        const started = this.o.now()
        leg = await this.open({ host: opts.proxyHost ?? this.o.proxy.host, port: this.o.proxy.port, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) })
        await this.negotiate(leg, buildReconnect({ id: this.id!, dataRead: this.dataRead, dataWritten: this.dataWritten }))
        const r = await this.expect(leg, parseReconnectReply)
        const replyMs = this.o.now() - started
        if (r.rep !== MsocksRep.Succeeded) throw mkError('ERR_MSOCKS_REFUSED', `msocks: RECONNECT refused (REP 0x${r.rep.toString(16)})`, r.rep)
        // Server octets after the reply wait until the salvage is delivered.
        leg.mode = 'hold'
        if (leg.buf.length > 0) {
          leg.kept.unshift(leg.buf)
          leg.keptBytes += leg.buf.length
          leg.buf = new Uint8Array(0)
        }
        await this.salvage(old, r.dataSalvage)
        const rewrite = this.ring.tail(r.dataWrite)
        old.closed = true
        old.sock.destroy()
        if (rewrite.length > 0) leg.sock.write(rewrite)
        this.use(leg)
        this.state = 'open'
        this.moves++
        const info: ReconnectInfo = { replyMs, totalMs: this.o.now() - t0, dataSalvage: r.dataSalvage, dataWrite: r.dataWrite, attempts: attempt }
        this.emit('reconnect', info)
        this.flushWaiting()
        return
      } catch (err) {
        lastErr = err as Error
        leg?.sock.destroy()
        const e = err as MobileSocketError
        // Counters the proxy cannot use, or a hole the ring no longer holds: retrying cannot help.
        if (e.code === 'ERR_MSOCKS_LOST' || (e.code === 'ERR_MSOCKS_REFUSED' && (e.rep === MsocksRep.BadCounters || e.rep === MsocksRep.UnknownId)) || err instanceof RangeError) break
        await new Promise(r => setTimeout(r, delay))
        delay *= 2
      }
    }
    const e = mkError('ERR_MSOCKS_MOVE', `msocks: could not move the session: ${lastErr?.message ?? 'no attempt'}`)
    if (!old.closed && this.state === 'moving' && (lastErr as MobileSocketError | null)?.code !== 'ERR_MSOCKS_LOST') {
      // The old connection still works (the proxy refused, it did not move): stay on it.
      this.use(old)
      this.state = 'open'
      this.flushWaiting()
      throw e
    }
    this.destroy(e)
    throw e
  }

  /** Delivers `n` octets from the old socket (acked by it, unread: Fig. 8), drops the rest. */
  private async salvage(old: Leg, n: number): Promise<void> {
    const deadline = Date.now() + this.o.attemptTimeoutMs
    while (old.keptBytes < n) {
      if (old.closed) throw mkError('ERR_MSOCKS_LOST', `msocks: the old connection closed with ${old.keptBytes} of ${n} octets to salvage`)
      try {
        await this.waitLeg(old, deadline)
      } catch {
        throw mkError('ERR_MSOCKS_LOST', `msocks: only ${old.keptBytes} of ${n} octets to salvage arrived`)
      }
    }
    let left = n
    for (const c of old.kept) {
      if (left === 0) break
      const take = Math.min(left, c.length)
      this.deliver(c.subarray(0, take))
      left -= take
    }
    old.kept = []
    old.keptBytes = 0
  }

  private releaseWrite(): void {
    const w = this.waitingWrite
    this.waitingWrite = null
    w?.()
  }

  private flushWaiting(): void {
    this.releaseWrite()
    if (this.finalCb !== null && this.state === 'open') {
      const cb = this.finalCb
      this.finalCb = null
      this.leg!.sock.end(() => cb())
    } else if (this.ended && this.state === 'open' && this.moves > 0) {
      this.leg!.sock.end()
    }
  }
}

/** A plain RFC 1928 §6 reply with an IPv4 BND.ADDR (10 octets), in the MCONNECT reply's shape (no identifier). */
function parsePlainReply(b: Uint8Array): Socks5Parse<{ rep: number; bindIp: number; bindPort: number }> {
  if (b.length >= 1 && b[0] !== 5) return { kind: 'error', reason: `reply version ${b[0]}, expected 5` }
  if (b.length < 10) return { kind: 'need-more' }
  if (b[3] !== 1) return { kind: 'error', reason: `reply ATYP ${b[3]}: this proxy answers with IPv4 (1)` }
  return { kind: 'ok', value: { rep: b[1]!, bindIp: ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0, bindPort: (b[8]! << 8) | b[9]! }, length: 10 }
}

function formatIp(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`
}
