/**
 * A client, a proxy and a server, all with our TCP, on two (optionally impaired) memory
 * wires, in virtual time:
 * ```
 *   client 10.0.0.2 ── wire 1 ── 10.0.0.1 proxy 10.0.1.1 ── wire 2 ── 10.0.1.2 server
 * ```
 */
import { parseIPv4 } from '../../core/bytes.js'
import { ManualClock } from '../../core/clock.js'
import { Scheduler } from '../../core/scheduler.js'
import { MemoryWire, type Impairments } from '../../drivers/memory/wire.js'
import { Host, type Interface } from '../../paths/host.js'
import { ProxyForwarder, type ProxyForwarderOptions } from '../../paths/proxy/forwarder.js'
import type { ProxyHandler } from '../../stages/proxy/session.js'
import { TcpModule } from '../../stages/tcp/module.js'
import type { TcbConfig } from '../../stages/tcp/tcb.js'
import { Pump } from './tcp-net.js'

export const CLIENT = '10.0.0.2'
export const PROXY_A = '10.0.0.1'
export const PROXY_B = '10.0.1.1'
export const SERVER = '10.0.1.2'
export const PROXY_PORT = 1080
export const SERVER_PORT = 8080

/**
 * Static ARP both ways between two interfaces on one wire: a corrupted ARP reply cannot be
 * detected (ARP has no checksum) and would poison the cache; these tests are about TCP.
 */
export function staticArp(x: Interface, y: Interface): void {
  x.arp.setStatic(y.address, y.mac)
  y.arp.setStatic(x.address, x.mac)
}

/** Options of {@link proxyNet}. */
export interface ProxyNetOptions {
  seed?: number
  /** Impairments on wire 1 (client side) and wire 2 (server side). */
  impair1?: Impairments
  impair2?: Impairments
  client?: TcbConfig
  proxy?: TcbConfig
  server?: TcbConfig
  mtu1?: number
  mtu2?: number
  forwarder?: Partial<ProxyForwarderOptions>
  /** One-way delay of each wire when no impairment is given [2 ms]. */
  delayMs?: number
}

/** Builds the network and a forwarder running `handler`. */
export function proxyNet(handler: ProxyHandler, o: ProxyNetOptions = {}) {
  const clock = new ManualClock()
  const sched = new Scheduler({ clock })
  const seed = o.seed ?? 1
  const delay: Impairments = { delayMs: o.delayMs ?? 2 }
  const w1 = new MemoryWire(sched, { seed, a: { mtu: o.mtu1 ?? 1500 }, b: { mtu: o.mtu1 ?? 1500 }, impair: o.impair1 ?? delay })
  const w2 = new MemoryWire(sched, { seed: seed + 1, a: { mtu: o.mtu2 ?? 1500 }, b: { mtu: o.mtu2 ?? 1500 }, impair: o.impair2 ?? delay })
  const c = new Host(sched, { name: 'client' })
  const p = new Host(sched, { name: 'proxy' })
  const s = new Host(sched, { name: 'server' })
  const ic = c.addInterface(w1.a, { address: `${CLIENT}/24`, announce: false })
  const ip1 = p.addInterface(w1.b, { address: `${PROXY_A}/24`, announce: false })
  const ip2 = p.addInterface(w2.a, { address: `${PROXY_B}/24`, announce: false })
  const is = s.addInterface(w2.b, { address: `${SERVER}/24`, announce: false })
  staticArp(ic, ip1)
  staticArp(ip2, is)
  const isnSecret = new Uint8Array(16).fill(3)
  const tcpC = new TcpModule(c, { config: o.client ?? {}, isnSecret })
  const tcpP = new TcpModule(p, { config: o.proxy ?? {}, isnSecret })
  const tcpS = new TcpModule(s, { config: o.server ?? {}, isnSecret })
  const fw = new ProxyForwarder({ host: p, tcp: tcpP, port: PROXY_PORT, handler, ...(o.proxy ? { tcb: o.proxy } : {}), ...o.forwarder })
  return { clock, sched, w1, w2, c, p, s, tcpC, tcpP, tcpS, fw }
}

/** The result of {@link runProxied}. */
export interface ProxiedRun {
  ok: boolean
  client: Pump
  server: Pump | null
}

/**
 * Client sends `up` to the server through the proxy, the server sends `down` back, both
 * close; runs until both ends saw the other's FIN and closed, or `limitMs` of virtual time.
 * `during` runs every `stepMs` of virtual time (to splice, unsplice, ...), with both pumps.
 */
export function runProxied(net: ReturnType<typeof proxyNet>, up: Uint8Array, down: Uint8Array, opts: { limitMs?: number; stepMs?: number; during?: (now: number, client: Pump, server: Pump | null) => void } = {}): ProxiedRun {
  let server: Pump | null = null
  net.tcpS.listen(SERVER_PORT, conn => {
    server = new Pump(conn, down)
  })
  const conn = net.tcpC.connect(parseIPv4(PROXY_A), PROXY_PORT)
  const client = new Pump(conn, up)
  const done = (): boolean => {
    const s = server as Pump | null
    return s !== null && client.gotEnd && s.gotEnd && client.closed && s.closed
  }
  const stop = net.clock.now() + (opts.limitMs ?? 600_000)
  const step = opts.stepMs ?? 10
  let ok = false
  while (net.clock.now() < stop) {
    ok = net.sched.runUntil(() => done() || client.error !== null || (server as Pump | null)?.error != null, Math.min(stop, net.clock.now() + step))
    if (ok) break
    opts.during?.(net.clock.now(), client, server as Pump | null)
  }
  return { ok: ok && done(), client, server: server as Pump | null }
}
