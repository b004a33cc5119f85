/**
 * Example: an L4 proxy (a plug gateway) beside an IP router, from a config file
 * (`examples/configs/l4-memory.jsonc`), on memory wires.
 *
 * ```
 *   client 10.0.0.2 ── lan ── [forwarder 10.0.0.1: :5000 → 10.0.1.2:5000, spliced after 1000 bytes;
 *                              everything else for 10.0.1.0/24: routed] ── wan ── server 10.0.1.2
 * ```
 * One transfer goes through the proxy (relayed for the server's first 1000 bytes, then
 * spliced to FWD), one straight through the router path; both check SHA-256 digests.
 * Run: `node dist/examples/l4-proxy.js`.
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
export interface L4Result {
  /** The proxied transfer arrived whole both ways. */
  proxiedOk: boolean
  /** The routed transfer arrived whole both ways. */
  routedOk: boolean
  /** Splices completed by the proxy. */
  splices: number
  /** Datagrams the router path forwarded (frames entering either end). */
  routedFrames: number
}

/** Runs the example in virtual time with `bytes` each way per transfer. */
export async function main(bytes = 1_000_000, print = true): Promise<L4Result> {
  const file = exampleConfig('l4-memory.jsonc')
  const sched = new Scheduler({ clock: new ManualClock() })
  const fw = await startForwarder(parseConfig(readFileSync(file, 'utf8'), file), { scheduler: sched, log: createLogger(print ? 'info' : 'silent') })
  const client = peerHost(fw, 'lan', '10.0.0.2/24', '10.0.0.1')
  const server = peerHost(fw, 'wan', '10.0.1.2/24', '10.0.1.1')
  const proxied = transfer(client.tcp, server.tcp, '10.0.0.1', 5000, 5000, bytes)
  const routed = transfer(client.tcp, server.tcp, '10.0.1.2', 7000, 7000, bytes)
  sched.runUntil(() => proxied.done() && routed.done(), sched.now() + 300_000)
  const router = fw.routers[0]!
  const r: L4Result = {
    proxiedOk: proxied.intact(),
    routedOk: routed.intact(),
    splices: fw.proxies.get('l4')!.stats.splices,
    routedFrames: router.ends[0].inPkts + router.ends[1].inPkts,
  }
  if (print) {
    console.log(`proxied 10.0.0.1:5000 -> 10.0.1.2:5000: ${proxied.up()} up, ${proxied.down()} down, ${r.proxiedOk ? 'intact' : 'BROKEN'}, spliced ${r.splices} time(s)`)
    console.log(`routed 10.0.1.2:7000: ${routed.up()} up, ${routed.down()} down, ${r.routedOk ? 'intact' : 'BROKEN'}, ${r.routedFrames} frames through ${router.describe()}`)
  }
  await fw.close()
  return r
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const r = await main()
  process.exitCode = r.proxiedOk && r.routedOk ? 0 : 1
}
