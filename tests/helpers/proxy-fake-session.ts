/**
 * FakeSession: a {@link ProxySessionApi} without TCP, for handler tests. It records every
 * call a handler makes and keeps the byte streams each peer would receive, and it keeps
 * the real session's rules that handlers rely on:
 * - no data callbacks once `splice()` was requested, after `relay()`, or for a side
 *   whose callback the handler lacks: those bytes go straight to the other peer;
 * - `writeToServer` throws before `connect()` and once a splice was requested; writes
 *   throw outside control mode. Stricter than the real session: it also throws before
 *   the server connection is open (when `connect()` fails synchronously the real one has
 *   no server leg yet, so early writes are a latent bug) and after `close()`;
 * - `splice({ afterClientBytes })` waits until that many more bytes went to the client
 *   (written by the handler or relayed from the server);
 *   `unspliceAfterServerBytes` unsplices after that many spliced server bytes, then the
 *   rest of that chunk goes to `onServerData` (the FWD stage drops it; the server
 *   retransmits it to the new TCB).
 * Splicing completes at once (no 'splicing' state) unless `holdSplice` is set.
 */
import { Random } from '../../core/random.js'
import type { BoundAddress, Endpoint, ProxyHandler, ProxySessionApi, SessionCounters, SessionState, SpliceOptions } from '../../stages/proxy/session.js'

/** One call a handler made. */
export type Call =
  | { op: 'connect'; ip: number; port: number }
  | { op: 'acceptFrom'; ip: number; timeoutMs: number }
  | { op: 'writeToClient'; data: Uint8Array }
  | { op: 'writeToServer'; data: Uint8Array }
  | { op: 'relay' }
  | { op: 'splice'; opts: SpliceOptions }
  | { op: 'unsplice' }
  | { op: 'close' }
  | { op: 'reset' }

/** The client's side: 10.0.0.2:40000 -> proxy 10.0.0.1:1080. */
export const CLIENT: Endpoint = { localIp: 0x0a000001, localPort: 1080, remoteIp: 0x0a000002, remotePort: 40000 }
/** Our side of the server connection (BND.ADDR in SOCKS): 10.0.1.1:50123. */
export const SERVER_LOCAL = { localIp: 0x0a000101, localPort: 50123 }

/** Where `acceptFrom` listens (BND.ADDR/BND.PORT of a BIND's first reply): 10.0.1.1:40500. */
export const BIND_LOCAL: BoundAddress = { ip: 0x0a000101, port: 40500 }

let nextId = 1

/** Growable byte stream. */
class Stream {
  private parts: Uint8Array[] = []
  length = 0
  push(d: Uint8Array): void {
    this.parts.push(d.slice())
    this.length += d.length
  }
  bytes(): Uint8Array {
    const r = new Uint8Array(this.length)
    let at = 0
    for (const p of this.parts) {
      r.set(p, at)
      at += p.length
    }
    return r
  }
  text(): string {
    return latin1(this.bytes())
  }
}

/** A fake session (see the module comment). */
export class FakeSession implements ProxySessionApi {
  readonly id = nextId++
  readonly client: Endpoint
  server: Endpoint | null = null
  state: SessionState = 'control'
  readonly bytes: SessionCounters = { fromClient: 0, toClient: 0, fromServer: 0, toServer: 0 }
  readonly data: Record<string, unknown> = {}
  readonly handler: ProxyHandler
  /** Every call, in order. */
  readonly calls: Call[] = []
  /** What the client received (handler writes and forwarded bytes), in order. */
  readonly toClient = new Stream()
  /** What the server received, in order. */
  readonly toServer = new Stream()
  connectedTo: { ip: number; port: number } | null = null
  relaying = false
  closed = false
  wasReset = false
  /** The handler let go while spliced (`close()`): no more callbacks. */
  detached = false
  /** Splices carried out, with their options. */
  readonly splices: SpliceOptions[] = []
  /** How many times the session came back to control mode by itself. */
  unsplices = 0
  /** Keep a requested splice in 'splicing' until `completeSplice()` or `failSplice()`. */
  holdSplice = false
  private pendingSplice: { at: number; opts: SpliceOptions } | null = null
  private unspliceLeft: number | null = null

  constructor(handler: ProxyHandler, client: Endpoint = CLIENT) {
    this.handler = handler
    this.client = client
  }

  // ------------------------------------------------------------- ProxySessionApi

  connect(ip: number, port: number): void {
    this.expectControl('connect')
    if (this.connectedTo !== null) throw new Error('fake: connect() called twice')
    if (!(Number.isInteger(port) && port > 0 && port < 65536)) throw new Error(`fake: connect(): bad port ${port}`)
    this.calls.push({ op: 'connect', ip, port })
    this.connectedTo = { ip: ip >>> 0, port }
  }

  /** Records the call; `connectedTo` becomes `{ ip, port: 0 }` (the server's port is known at `serverOpen`). */
  acceptFrom(ip: number, timeoutMs: number): BoundAddress {
    this.expectControl('acceptFrom')
    if (this.connectedTo !== null) throw new Error('fake: acceptFrom() after connect() or acceptFrom()')
    if (!(timeoutMs > 0)) throw new Error(`fake: acceptFrom(): bad timeout ${timeoutMs}`)
    this.calls.push({ op: 'acceptFrom', ip, timeoutMs })
    this.connectedTo = { ip: ip >>> 0, port: 0 }
    return { ...BIND_LOCAL }
  }

  writeToClient(data: Uint8Array): void {
    this.expectControl('writeToClient')
    if (this.closed) throw new Error('fake: writeToClient() after close()')
    this.calls.push({ op: 'writeToClient', data: data.slice() })
    this.sendToClient(data)
    this.maybeSplice()
  }

  writeToServer(data: Uint8Array): void {
    this.expectControl('writeToServer')
    if (this.connectedTo === null) throw new Error('fake: writeToServer() before connect()')
    if (this.server === null) throw new Error('fake: writeToServer() before the server connection opened')
    if (this.pendingSplice !== null) throw new Error('fake: writeToServer() after splice()')
    if (this.closed) throw new Error('fake: writeToServer() after close()')
    this.calls.push({ op: 'writeToServer', data: data.slice() })
    this.sendToServer(data)
  }

  relay(): void {
    this.calls.push({ op: 'relay' })
    this.relaying = true
  }

  splice(opts: SpliceOptions = {}): void {
    this.expectControl('splice')
    if (this.connectedTo === null) throw new Error('fake: splice() before connect()')
    if (this.pendingSplice !== null) throw new Error('fake: splice() already requested')
    const after = opts.afterClientBytes ?? 0
    if (!(Number.isInteger(after) && after >= 0)) throw new Error(`fake: bad afterClientBytes ${after}`)
    const n = opts.unspliceAfterServerBytes
    if (n !== undefined && !(Number.isInteger(n) && n >= 0)) throw new Error(`fake: bad unspliceAfterServerBytes ${n}`)
    this.calls.push({ op: 'splice', opts: { ...opts } })
    this.pendingSplice = { at: this.bytes.toClient + after, opts }
    this.maybeSplice()
  }

  unsplice(): void {
    if (this.state !== 'spliced') throw new Error(`fake: unsplice() while ${this.state}`)
    this.calls.push({ op: 'unsplice' })
    this.backToControl()
  }

  close(): void {
    this.calls.push({ op: 'close' })
    if (this.state !== 'control') this.detached = true
    this.closed = true
  }

  reset(): void {
    this.calls.push({ op: 'reset' })
    this.wasReset = true
    this.state = 'closed'
  }

  // ------------------------------------------------------------- driving the handler

  /** Connection A is up. */
  open(): this {
    this.cb(h => h.onClientOpen?.(this))
    return this
  }

  /** Bytes from the client, in one piece. */
  fromClient(data: Uint8Array | string): void {
    const d = typeof data === 'string' ? ascii(data) : data
    this.bytes.fromClient += d.length
    if (this.state === 'closed') return
    if (this.bound(true)) return this.sendToServer(d)
    this.cb(h => h.onClientData!(this, d))
  }

  /** Bytes from the server, in one piece. */
  fromServer(data: Uint8Array | string): void {
    const d = typeof data === 'string' ? ascii(data) : data
    this.bytes.fromServer += d.length
    if (this.state === 'closed') return
    if (this.state === 'spliced' && this.unspliceLeft !== null) {
      const k = Math.min(this.unspliceLeft, d.length)
      this.sendToClient(d.subarray(0, k))
      this.unspliceLeft -= k
      if (this.unspliceLeft > 0) return
      // The forwarder unsplices by itself at the body's end.
      this.unsplices++
      this.backToControl()
      const rest = d.subarray(k)
      if (rest.length > 0) this.fromServer(rest)
      return
    }
    if (this.bound(false)) {
      // As the real session: relayed bytes count towards a pending afterClientBytes.
      this.sendToClient(d)
      return this.maybeSplice()
    }
    this.cb(h => h.onServerData!(this, d))
  }

  /** Feeds the client's bytes in random pieces of 1..maxChunk bytes. */
  feedClient(data: Uint8Array | string, rng: Random, maxChunk = 8): void {
    for (const c of chunks(typeof data === 'string' ? ascii(data) : data, rng, maxChunk)) this.fromClient(c)
  }

  /** Feeds the server's bytes in random pieces of 1..maxChunk bytes. */
  feedServer(data: Uint8Array | string, rng: Random, maxChunk = 8): void {
    for (const c of chunks(typeof data === 'string' ? ascii(data) : data, rng, maxChunk)) this.fromServer(c)
  }

  /** Connection B is established. */
  serverOpen(local: { localIp: number; localPort: number } = SERVER_LOCAL, remotePort?: number): void {
    if (this.connectedTo === null) throw new Error('fake: serverOpen() without connect()')
    this.server = { ...local, remoteIp: this.connectedTo.ip, remotePort: remotePort ?? this.connectedTo.port }
    this.cb(h => h.onServerOpen?.(this))
  }

  /** Connection B failed. */
  serverError(why: string): void {
    if (this.connectedTo === null) throw new Error('fake: serverError() without connect()')
    const h = this.handler
    if (h.onServerError === undefined) this.reset()
    else this.cb(() => h.onServerError!(this, why))
  }

  /** The server sent FIN (the real session's default passes it on when the handler has no onServerEnd). */
  serverEnd(): void {
    if (this.state === 'control' && !this.bound(false) && this.handler.onServerEnd !== undefined) this.cb(h => h.onServerEnd!(this))
  }

  /** Completes a held splice. */
  completeSplice(): void {
    if (this.state !== 'splicing') throw new Error(`fake: completeSplice() while ${this.state}`)
    this.state = 'spliced'
    this.cb(h => h.onSpliced?.(this))
  }

  /** Fails a held splice: back to control mode, `onSpliceFailed`. */
  failSplice(why = 'test'): void {
    if (this.state !== 'splicing') throw new Error(`fake: failSplice() while ${this.state}`)
    this.state = 'control'
    this.splices.pop()
    this.unspliceLeft = null
    this.cb(h => h.onSpliceFailed?.(this, `splice failed: ${why}`))
  }

  /** Ops of the calls, for order checks: `['connect', 'writeToServer', 'splice', ...]`. */
  ops(): string[] {
    return this.calls.map(c => c.op)
  }

  /** Bytes of every writeToClient call, concatenated. */
  written(op: 'writeToClient' | 'writeToServer'): string {
    return this.calls.filter(c => c.op === op).map(c => latin1((c as { data: Uint8Array }).data)).join('')
  }

  // ------------------------------------------------------------- internals

  private bound(fromClient: boolean): boolean {
    if (this.pendingSplice !== null || this.state !== 'control' || this.relaying) return true
    return (fromClient ? this.handler.onClientData : this.handler.onServerData) === undefined
  }

  private sendToClient(d: Uint8Array): void {
    this.toClient.push(d)
    this.bytes.toClient += d.length
  }

  private sendToServer(d: Uint8Array): void {
    this.toServer.push(d)
    this.bytes.toServer += d.length
  }

  private maybeSplice(): void {
    const p = this.pendingSplice
    if (p === null || this.state !== 'control' || this.bytes.toClient < p.at) return
    this.pendingSplice = null
    this.splices.push(p.opts)
    this.unspliceLeft = p.opts.unspliceAfterServerBytes ?? null
    this.state = this.holdSplice ? 'splicing' : 'spliced'
  }

  private backToControl(): void {
    this.state = 'control'
    this.unspliceLeft = null
    this.cb(h => h.onUnspliced?.(this))
  }

  private cb(fn: (h: ProxyHandler) => void): void {
    if (this.detached || this.state === 'closed') return
    fn(this.handler)
  }

  private expectControl(what: string): void {
    if (this.state !== 'control') throw new Error(`fake: ${what}() needs control mode, the session is ${this.state}`)
  }
}

/** Splits `data` into random pieces of 1..max bytes (a quarter of them single bytes). */
export function chunks(data: Uint8Array, rng: Random, max = 8): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let i = 0; i < data.length;) {
    const n = rng.chance(0.25) ? 1 : rng.int(1, max)
    out.push(data.slice(i, i + n))
    i += n
  }
  return out
}

/** Text → bytes, one byte per char code. */
export function ascii(s: string): Uint8Array {
  const b = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff
  return b
}

/** Bytes → text, one char per byte. */
export function latin1(b: Uint8Array): string {
  let s = ''
  for (const c of b) s += String.fromCharCode(c)
  return s
}

/** Concatenates byte arrays. */
export function cat(...parts: Uint8Array[]): Uint8Array {
  const r = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    r.set(p, at)
    at += p.length
  }
  return r
}
