/**
 * The demo's virtual network: a client host, a middle box and a server host, all with our
 * TCP, on two memory wires, in virtual time.
 *
 * ```
 *   client 10.0.0.2 ── wire 1 ── 10.0.0.1 [middle] 10.0.1.1 ── wire 2 ── 10.0.1.2 server
 * ```
 * The middle box is a {@link ProxyForwarder} (2-path or 1-path, spliced to FWD or IP/FWD
 * mid-transfer, or never) or an {@link IpRouter} (the baseline). One transfer moves
 * seeded bytes both ways at once; each end hashes what it receives.
 * @module
 */
import { createHash } from 'node:crypto'
import { parseIPv4 } from '../core/bytes.js'
import { ManualClock } from '../core/clock.js'
import { Random } from '../core/random.js'
import { Scheduler } from '../core/scheduler.js'
import { MemoryWire } from '../drivers/memory/wire.js'
import { Host } from '../paths/host.js'
import { IpRouter } from '../paths/ip-router.js'
import { ProxyForwarder, type ProxyLayout } from '../paths/proxy/forwarder.js'
import type { ProxySessionApi } from '../stages/proxy/session.js'
import { TcpModule } from '../stages/tcp/module.js'
import { Pump } from './pump.js'

/** Addresses of the demo network. */
export const DEMO_NET = {
  client: '10.0.0.2',
  middleA: '10.0.0.1',
  middleB: '10.0.1.1',
  server: '10.0.1.2',
  proxyPort: 1080,
  serverPort: 8080,
} as const

/** One configuration of the Scout comparison (DESIGN §4). */
export interface DemoConfig {
  /** Row name: `2-path`, `1-path`, `FWD`, `IP/FWD`, `IP router`. */
  name: string
  /** The middle box's stages, one direction, before → after the splice. */
  stages: string
  /** A proxy layout, or the IP router. */
  middle: ProxyLayout | 'router'
  /** Splice mid-transfer to this final stage, or never. */
  splice: 'fwd' | 'ipfwd' | null
}

/** The five configurations, in the paper's order. */
export const DEMO_CONFIGS: readonly DemoConfig[] = [
  { name: '2-path', stages: 'ETH IP TCP PROXY ⇢ PROXY TCP IP ETH', middle: '2-path', splice: null },
  { name: '1-path', stages: 'ETH IP TCP PROXY TCP IP ETH', middle: '1-path', splice: null },
  { name: 'FWD', stages: '1-path → ETH IP FWD IP ETH', middle: '1-path', splice: 'fwd' },
  { name: 'IP/FWD', stages: '1-path → ETH IP/FWD ETH', middle: '1-path', splice: 'ipfwd' },
  { name: 'IP router', stages: 'ETH IP(route) ETH', middle: 'router', splice: null },
]

/** What one transfer through one configuration measured. */
export interface TransferResult {
  /** Configuration name. */
  config: string
  /** Bytes the client sent and the server received. */
  bytesUp: number
  /** Bytes the server sent and the client received. */
  bytesDown: number
  /** Bytes received at the server / client (equal to the above when complete). */
  receivedUp: number
  /** See receivedUp. */
  receivedDown: number
  /** SHA-256 of what the server received equals that of what the client sent, and the other way. */
  digestUpOk: boolean
  /** See digestUpOk. */
  digestDownOk: boolean
  /** Both directions ended with FIN and closed within the time limit. */
  completed: boolean
  /** Server bytes already relayed when the splice was requested (null: not spliced). */
  splicedAtByte: number | null
  /** Virtual ms from the splice request to the final FWD stage (null: not spliced). */
  spliceMs: number | null
  /** Frames that crossed the middle box (both wires, both directions). */
  segments: number
  /** Virtual ms until both streams arrived whole. */
  virtualMs: number
  /** Wall-clock ms until both streams arrived whole. */
  wallMs: number
  /** Segments per wall-clock second (the whole network: both end hosts' TCP included). */
  segmentsPerSec: number
  /** The middle box's paths after the transfer's splice (one line per path). */
  paths: string[]
}

/** Options of {@link runTransfer}. */
export interface TransferOptions {
  /** Bytes each way. */
  bytes: number
  /** Seed of the payloads. */
  seed: number
  /** Splice once the server's bytes relayed reach this fraction of `bytes` [0.25]. */
  spliceAt?: number
  /** Called with the fraction done (0..1) every few virtual ms. */
  progress?: (fraction: number) => void
  /** Virtual time limit [600 000 ms]. */
  limitMs?: number
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** Moves `bytes` each way through `cfg` and checks both digests. */
export function runTransfer(cfg: DemoConfig, o: TransferOptions): TransferResult {
  const clock = new ManualClock()
  const sched = new Scheduler({ clock })
  const w1 = new MemoryWire(sched, { seed: o.seed, impair: { delayMs: 1 } })
  const w2 = new MemoryWire(sched, { seed: o.seed + 1, impair: { delayMs: 1 } })
  const N = DEMO_NET
  const c = new Host(sched, { name: 'client' })
  const s = new Host(sched, { name: 'server' })
  const ic = c.addInterface(w1.a, { address: `${N.client}/24`, announce: false })
  const is = s.addInterface(w2.b, { address: `${N.server}/24`, announce: false })
  const isnSecret = new Uint8Array(16).fill(5)
  const tcpC = new TcpModule(c, { isnSecret })
  const tcpS = new TcpModule(s, { isnSecret })
  let fw: ProxyForwarder | null = null
  let router: IpRouter | null = null
  let session: ProxySessionApi | null = null
  let target: number
  let targetPort: number
  if (cfg.middle === 'router') {
    router = new IpRouter(sched, { sides: [{ device: w1.b, address: `${N.middleA}/24`, announce: false }, { device: w2.a, address: `${N.middleB}/24`, announce: false }] })
    c.addRoute('10.0.1.0/24', { via: N.middleA })
    s.addRoute('10.0.0.0/24', { via: N.middleB })
    router.sides[0].arp.setStatic(parseIPv4(N.client), w1.a.mac)
    router.sides[1].arp.setStatic(parseIPv4(N.server), w2.b.mac)
    target = parseIPv4(N.server)
    targetPort = N.serverPort
  } else {
    const p = new Host(sched, { name: 'proxy' })
    const p1 = p.addInterface(w1.b, { address: `${N.middleA}/24`, announce: false })
    const p2 = p.addInterface(w2.a, { address: `${N.middleB}/24`, announce: false })
    p1.arp.setStatic(parseIPv4(N.client), w1.a.mac)
    p2.arp.setStatic(parseIPv4(N.server), w2.b.mac)
    const serverIp = parseIPv4(N.server)
    fw = new ProxyForwarder({
      host: p, tcp: new TcpModule(p, { isnSecret }), port: N.proxyPort, layout: cfg.middle,
      handler: {
        name: 'plug',
        onClientOpen: ss => ss.connect(serverIp, N.serverPort),
        onServerOpen: ss => { session = ss },
      },
    })
    target = parseIPv4(N.middleA)
    targetPort = N.proxyPort
  }
  ic.arp.setStatic(parseIPv4(N.middleA), w1.b.mac)
  is.arp.setStatic(parseIPv4(N.middleB), w2.a.mac)

  const rng = new Random(o.seed)
  const up = rng.bytes(new Uint8Array(o.bytes))
  const down = rng.bytes(new Uint8Array(o.bytes))
  let server: Pump | null = null
  tcpS.listen(N.serverPort, conn => { server = new Pump(conn, down) })
  const client = new Pump(tcpC.connect(target, targetPort), up)
  const srv = (): Pump | null => server as Pump | null
  let dataWallMs = 0
  let dataVirtualMs = 0
  const done = (): boolean => {
    const sv = srv()
    if (sv === null || !client.gotEnd || !sv.gotEnd) return false
    // Both streams arrived whole (FIN seen both ways): the transfer's time, before TIME-WAIT.
    if (dataWallMs === 0) {
      dataWallMs = performance.now() - start
      dataVirtualMs = clock.now() - vstart
    }
    return client.closed && sv.closed
  }

  const spliceAt = Math.floor((o.spliceAt ?? 0.25) * o.bytes)
  let splicedAtByte: number | null = null
  let spliceMs: number | null = null
  let paths: string[] = []
  const start = performance.now()
  const vstart = clock.now()
  const stop = clock.now() + (o.limitMs ?? 600_000)
  let ok = false
  while (clock.now() < stop) {
    ok = sched.runUntil(() => done() || client.error !== null || srv()?.error != null, Math.min(stop, clock.now() + 5))
    if (ok) break
    const ss = session as ProxySessionApi | null
    if (cfg.splice !== null && splicedAtByte === null && ss !== null && ss.state === 'control' && ss.bytes.fromServer >= spliceAt) {
      // Splice live, mid-transfer, with data buffered in both TCBs (Scout §IV).
      splicedAtByte = ss.bytes.fromServer
      ss.splice({ mode: cfg.splice })
    }
    if (fw !== null && paths.length === 0 && (cfg.splice === null ? ss !== null : fw.stats.splices > 0)) paths = fw.describe()
    o.progress?.(Math.min(1, (client.received + (srv()?.received ?? 0)) / (2 * o.bytes)))
  }
  const wallMs = dataWallMs || performance.now() - start
  if (fw !== null && fw.stats.splices > 0) spliceMs = fw.stats.spliceMsTotal / fw.stats.splices
  if (router !== null) paths = [router.path.describe()]
  const st1 = w1.stats()
  const st2 = w2.stats()
  const segments = st1.aToB.delivered + st1.bToA.delivered + st2.aToB.delivered + st2.bToA.delivered
  const sv = srv()
  fw?.close()
  router?.close()
  o.progress?.(1)
  return {
    config: cfg.name,
    bytesUp: up.length,
    bytesDown: down.length,
    receivedUp: sv?.received ?? 0,
    receivedDown: client.received,
    digestUpOk: sv !== null && sv.received === up.length && sv.hash.digest('hex') === sha(up),
    digestDownOk: client.received === down.length && client.hash.digest('hex') === sha(down),
    completed: ok && done(),
    splicedAtByte,
    spliceMs,
    segments,
    virtualMs: dataVirtualMs || clock.now() - vstart,
    wallMs,
    segmentsPerSec: Math.round(segments / (wallMs / 1000)),
    paths,
  }
}
