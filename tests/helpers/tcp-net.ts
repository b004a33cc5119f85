/**
 * Two hosts with our TCP on an (optionally impaired) memory wire, in virtual time, and a
 * transfer driver that pushes bytes both ways through the TCB API and hashes what arrives.
 */
import { createHash } from 'node:crypto'
import { parseIPv4 } from '../../core/bytes.js'
import { ManualClock } from '../../core/clock.js'
import { Random } from '../../core/random.js'
import { Scheduler } from '../../core/scheduler.js'
import { MemoryWire, type Impairments } from '../../drivers/memory/wire.js'
import { Host } from '../../paths/host.js'
import { TcpModule } from '../../stages/tcp/module.js'
import { Pump } from '../../bin/pump.js'
import type { TcbConfig } from '../../stages/tcp/tcb.js'

export const IP_A = '10.0.0.1'
export const IP_B = '10.0.0.2'

/** Options of {@link twoTcpHosts}. */
export interface NetOptions {
  impair?: Impairments
  aToB?: Impairments
  bToA?: Impairments
  seed?: number
  configA?: TcbConfig
  configB?: TcbConfig
  mtuA?: number
  mtuB?: number
  /**
   * Static ARP entries (default true): a corrupted ARP reply cannot be detected (ARP has
   * no checksum) and would poison the cache for its whole lifetime; TCP tests are about TCP.
   */
  staticArp?: boolean
}

/** Builds the network. */
export function twoTcpHosts(o: NetOptions = {}) {
  const clock = new ManualClock()
  const sched = new Scheduler({ clock })
  const wire = new MemoryWire(sched, {
    seed: o.seed ?? 1,
    a: { mtu: o.mtuA ?? 1500 }, b: { mtu: o.mtuB ?? 1500 },
    ...(o.impair ? { impair: o.impair } : {}), ...(o.aToB ? { aToB: o.aToB } : {}), ...(o.bToA ? { bToA: o.bToA } : {}),
  })
  const a = new Host(sched, { name: 'a' })
  const b = new Host(sched, { name: 'b' })
  const ia = a.addInterface(wire.a, { address: `${IP_A}/24`, announce: false })
  const ib = b.addInterface(wire.b, { address: `${IP_B}/24`, announce: false })
  if (o.staticArp ?? true) {
    ia.arp.setStatic(parseIPv4(IP_B), wire.b.mac)
    ib.arp.setStatic(parseIPv4(IP_A), wire.a.mac)
  }
  const isnSecret = new Uint8Array(16).fill(7)
  const tcpA = new TcpModule(a, { config: o.configA ?? {}, isnSecret })
  const tcpB = new TcpModule(b, { config: o.configB ?? {}, isnSecret })
  return { clock, sched, wire, a, b, tcpA, tcpB }
}

export { Pump, type PumpOptions } from '../../bin/pump.js'

/** sha256 of `b`. */
export function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

/** Runs a two-way transfer of `aData` (A to B) and `bData` (B to A); returns both pumps once done or at the limit. */
export function runTransfer(net: ReturnType<typeof twoTcpHosts>, aData: Uint8Array, bData: Uint8Array, opts: { limitMs?: number; rng?: Random; port?: number } = {}) {
  const port = opts.port ?? 8080
  let server: Pump | null = null
  net.tcpB.listen(port, conn => {
    server = new Pump(conn, bData, opts.rng ?? null)
  })
  const conn = net.tcpA.connect(parseIPv4(IP_B), port)
  const client = new Pump(conn, aData, opts.rng ?? null)
  const done = (): boolean => {
    const s = server as Pump | null
    return s !== null && client.gotEnd && s.gotEnd && client.closed && s.closed
  }
  const ok = net.sched.runUntil(() => done() || client.error !== null || (server as Pump | null)?.error != null, net.clock.now() + (opts.limitMs ?? 600_000))
  return { ok: ok && done(), client, server: server as Pump | null, conn }
}

/** A randomized TCB configuration (options on or off, small or default buffers) for randomized transfer tests. */
export function randomTcbConfig(r: Random): TcbConfig {
  return {
    sack: r.chance(0.7),
    timestamps: r.chance(0.7),
    windowScaling: r.chance(0.7),
    noDelay: r.chance(0.3),
    delayedAckMs: r.chance(0.2) ? 0 : 40,
    rcvBuf: r.chance(0.3) ? r.int(4096, 65535) : 262144,
    sndBuf: r.chance(0.3) ? r.int(2048, 65535) : 262144,
    minRtoMs: 200,
  }
}
