/**
 * Starts a forwarder from a validated {@link RunConfig}: devices (wrapped in
 * {@link TeeDevice}s), one {@link Host} with the addresses and routes, IP router paths,
 * a TCP module and one {@link ProxyForwarder} per proxy. `close()` undoes everything it
 * did, in reverse: sessions reset (RST, spliced ones too), paths closed, devices closed,
 * namespaces it created deleted.
 *
 * ```
 *   devices ─▶ Tee ─▶ Host(interfaces, routes) ─▶ TCP ─▶ ProxyForwarder per proxy (1-path/2-path, FWD/IP-FWD)
 *                          └─ not ours ─▶ router path [ETH ROUTER ETH] (from "paths")
 * ```
 * @module
 */
import { formatIPv4 } from '../../core/bytes.js'
import { parseCidr } from '../../stages/ip/routes.js'
import type { Device } from '../../core/device.js'
import { Path } from '../../core/path.js'
import { Scheduler } from '../../core/scheduler.js'
import { Dir } from '../../core/stage.js'
import { MemoryWire, type MemoryDevice } from '../../drivers/memory/wire.js'
import { Host, type Interface } from '../../paths/host.js'
import { ProxyForwarder } from '../../paths/proxy/forwarder.js'
import { EthStage } from '../../stages/eth/stage.js'
import type { ProxyHandler, ProxySessionApi } from '../../stages/proxy/session.js'
import { RouterStage } from '../../stages/router/stage.js'
import { TcpModule } from '../../stages/tcp/module.js'
import { createLogger, type Logger } from '../log.js'
import type { ProxyConfig, RunConfig } from './schema.js'
import { TeeDevice } from './tee.js'

/** Options of {@link startForwarder}. */
export interface StartOptions {
  /** Scheduler to run on (default: a new real-time one, started). */
  scheduler?: Scheduler
  /** Logger (default: the config's level on stderr). */
  log?: Logger
}

/** Per-proxy counters, as `pathsplice stats` shows them. */
export interface ProxyStats {
  /** Proxy name. */
  name: string
  /** Type. */
  type: string
  /** Port (null: a transparent proxy with no port of its own). */
  port: number | null
  /** Client connections accepted. */
  accepted: number
  /** Sessions open now. */
  active: number
  /** Sessions spliced now. */
  spliced: number
  /** Open sessions not spliced now (control mode, splicing or unsplicing). */
  unspliced: number
  /** Splices completed. */
  splices: number
  /** Splices that failed. */
  spliceFailures: number
  /** Unsplices completed. */
  unsplices: number
  /** Mean splice latency (request to final FWD), ms; null before the first. */
  spliceMsMean: number | null
  /** Sessions closed. */
  closed: number
  /** Handler exceptions. */
  handlerErrors: number
}

/** What `pathsplice stats` prints as JSON. */
export interface ForwarderStats {
  /** Seconds since start. */
  uptimeSec: number
  /** Per proxy. */
  proxies: ProxyStats[]
  /** Per device: frames and bytes both ways, drops by reason. */
  devices: { name: string; rxFrames: number; txFrames: number; rxBytes: number; txBytes: number; drops: Record<string, number> }[]
  /** Drops by `stage-kind:reason`, summed over every path of the forwarder. */
  drops: Record<string, number>
  /** Per path: its stages now (what is spliced shows here) and messages in/out at each end. */
  paths: { name: string; stages: string[]; inPkts: [number, number]; outPkts: [number, number]; gated: boolean }[]
}

/** A running forwarder. */
export interface Forwarder {
  /** The configuration. */
  readonly config: RunConfig
  /** The scheduler. */
  readonly sched: Scheduler
  /** The host. */
  readonly host: Host
  /** Its TCP module. */
  readonly tcp: TcpModule
  /** Proxies by name. */
  readonly proxies: Map<string, ProxyForwarder>
  /** Devices by name (as wrapped). */
  readonly devices: Map<string, TeeDevice>
  /** For each memory device, the far end of its wire (for the embedder to attach hosts to). */
  readonly peers: Map<string, MemoryDevice>
  /** Namespaces created for TAP peers, by device name (actual names carry a pid suffix). */
  readonly namespaces: Map<string, string>
  /** Router paths. */
  readonly routers: Path[]
  /** Counters. */
  stats(): ForwarderStats
  /** Module graph, classifier trees and paths as text. */
  describe(): string
  /** Stops: sessions reset with RST, paths and devices closed, namespaces removed. Idempotent. */
  close(why?: string): Promise<void>
}

/** The module graph `pathsplice paths` prints (the stacks a forwarder's paths are made of). */
export const MODULE_GRAPH = [
  'modules (layer: name — above)',
  '  2: ETH    Ethernet framing, ARP-resolved next hops  — ARP, IP',
  '  2: ARP    address resolution (RFC 826)',
  '  3: IP     IPv4: validation, reassembly, routes       — ICMP, TCP, ROUTER',
  '  3: ICMP   echo, errors (RFC 792)',
  '  3: ROUTER IPv4 forwarding (RFC 1812)                 — ETH',
  '  4: TCP    RFC 9293 TCB per connection               — PROXY',
  '  7: PROXY  a proxy session over two TCPs (null, socks5, http)',
  '  4: FWD    spliced TCP: ports, seq/ack, options, checksums rewritten (between two IPs)',
  '  3: IPFWD  IP and FWD merged (unfragmented datagrams)',
].join('\n')

/** Wraps a handler to log the session lifecycle, keeping every callback of the inner one. */
function logged(inner: ProxyHandler, name: string, log: Logger): ProxyHandler {
  const h: ProxyHandler = { ...inner, name: inner.name }
  h.onSpliced = s => {
    log.info(`proxy ${name}: spliced`, { session: s.id, client: ep(s.client), server: s.server ? ep(s.server) : null })
    inner.onSpliced?.(s)
  }
  h.onSpliceFailed = (s, why) => {
    log.warn(`proxy ${name}: splice failed`, { session: s.id, why })
    inner.onSpliceFailed?.(s, why)
  }
  h.onUnspliced = s => {
    log.debug(`proxy ${name}: unspliced`, { session: s.id })
    inner.onUnspliced?.(s)
  }
  h.onUnspliceFailed = (s, why) => {
    log.warn(`proxy ${name}: unsplice failed`, { session: s.id, why })
    inner.onUnspliceFailed?.(s, why)
  }
  h.onClose = (s, why) => {
    log.info(`proxy ${name}: session closed`, { session: s.id, why, ...s.bytes })
    inner.onClose?.(s, why)
  }
  const open = inner.onClientOpen
  h.onClientOpen = s => {
    log.debug(`proxy ${name}: client connected`, { session: s.id, client: ep(s.client) })
    open?.(s)
  }
  return h
}

const ep = (e: ProxySessionApi['client']): string => `${formatIPv4(e.remoteIp)}:${e.remotePort}`

/** Starts the forwarder; on failure undoes what it did and rethrows. */
export async function startForwarder(cfg: RunConfig, opts: StartOptions = {}): Promise<Forwarder> {
  const log = opts.log ?? createLogger(cfg.log)
  const undo: (() => unknown)[] = []
  let closed = false
  const close = async (why = 'stopped'): Promise<void> => {
    if (closed) return
    closed = true
    log.info('shutting down', { why })
    for (const f of undo.reverse()) {
      try {
        await f()
      } catch (err) {
        log.warn('cleanup step failed', { error: (err as Error).message })
      }
    }
    log.info('stopped')
  }
  const ownSched = opts.scheduler === undefined
  const sched = opts.scheduler ?? new Scheduler()
  const devices = new Map<string, TeeDevice>()
  const peers = new Map<string, MemoryDevice>()
  const namespaces = new Map<string, string>()
  const proxies = new Map<string, ProxyForwarder>()
  const routers: Path[] = []
  const started = Date.now()
  try {
    // Devices first: what fails here (no root, no TAP, no libpcap) fails before any traffic.
    for (const d of cfg.devices) {
      let dev: Device
      if (d.type === 'memory') {
        const wire = new MemoryWire(sched, { ...(d.delayMs > 0 ? { impair: { delayMs: d.delayMs } } : {}), a: { name: d.name, mtu: d.mtu }, b: { name: `${d.name}-peer`, mtu: d.mtu, mac: Uint8Array.of(2, 0, 0, 0, 1, devices.size + 1) } })
        dev = wire.a
        peers.set(d.name, wire.b)
        undo.push(() => wire.close())
      } else if (d.type === 'tap') {
        const { TapDevice, Netns } = await import('../../drivers/tap/index.js')
        const tap = TapDevice.open({ name: d.ifname, mtu: d.mtu, up: true, onError: err => log.error(`device ${d.name}: ${err.message}`, { ifname: d.ifname }) })
        undo.push(() => tap.close())
        dev = tap
        if (d.peer !== undefined) {
          const ns = await Netns.create(d.peer.netns)
          undo.push(() => ns.delete())
          await ns.adopt(d.ifname, { addr: d.peer.address, mtu: d.mtu })
          for (const r of d.peer.routes) await ns.ip('route', 'add', r.cidr, 'via', r.via)
          namespaces.set(d.name, ns.name)
          log.info(`device ${d.name}: kernel side in namespace ${ns.name}`, { netns: ns.name, address: d.peer.address })
        }
      } else {
        const { openLive } = await import('../../drivers/pcap/live.js')
        const live = await openLive(d.ifname, d.filter !== undefined ? { filter: d.filter } : {})
        undo.push(() => live.close())
        dev = live
      }
      const tee = new TeeDevice(dev)
      devices.set(d.name, tee)
      log.info(`device ${d.name} (${d.type}) up`, { ifname: d.type === 'memory' ? null : d.ifname, address: d.address, mtu: d.mtu })
    }
    const host = new Host(sched, { name: 'forwarder' })
    const ifaces = new Map<string, Interface>()
    for (const d of cfg.devices) ifaces.set(d.name, host.addInterface(devices.get(d.name)!, { address: d.address, mtu: d.mtu }))
    for (const r of cfg.routes) host.addRoute(r.cidr, { ...(r.via ? { via: r.via } : {}), ...(r.dev ? { dev: r.dev } : {}), ...(r.metric !== undefined ? { metric: r.metric } : {}) })
    // Router paths: datagrams not addressed to us enter at the end facing their device
    // (as IpRouter does, here on the forwarder's own host and routing table).
    for (const r of cfg.routers) {
      const a = ifaces.get(r.from)!
      const b = ifaces.get(r.to)!
      const router = new RouterStage<Interface>({ routes: host.routes, sides: [a, b], clock: sched.clock })
      const path = new Path([new EthStage({ mac: a.mac, arp: a.arp, up: Dir.Forward }), router, new EthStage({ mac: b.mac, arp: b.arp, up: Dir.Backward })], { name: r.name })
      path.connect(0, a.device).connect(1, b.device)
      sched.adopt(path)
      host.attached.add(path)
      a.ipv4.forward = path.ends[0]
      b.ipv4.forward = path.ends[1]
      routers.push(path)
    }
    const tcp = new TcpModule(host, { config: cfg.tcp })
    undo.push(() => {
      if (ownSched) sched.stop()
      tcp.close()
      host.close()
    })
    for (const p of cfg.proxies) {
      const handler = logged(p.handler(e => log.debug(`proxy ${p.name}: ${String(e['type'] ?? 'event')}`, flat(e))), p.name, log)
      const fw = new ProxyForwarder({ host, tcp, ...(p.port !== null ? { port: p.port } : {}), ...(p.intercept !== null ? { intercept: p.intercept } : {}), handler, layout: p.layout, mode: p.mode, idleMs: p.idleMs, tcb: cfg.tcp })
      proxies.set(p.name, fw)
      undo.push(async () => {
        const n = fw.sessions.size
        // Splices and live sessions cannot continue without us: RST both peers.
        fw.close()
        if (n > 0) log.info(`proxy ${p.name}: reset ${n} session(s)`)
        // Let the RSTs leave before the devices close.
        await new Promise(res => setTimeout(res, 50))
      })
      log.info(`proxy ${p.name} (${p.type}) ${p.port !== null ? 'listening' : 'intercepting'}`, { port: p.port, ...(p.intercept !== null ? { intercept: p.summary } : {}), layout: p.layout, mode: p.mode, splice: typeof p.splice === 'object' ? `after ${p.splice.afterBytes} bytes` : p.splice })
    }
    if (ownSched) sched.start()
    const fwd: Forwarder = {
      config: cfg, sched, host, tcp, proxies, devices, peers, namespaces, routers,
      stats: () => collectStats(cfg.proxies, proxies, devices, host, started),
      describe: () => describe(cfg, host, proxies),
      close,
    }
    return fwd
  } catch (err) {
    await close('start failed')
    throw err
  }
}

function flat(e: Record<string, unknown>): Record<string, string | number | boolean | null> {
  const out: Record<string, string | number | boolean | null> = {}
  for (const [k, v] of Object.entries(e)) if (k !== 'type') out[k] = v === null || typeof v === 'number' || typeof v === 'boolean' ? v : String(v)
  return out
}

function collectStats(cfgs: readonly ProxyConfig[], proxies: Map<string, ProxyForwarder>, devices: Map<string, TeeDevice>, host: Host, started: number): ForwarderStats {
  const drops: Record<string, number> = {}
  const paths = new Set<Path>(host.attached)
  for (const i of host.interfaces) for (const p of [i.arpPath, i.icmpPath, i.reasmPath]) paths.add(p)
  for (const fw of proxies.values()) for (const w of fw.sessions.values()) for (const p of [w.pathA, w.pathB]) if (p !== null) paths.add(p)
  for (const p of paths) {
    for (const s of p.stages) for (const [r, n] of Object.entries(s.drops)) drops[`${s.kind}:${r}`] = (drops[`${s.kind}:${r}`] ?? 0) + n
  }
  return {
    uptimeSec: Math.round((Date.now() - started) / 100) / 10,
    proxies: cfgs.map(c => {
      const s = proxies.get(c.name)!.stats
      return {
        name: c.name, type: c.type, port: c.port, accepted: s.accepted, active: s.active, spliced: s.spliced, unspliced: s.active - s.spliced,
        splices: s.splices, spliceFailures: s.spliceFailures, unsplices: s.unsplices,
        spliceMsMean: s.splices > 0 ? Math.round((s.spliceMsTotal / s.splices) * 100) / 100 : null, closed: s.closed, handlerErrors: s.handlerErrors,
      }
    }),
    devices: [...devices.values()].map(d => {
      const s = d.stats()
      return { name: d.name, rxFrames: s.rxFrames, txFrames: s.txFrames, rxBytes: s.rxBytes, txBytes: s.txBytes, drops: { ...s.drops } }
    }),
    drops,
    paths: [...paths].map(p => {
      const i = p.info()
      return { name: i.name, stages: i.stages, inPkts: [i.ends[0]!.inPkts, i.ends[1]!.inPkts], outPkts: [i.ends[0]!.outPkts, i.ends[1]!.outPkts], gated: i.gated }
    }),
  }
}

/** What `pathsplice paths` prints for a running forwarder. */
function describe(cfg: RunConfig, host: Host, proxies: Map<string, ProxyForwarder>): string {
  const out = [MODULE_GRAPH, '', host.describe(), '', 'proxies']
  for (const p of cfg.proxies) {
    const fw = proxies.get(p.name)!
    out.push(`  ${p.name}: ${p.type} ${p.port !== null ? `on port ${p.port}` : 'intercepting'}, ${p.layout}, splice ${typeof p.splice === 'object' ? `after ${p.splice.afterBytes} bytes` : p.splice} to ${p.mode}; ${fw.sessions.size} session(s)${fw.sharedPaths.size > 0 ? `, ${[...fw.sharedPaths.values()].reduce((n, sp) => n + sp.stage.rows, 0)} on the shared IP/FWD path` : ''}`)
    for (const s of fw.describe()) out.push(...s.split('\n').map(l => `    ${l.trim()}`))
  }
  return out.join('\n')
}

/** The same description for a config that is not running (`pathsplice paths <config>`). */
export function describeConfig(cfg: RunConfig): string {
  const out = [MODULE_GRAPH, '', `forwarder (${cfg.file}, not running)`]
  for (const d of cfg.devices) out.push(`  device ${d.name}: ${d.type}${d.type === 'memory' ? '' : ` ${d.ifname}`} ${d.address} mtu ${d.mtu}${d.peer ? `, kernel side in a new namespace ${d.peer.netns}-* at ${d.peer.address}` : ''}`)
  out.push('  routes')
  for (const d of cfg.devices) {
    const [ip, len] = parseCidr(d.address)
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0
    out.push(`    ${formatIPv4((ip & mask) >>> 0)}/${len} dev ${d.name} (connected)`)
  }
  for (const r of cfg.routes) out.push(`    ${r.cidr}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${r.metric !== undefined ? ` metric ${r.metric}` : ''}`)
  out.push('  classifier (per device)', '    ETH type 0x0806 -> arp path', '    ETH type 0x0800 -> IPv4 dst: not ours -> TCP intercept (transparent proxies: a rule matches) | router path (if any) | ours -> IP proto: 1 -> icmp path, 6 -> TCP 4-tuple -> connection path | listener (SYN) -> new path')
  out.push('  paths')
  for (const r of cfg.routers) out.push(`    ${r.name}: [${r.from}] -> eth -> router -> eth -> [${r.to}]`)
  for (const p of cfg.proxies) {
    out.push(`    proxy ${p.name} (${p.summary})${p.port !== null ? ` on port ${p.port}` : ''}, per connection:`)
    out.push(p.layout === '1-path' ? '      control: [dev] -> eth -> ip -> tcp(A) -> proxy -> tcp(B) -> ip -> eth -> [dev]' : '      control: [dev] -> eth -> ip -> tcp(A) -> proxy ⇢ proxy -> tcp(B) -> ip -> eth -> [dev]  (two paths)')
    if (p.splice !== 'never') {
      out.push(p.mode === 'fwd' ? '      spliced: [dev] -> eth -> ip -> fwd -> ip -> eth -> [dev]'
        : p.mode === 'ipfwd' ? '      spliced: [dev] -> eth -> ipfwd -> eth -> [dev]'
          : '      spliced: [dev] -> eth -> ipfwd-shared (one row per connection) -> eth -> [dev], one path per interface pair')
    }
  }
  return out.join('\n')
}

