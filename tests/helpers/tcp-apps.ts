/**
 * Small servers on our TCP for interop tests: an HTTP/1.1 server that answers every GET
 * with N deterministic bytes (curl fetches it), and an iperf3 server speaking enough of
 * iperf3's control protocol (3.x: cookie, states, JSON exchange) for `iperf3 -c`.
 */
import { createHash } from 'node:crypto'
import type { TcpModule } from '../../stages/tcp/module.js'
import { TcpServer, type TcpSocket } from '../../stages/tcp/socket.js'
import { xorshiftFill } from './tcp-kernel.js'

/** The body the HTTP server sends for `n` bytes, and its sha256. */
export function httpBody(n: number): { body: Buffer; digest: string } {
  const body = Buffer.alloc(n)
  xorshiftFill({ x: 0x12345678 }, body)
  return { body, digest: createHash('sha256').update(body).digest('hex') }
}

/** Serves `GET /<n>` with n bytes of {@link httpBody} and `Connection: close`. */
export function httpServer(tcp: TcpModule, port: number): TcpServer {
  const server = new TcpServer(tcp).listen(port)
  server.on('connection', (s: TcpSocket) => {
    let req = ''
    s.setEncoding('latin1')
    s.on('data', (d: string) => {
      req += d
      const end = req.indexOf('\r\n\r\n')
      if (end < 0) return
      const m = /^GET \/(\d*) HTTP\/1\.[01]\r\n/.exec(req)
      if (!m) {
        s.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
        return
      }
      const n = Number(m[1] || '0')
      const { body } = httpBody(n)
      s.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${n}\r\nConnection: close\r\n\r\n`)
      s.end(body)
      req = ''
    })
    s.on('error', () => {})
  })
  return server
}

// iperf3 control states (iperf_api.h).
const TEST_START = 1
const TEST_RUNNING = 2
const TEST_END = 4
const PARAM_EXCHANGE = 9
const CREATE_STREAMS = 10
const EXCHANGE_RESULTS = 13
const DISPLAY_RESULTS = 14
const IPERF_DONE = 16
const COOKIE_SIZE = 37

/** Reads exactly `n` bytes from a socket (buffering what arrives). */
class Reader {
  private buf = Buffer.alloc(0)
  private waiter: (() => void) | null = null
  ended = false
  constructor(readonly s: TcpSocket) {
    s.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      this.waiter?.()
    })
    s.on('end', () => {
      this.ended = true
      this.waiter?.()
    })
  }
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`iperf3: connection ended while waiting for ${n} bytes`)
      await new Promise<void>(r => (this.waiter = r))
      this.waiter = null
    }
    const out = this.buf.subarray(0, n)
    this.buf = this.buf.subarray(n)
    return out
  }
}

/** What the iperf3 server saw. */
export interface IperfResult {
  params: Record<string, unknown>
  bytes: number
  seconds: number
  clientResults: Record<string, unknown>
}

/** Serves one iperf3 test on `port` (client sends, we receive); resolves when the client is done. */
export function iperf3Server(tcp: TcpModule, port: number): { server: TcpServer; done: Promise<IperfResult> } {
  const server = new TcpServer(tcp).listen(port)
  const done = (async (): Promise<IperfResult> => {
    const ctl = await server.accept()
    const r = new Reader(ctl)
    const cookie = (await r.read(COOKIE_SIZE)).toString('latin1')
    ctl.write(Buffer.of(PARAM_EXCHANGE))
    const plen = (await r.read(4)).readUInt32BE(0)
    const params = JSON.parse((await r.read(plen)).toString('utf8')) as Record<string, unknown>
    const streams = Number(params.parallel ?? 1)
    ctl.write(Buffer.of(CREATE_STREAMS))
    let bytes = 0
    const data: TcpSocket[] = []
    for (let i = 0; i < streams; i++) {
      const s = await server.accept()
      const dr = new Reader(s)
      const c = (await dr.read(COOKIE_SIZE)).toString('latin1')
      if (c !== cookie) throw new Error('iperf3: data stream with a foreign cookie')
      s.removeAllListeners('data')
      s.on('data', (d: Buffer) => (bytes += d.length))
      s.on('error', () => {})
      data.push(s)
    }
    const t0 = performance.now()
    ctl.write(Buffer.of(TEST_START))
    ctl.write(Buffer.of(TEST_RUNNING))
    const st = (await r.read(1))[0]
    if (st !== TEST_END) throw new Error(`iperf3: expected TEST_END, got state ${st}`)
    const seconds = (performance.now() - t0) / 1000
    // Let the last data in flight arrive before reporting.
    await new Promise(res => setTimeout(res, 100))
    ctl.write(Buffer.of(EXCHANGE_RESULTS))
    const clen = (await r.read(4)).readUInt32BE(0)
    const clientResults = JSON.parse((await r.read(clen)).toString('utf8')) as Record<string, unknown>
    const ours = JSON.stringify({
      cpu_util_total: 0, cpu_util_user: 0, cpu_util_system: 0, sender_has_retransmits: -1,
      streams: data.map((_, i) => ({ id: i + 1, bytes, retransmits: -1, jitter: 0, errors: 0, packets: 0, start_time: 0, end_time: seconds })),
    })
    const len = Buffer.alloc(4)
    len.writeUInt32BE(Buffer.byteLength(ours))
    ctl.write(len)
    ctl.write(ours)
    ctl.write(Buffer.of(DISPLAY_RESULTS))
    const fin = (await r.read(1))[0]
    if (fin !== IPERF_DONE) throw new Error(`iperf3: expected IPERF_DONE, got state ${fin}`)
    ctl.end()
    for (const s of data) s.end()
    server.close()
    return { params, bytes, seconds, clientResults }
  })()
  return { server, done }
}
