/**
 * A tiny HTTP/1.1 origin server and a keep-alive client on our TCP (memory-wire tests of
 * the HTTP proxy). Requests: `GET /bytes/<n>/<seed>` answers `n` seeded bytes;
 * `POST /bytes/<n>/<seed>` also reads a Content-Length body and reports its SHA-256 in
 * `X-Body-Sha256`. Every response names its server in `X-Server`.
 */
import { createHash } from 'node:crypto'
import { Random } from '../../core/random.js'
import type { TcpConnection } from '../../stages/tcp/module.js'

/** The body the server sends for `/bytes/<n>/<seed>`. */
export function bodyFor(n: number, seed: number): Uint8Array {
  return new Random(seed).bytes(new Uint8Array(n))
}

/** SHA-256 hex. */
export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

const enc = new TextEncoder()
const dec = new TextDecoder('latin1')

/** Writes `chunks` to a connection as its send buffer frees; `then` once all went in. */
class Writer {
  private q: Uint8Array[] = []
  constructor(private readonly conn: TcpConnection) {}
  push(b: Uint8Array): void {
    if (b.length > 0) this.q.push(b)
    this.flush()
  }
  flush(): void {
    const tcb = this.conn.stage.tcb
    while (this.q.length > 0) {
      const c = this.q[0]!
      const n = tcb.write(c)
      if (n === c.length) this.q.shift()
      else {
        this.q[0] = c.subarray(n)
        return
      }
    }
  }
}

/** Finds `\r\n\r\n` in `b`; returns the index after it, or -1. */
function headEnd(b: Uint8Array): number {
  for (let i = 3; i < b.length; i++) if (b[i] === 10 && b[i - 1] === 13 && b[i - 2] === 10 && b[i - 3] === 13) return i + 1
  return -1
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const o = new Uint8Array(a.length + b.length)
  o.set(a)
  o.set(b, a.length)
  return o
}

/** The origin server on one accepted connection. */
export class HttpOrigin {
  requests = 0
  private buf: Uint8Array = new Uint8Array(0)
  private readonly w: Writer
  private readonly rbuf = new Uint8Array(65536)
  constructor(private readonly conn: TcpConnection, private readonly name: string) {
    this.w = new Writer(conn)
    const tcb = conn.stage.tcb
    tcb.events = { writable: () => this.w.flush(), end: () => tcb.shutdown() }
    conn.stage.app = { onData: () => this.read() }
  }
  private read(): void {
    const tcb = this.conn.stage.tcb
    for (let n; (n = tcb.read(this.rbuf)) > 0;) this.buf = concat(this.buf, this.rbuf.subarray(0, n))
    for (;;) {
      const e = headEnd(this.buf)
      if (e < 0) return
      const head = dec.decode(this.buf.subarray(0, e))
      const [line] = head.split('\r\n')
      const [method, target] = line!.split(' ')
      const cl = /\r\ncontent-length: *(\d+)/i.exec(head)
      const bodyLen = cl ? Number(cl[1]) : 0
      if (this.buf.length < e + bodyLen) return
      const body = this.buf.subarray(e, e + bodyLen)
      this.buf = this.buf.slice(e + bodyLen)
      this.requests++
      const m = /^\/bytes\/(\d+)\/(\d+)$/.exec(target ?? '')
      if (m === null) {
        this.w.push(enc.encode('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'))
        continue
      }
      const out = bodyFor(Number(m[1]), Number(m[2]))
      const extra = method === 'POST' ? `X-Body-Sha256: ${sha256(body)}\r\n` : ''
      this.w.push(enc.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${out.length}\r\nX-Server: ${this.name}\r\n${extra}\r\n`))
      this.w.push(out)
    }
  }
}

/** One request of an {@link HttpKeepAliveClient}. */
export interface HttpReq {
  host: string
  size: number
  seed: number
  /** A POST body, or none (GET). */
  body?: Uint8Array
}

/** A response as the client saw it. */
export interface HttpRes {
  status: number
  server: string
  bodySha: string
  bodyLen: number
  /** The origin's digest of the POST body. */
  gotSha: string | null
}

/** Sends `reqs` one after the other on one connection (each after the previous response). */
export class HttpKeepAliveClient {
  readonly responses: HttpRes[] = []
  error: string | null = null
  private buf: Uint8Array = new Uint8Array(0)
  private readonly w: Writer
  private readonly rbuf = new Uint8Array(65536)
  private i = 0
  constructor(private readonly conn: TcpConnection, private readonly reqs: readonly HttpReq[]) {
    this.w = new Writer(conn)
    const tcb = conn.stage.tcb
    tcb.events = { connected: () => this.send(), writable: () => this.w.flush(), error: why => { this.error = why } }
    conn.stage.app = { onData: () => this.read() }
  }
  get done(): boolean {
    return this.responses.length === this.reqs.length
  }
  private send(): void {
    const r = this.reqs[this.i]
    if (r === undefined) return
    const method = r.body ? 'POST' : 'GET'
    const len = r.body ? `Content-Length: ${r.body.length}\r\n` : ''
    this.w.push(enc.encode(`${method} /bytes/${r.size}/${r.seed} HTTP/1.1\r\nHost: ${r.host}\r\n${len}\r\n`))
    if (r.body) this.w.push(r.body)
  }
  /** The response being read: its head fields and the body bytes still to come. */
  private cur: { res: HttpRes; left: number; hash: ReturnType<typeof createHash> } | null = null
  private read(): void {
    const tcb = this.conn.stage.tcb
    for (let n; (n = tcb.read(this.rbuf)) > 0;) {
      let chunk: Uint8Array = this.rbuf.subarray(0, n)
      while (chunk.length > 0) {
        if (this.cur === null) {
          this.buf = concat(this.buf, chunk)
          chunk = new Uint8Array(0)
          const e = headEnd(this.buf)
          if (e < 0) break
          const head = dec.decode(this.buf.subarray(0, e))
          const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0)
          const res: HttpRes = {
            status: Number(head.split(' ')[1]),
            server: /\r\nx-server: *(\S+)/i.exec(head)?.[1] ?? '-',
            bodySha: '',
            bodyLen: len,
            gotSha: /\r\nx-body-sha256: *(\S+)/i.exec(head)?.[1] ?? null,
          }
          chunk = this.buf.slice(e)
          this.buf = new Uint8Array(0)
          this.cur = { res, left: len, hash: createHash('sha256') }
        }
        const c = this.cur
        const take = Math.min(c.left, chunk.length)
        c.hash.update(chunk.subarray(0, take))
        c.left -= take
        chunk = chunk.subarray(take)
        if (c.left === 0) this.finish(c.res, c.hash.digest('hex'))
      }
    }
  }
  private finish(res: HttpRes, sha: string): void {
    const tcb = this.conn.stage.tcb
    this.cur = null
    res.bodySha = sha
    this.responses.push(res)
    this.i++
    if (this.done) tcb.shutdown()
    else this.send()
  }
}
