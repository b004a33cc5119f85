/**
 * Example: a transparent L4 proxy from a config file
 * (`examples/configs/transparent-memory.jsonc`), on memory wires.
 *
 * ```
 *   client 10.0.0.2 ── lan ── [forwarder 10.0.0.1 | 10.0.1.1] ── wan ── server 10.0.1.2
 *   (default route via 10.0.0.1)
 *     connect 10.0.1.2:80   intercepted: the forwarder answers as 10.0.1.2:80, connects to
 *                           10.0.1.2:80 from 10.0.1.1, relays the server's first 1000 bytes,
 *                           then splices to IP/FWD
 *     connect 10.0.1.2:7000 no rule: routed unchanged by the router path
 *     connect 10.0.1.9:80   intercepted, denied by the proxy's rules: the client gets a RST
 * ```
 * The client never learns of the proxy: it connects to the server's address. The server
 * sees the proxy's address as its peer on the intercepted connection, the client's on the
 * routed one. Run: `node dist/examples/transparent-proxy.js`.
 * @module
 */
import { readFileSync } from 'node:fs'
import { ManualClock } from '../core/clock.js'
import { Scheduler } from '../core/scheduler.js'
import { parseConfig } from '../bin/config/schema.js'
import { startForwarder } from '../bin/config/runtime.js'
import { createLogger } from '../bin/log.js'
import { exampleConfig, peerHost, transfer } from './lib/net.js'

/** What the example saw. */
export interface TransparentResult {
  /** The intercepted transfer arrived whole both ways. */
  interceptedOk: boolean
  /** The address the server saw on the intercepted connection (the proxy's). */
  interceptedPeer: string | null
  /** The routed transfer arrived whole both ways. */
  routedOk: boolean
  /** The address the server saw on the routed connection (the client's). */
  routedPeer: string | null
  /** How the denied connection ended at the client ('reset'). */
  denied: string | null
  /** Sessions the proxy accepted (intercepted), and splices it completed. */
  accepted: number
  /** See accepted. */
  splices: number
  /** The spliced session's path while it ran (shows the IP/FWD stage). */
  splicedPath: string
}

/** Runs the example in virtual time with `bytes` each way per transfer. */
export async function main(bytes = 1_000_000, print = true): Promise<TransparentResult> {
  const file = exampleConfig('transparent-memory.jsonc')
  const sched = new Scheduler({ clock: new ManualClock() })
  const fw = await startForwarder(parseConfig(readFileSync(file, 'utf8'), file), { scheduler: sched, log: createLogger(print ? 'info' : 'silent') })
  const client = peerHost(fw, 'lan', '10.0.0.2/24', '10.0.0.1')
  const server = peerHost(fw, 'wan', '10.0.1.2/24', '10.0.1.1')
  const tp = fw.proxies.get('tp')!
  const intercepted = transfer(client.tcp, server.tcp, '10.0.1.2', 80, 80, bytes)
  const routed = transfer(client.tcp, server.tcp, '10.0.1.2', 7000, 7000, bytes)
  let splicedPath = ''
  sched.runUntil(() => {
    if (splicedPath === '' && tp.stats.spliced > 0) splicedPath = [...tp.sessions.values()][0]?.pathA.describe() ?? ''
    return intercepted.done() && routed.done()
  }, sched.now() + 300_000)
  // Nobody is at 10.0.1.9: the proxy's rules refuse it before any connect.
  const denied = transfer(client.tcp, server.tcp, '10.0.1.9', 80, 81, 1000)
  sched.runUntil(() => denied.done(), sched.now() + 10_000)
  const r: TransparentResult = {
    interceptedOk: intercepted.intact(), interceptedPeer: intercepted.serverPeer(),
    routedOk: routed.intact(), routedPeer: routed.serverPeer(),
    denied: denied.clientError(), accepted: tp.stats.accepted, splices: tp.stats.splices, splicedPath,
  }
  if (print) {
    console.log(`intercepted 10.0.1.2:80: ${intercepted.up()} up, ${intercepted.down()} down, ${r.interceptedOk ? 'intact' : 'BROKEN'}, server saw ${r.interceptedPeer}, spliced ${r.splices} time(s)`)
    console.log(`  spliced path: ${splicedPath}`)
    console.log(`routed 10.0.1.2:7000: ${routed.up()} up, ${routed.down()} down, ${r.routedOk ? 'intact' : 'BROKEN'}, server saw ${r.routedPeer}`)
    console.log(`denied 10.0.1.9:80: client connection ${r.denied ?? 'not reset'}`)
  }
  await fw.close()
  return r
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const r = await main()
  process.exitCode = r.interceptedOk && r.routedOk && r.denied === 'reset' ? 0 : 1
}
