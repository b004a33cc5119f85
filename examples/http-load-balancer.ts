/**
 * Example: an HTTP/1.1 load balancer by Host and URL, with keep-alive, from a config file
 * (`examples/configs/http-lb-memory.jsonc`), on memory wires.
 *
 * ```
 *   client 10.0.0.2 ── lan ── [forwarder: HTTP on 80] ── wan ── 10.0.1.2 servers :8081 :8082 (api.example/v1)
 *                                                                              :8083 (*.example, default)
 * ```
 * Each response body is spliced (the proxy's TCBs drop out while the body flows) and
 * unspliced at its last byte, so the proxy reads the next request on the same keep-alive
 * connection in control mode. Run: `node dist/examples/http-load-balancer.js`.
 * @module
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseIPv4 } from '../core/bytes.js'
import { ManualClock } from '../core/clock.js'
import { Scheduler } from '../core/scheduler.js'
import { parseConfig } from '../bin/config/schema.js'
import { startForwarder } from '../bin/config/runtime.js'
import { createLogger } from '../bin/log.js'
import { parseRequestHead } from '../stages/proxy/handlers/http.js'
import { exampleConfig, peerHost, Stream } from './lib/net.js'

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s)

/** The body server `port` sends for `path`: `size` bytes of its name and the path, repeated. */
export function body(port: number, path: string, size: number): Uint8Array {
  const unit = ascii(`server ${port} ${path}\n`)
  const b = new Uint8Array(size)
  for (let i = 0; i < size; i++) b[i] = unit[i % unit.length]!
  return b
}

/** One response as the client saw it. */
export interface Exchange {
  /** Host header sent. */
  host: string
  /** Path requested. */
  path: string
  /** Status received. */
  status: number
  /** The server port that answered (from the body). */
  server: number
  /** The body matched what that server sends for that path. */
  bodyOk: boolean
}

/** What the example saw. */
export interface LoadBalancerResult {
  /** Responses per client connection, in order. */
  connections: Exchange[][]
  /** Splices and unsplices the forwarder completed. */
  splices: number
  /** See splices. */
  unsplices: number
}

/** Runs the example in virtual time; each response body is `size` bytes. */
export async function main(size = 200_000, print = true): Promise<LoadBalancerResult> {
  const file = exampleConfig('http-lb-memory.jsonc')
  const cfg = parseConfig(readFileSync(file, 'utf8'), file)
  const sched = new Scheduler({ clock: new ManualClock() })
  const fw = await startForwarder(cfg, { scheduler: sched, log: createLogger(print ? 'info' : 'silent') })
  const client = peerHost(fw, 'lan', '10.0.0.2/24', '10.0.0.1')
  const server = peerHost(fw, 'wan', '10.0.1.2/24', '10.0.1.1')
  // Three keep-alive HTTP servers on one host.
  for (const port of [8081, 8082, 8083]) {
    server.tcp.listen(port, conn => {
      let buf = new Uint8Array(0)
      const s: Stream = new Stream(conn, chunk => {
        const b = new Uint8Array(buf.length + chunk.length)
        b.set(buf)
        b.set(chunk, buf.length)
        buf = b
        for (;;) {
          const r = parseRequestHead(buf)
          if (r.kind !== 'ok') return
          buf = buf.slice(r.length)
          const payload = body(port, r.head.path, size)
          s.write(ascii(`HTTP/1.1 200 OK\r\nContent-Length: ${payload.length}\r\nContent-Type: text/plain\r\n\r\n`))
          s.write(payload)
        }
      })
      conn.stage.tcb.events.end = () => s.end()
    })
  }

  /** Sends `requests` one after the other on one keep-alive connection. */
  const session = (requests: [host: string, path: string][]): { done: () => boolean; results: Exchange[] } => {
    const results: Exchange[] = []
    let buf = new Uint8Array(0)
    let next = 0
    const conn = client.tcp.connect(parseIPv4('10.0.0.1'), 80)
    const send = (s: Stream): void => {
      const [host, path] = requests[next]!
      s.write(ascii(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`))
    }
    const s = new Stream(conn, chunk => {
      const b = new Uint8Array(buf.length + chunk.length)
      b.set(buf)
      b.set(chunk, buf.length)
      buf = b
      const end = findHeadEnd(buf)
      if (end < 0) return
      const head = new TextDecoder().decode(buf.subarray(0, end))
      const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0)
      if (buf.length < end + len) return
      const bodyBytes = buf.subarray(end, end + len)
      const [host, path] = requests[next]!
      const server = Number(/^server (\d+) /.exec(new TextDecoder().decode(bodyBytes.subarray(0, 32)))?.[1] ?? 0)
      const want = createHash('sha256').update(body(server, path, size)).digest('hex')
      results.push({ host, path, status: Number(head.split(' ')[1]), server, bodyOk: createHash('sha256').update(bodyBytes).digest('hex') === want })
      buf = buf.slice(end + len)
      next++
      if (next < requests.length) send(s)
      else s.end()
    })
    send(s)
    return { done: () => s.closed || s.error !== null, results }
  }

  const conns = [
    session([['api.example', '/v1/users'], ['api.example', '/v1/orders'], ['api.example', '/v1/users?page=2']]),
    session([['www.example', '/index.html'], ['img.example', '/logo.png']]),
    session([['api.example', '/v1/health']]),
  ]
  sched.runUntil(() => conns.every(c => c.done()), sched.now() + 120_000)
  const p = fw.proxies.get('web')!
  const result: LoadBalancerResult = { connections: conns.map(c => c.results), splices: p.stats.splices, unsplices: p.stats.unsplices }
  if (print) {
    result.connections.forEach((c, i) => {
      console.log(`connection ${i + 1} (keep-alive):`)
      for (const e of c) console.log(`  GET ${e.host}${e.path} -> ${e.status} from :${e.server}, body ${e.bodyOk ? 'ok' : 'MISMATCH'}`)
    })
    console.log(`splices ${result.splices}, unsplices ${result.unsplices}`)
  }
  await fw.close()
  return result
}

function findHeadEnd(b: Uint8Array): number {
  for (let i = 3; i < b.length; i++) if (b[i - 3] === 13 && b[i - 2] === 10 && b[i - 1] === 13 && b[i] === 10) return i + 1
  return -1
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const r = await main()
  process.exitCode = r.connections.flat().every(e => e.bodyOk && e.status === 200) ? 0 : 1
}
