/**
 * Example: a SOCKS5 firewall with splicing, from a config file, on memory wires.
 *
 * ```
 *   client 10.0.0.2 ── lan ── [forwarder: SOCKS5 on 1080, rules] ── wan ── 10.0.1.2 server (port 9000)
 * ```
 * The config (`examples/configs/socks5-memory.jsonc`) allows 10.0.1.0/24 and denies
 * 10.0.1.66. The client asks for 10.0.1.2:9000 (allowed: the proxy replies, then splices
 * to IP/FWD and the rest of the transfer never touches a TCB of the proxy) and for
 * 10.0.1.66:9000 (denied: REP X'02', the connection closes). Run:
 * `node dist/examples/socks5-firewall.js`.
 * @module
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseIPv4 } from '../core/bytes.js'
import { ManualClock } from '../core/clock.js'
import { Random } from '../core/random.js'
import { Scheduler } from '../core/scheduler.js'
import { parseConfig } from '../bin/config/schema.js'
import { startForwarder } from '../bin/config/runtime.js'
import { createLogger } from '../bin/log.js'
import { buildGreeting, buildRequest, Socks5Cmd } from '../stages/proxy/handlers/socks5.js'
import { exampleConfig, peerHost, Stream } from './lib/net.js'

/** What the example saw. */
export interface FirewallResult {
  /** The allowed request's SOCKS reply code (0: succeeded). */
  allowedReply: number
  /** Bytes echoed back through the spliced connection, and whether their digest matched. */
  echoed: number
  /** See echoed. */
  digestOk: boolean
  /** The denied request's reply code (2: not allowed by the ruleset). */
  deniedReply: number
  /** Splices the forwarder completed. */
  splices: number
  /** The proxy's path once spliced. */
  splicedPath: string
}

/** Runs the example (in virtual time); `bytes` of payload are echoed through the splice. */
export async function main(bytes = 1_000_000, print = true): Promise<FirewallResult> {
  const file = exampleConfig('socks5-memory.jsonc')
  const cfg = parseConfig(readFileSync(file, 'utf8'), file)
  const sched = new Scheduler({ clock: new ManualClock() })
  const fw = await startForwarder(cfg, { scheduler: sched, log: createLogger(print ? 'info' : 'silent') })
  const client = peerHost(fw, 'lan', '10.0.0.2/24', '10.0.0.1')
  const server = peerHost(fw, 'wan', '10.0.1.2/24', '10.0.1.1')
  // An echo server.
  server.tcp.listen(9000, conn => {
    const s: Stream = new Stream(conn, chunk => s.write(chunk.slice()))
    conn.stage.tcb.events.end = () => s.end()
  })

  /** Opens a SOCKS5 CONNECT to ip:9000; resolves with the reply code and the stream. */
  const socks = (ip: string, payload: Uint8Array | null): { done: () => boolean; result: () => { rep: number; echoed: number; digest: string } } => {
    let head = new Uint8Array(0)
    let rep = -1
    const hash = createHash('sha256')
    let echoed = 0
    const conn = client.tcp.connect(parseIPv4('10.0.0.1'), 1080)
    const s = new Stream(conn, chunk => {
      if (rep < 0) {
        const b = new Uint8Array(head.length + chunk.length)
        b.set(head)
        b.set(chunk, head.length)
        head = b
        if (head.length < 2 + 10 && !(head.length >= 4 && head[3] !== 0)) return
        rep = head[3]! // method reply (2 bytes), then VER REP RSV ATYP ...
        chunk = head.subarray(12)
        if (rep === 0 && payload !== null) {
          s.write(payload)
          s.end()
        }
      }
      hash.update(chunk)
      echoed += chunk.length
    })
    // Greeting (no authentication) and the request at once; the proxy reads them in order.
    s.write(buildGreeting([0]))
    s.write(buildRequest(Socks5Cmd.Connect, { type: 'ipv4', ip: parseIPv4(ip) }, 9000))
    return { done: () => {
      if (s.ended && rep !== 0) s.end() // refused: close our side too
      return s.closed || (s.ended && rep !== 0)
    }, result: () => ({ rep, echoed, digest: hash.digest('hex') }) }
  }

  const payload = new Random(7).bytes(new Uint8Array(bytes))
  const ok = socks('10.0.1.2', payload)
  let splicedPath = ''
  sched.runUntil(() => {
    const p = fw.proxies.get('socks')!
    if (splicedPath === '' && p.stats.spliced > 0) splicedPath = p.describe()[0] ?? ''
    return ok.done()
  }, sched.now() + 120_000)
  const denied = socks('10.0.1.66', null)
  sched.runUntil(() => denied.done(), sched.now() + 10_000)
  const a = ok.result()
  const d = denied.result()
  const result: FirewallResult = {
    allowedReply: a.rep,
    echoed: a.echoed,
    digestOk: a.echoed === bytes && a.digest === createHash('sha256').update(payload).digest('hex'),
    deniedReply: d.rep,
    splices: fw.proxies.get('socks')!.stats.splices,
    splicedPath,
  }
  if (print) {
    console.log(`allowed 10.0.1.2:9000: reply ${a.rep}, ${a.echoed} bytes echoed through the splice, digest ${result.digestOk ? 'ok' : 'MISMATCH'}`)
    console.log(`denied 10.0.1.66:9000: reply ${d.rep} (X'02': connection not allowed by ruleset)`)
    console.log(`spliced path: ${splicedPath.split('\n').map(l => l.trim()).join(' | ')}`)
  }
  await fw.close()
  return result
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const r = await main()
  process.exitCode = r.digestOk && r.deniedReply === 2 ? 0 : 1
}
