/**
 * Host: an IPv4 end system made of paths: interfaces (a device, its MAC, an address,
 * an ARP table, a classifier), a routing table, ICMP, reassembly, and the hooks upper
 * modules (TCP) use to build their own connection paths on top.
 *
 * ```
 *   device ─▶ classifier (per interface)
 *               ETH type ─0x0806─▶ arp path:   [ARP]                (answers, learns, releases parked frames)
 *                  │      ─other──▶ counted by kind (VLAN, IPv6, 802.3 length, other), dropped
 *                  │ 0x0800
 *                  ▼
 *               IPv4 dst ─not ours─▶ forward target (IP router path end) | counted drop
 *                  │ ours, fragment ─▶ reasm path: [REASM] ─▶ whole datagram ─▶ classifier again
 *                  ▼
 *               IP proto ─1─▶ icmp path:  [ETH, IP(unbound, 1), ICMP]   (echo, errors)
 *                        ─6─▶ whatever `registerProtocol(6, node)` hung here (TCP's 4-tuple node)
 *                        ─unregistered─▶ icmp path, which answers protocol unreachable (3/2)
 * ```
 *
 * The contract upper modules rely on:
 * - `host.registerProtocol(proto, target)` hangs a {@link ClassifierNode} (or a path end)
 *   under the IP protocol demux of every interface, present and future. The node is
 *   called with `off` at the transport header.
 * - `host.netStages(remoteIp, proto)` returns `{ stages: [EthStage, IpStage], localIp,
 *   iface }`: put them first in a path (end 0 faces the device, up = Forward) and call
 *   `host.attach(path, iface)`.
 * - Upward, the IP stage validates, sets `msg.l3` (IP header), pops it, sets `msg.l4 =
 *   msg.off` (transport header); addresses are at `msg.l3 + 12` / `+ 16`.
 * - Downward, the transport sends a message with `off` at its header and its checksum
 *   filled over the pseudo-header (localIp, remoteIp). IP pushes 20 bytes (TTL 64, DF as
 *   configured, an id) and sets `msg.nextHop`; ETH adds the Ethernet header with the
 *   next hop's MAC, or parks the frame in ARP's bounded queue and sends a request.
 * - `host.onIcmpError(fn)` reports ICMP errors (e.g. 3/4 fragmentation needed with the
 *   next-hop MTU, to lower a connection's MSS).
 * @module
 */
import { formatIPv4, formatMac, get32, parseIPv4, parseMac } from '../core/bytes.js'
import { Classifier, type ClassifierNode, type DemuxTarget, type FieldDemux } from '../core/classifier.js'
import type { Device } from '../core/device.js'
import { ConfigError } from '../core/errors.js'
import { bindDevice, type IngressBinding } from '../core/ingress.js'
import type { Msg } from '../core/msg.js'
import { Path, type PathEnd } from '../core/path.js'
import type { Scheduler } from '../core/scheduler.js'
import { Dir, type Stage } from '../core/stage.js'
import { ArpCache, type ArpCacheOptions } from '../stages/arp/cache.js'
import { ArpStage } from '../stages/arp/stage.js'
import { EtherType } from '../stages/eth/header.js'
import { EthStage } from '../stages/eth/stage.js'
import { EthTypeDropCounter, ethTypeDemux } from '../stages/eth/demux.js'
import { Ipv4Demux } from '../stages/ip/demux.js'
import { IpProto } from '../stages/ip/header.js'
import { IcmpType, TimeExceededCode } from '../stages/ip/icmp.js'
import { IcmpStage, type IcmpErrorListener, type IcmpErrorReport } from '../stages/ip/icmp-stage.js'
import { Reassembler, type ReassemblerOptions } from '../stages/ip/reassembly.js'
import { ReassemblyStage } from '../stages/ip/reassembly-stage.js'
import { parseCidr, RouteTable, type Route } from '../stages/ip/routes.js'
import { directedBroadcast, IpStage, type IpLink } from '../stages/ip/stage.js'

/** Options of {@link Host.addInterface}. */
export interface InterfaceOptions {
  /** Our address and prefix, e.g. `10.0.0.1/24`. */
  address: string
  /** Name in dumps (default: the device's name). */
  name?: string
  /** MTU (default: the device's). */
  mtu?: number
  /**
   * Our MAC (default: the device's). On a TAP device the device's MAC belongs to the
   * kernel's side of the link, so give the stack its own (e.g. `02:00:00:00:01:01`).
   */
  mac?: Uint8Array | string
  /** ARP table options (limits and timeouts). */
  arp?: Omit<ArpCacheOptions, 'mac' | 'ip' | 'transmit'>
  /** Send a gratuitous ARP when the interface comes up (default true; RFC 5227 §3). */
  announce?: boolean
}

/** One interface of a {@link Host}: a device with an address, its ARP table and classifier. */
export class Interface implements IpLink {
  /** Position in `host.interfaces`; also written to `msg.ingress` of frames from it. */
  readonly index: number
  /** Name in dumps. */
  readonly name: string
  /** The device. */
  readonly device: Device
  /** Our MAC (the device's). */
  readonly mac: Uint8Array
  /** Our address (u32). */
  readonly address: number
  /** Prefix length of the attached network. */
  readonly prefixLength: number
  /** MTU used for IP. */
  readonly mtu: number
  /** The ARP table. */
  readonly arp: ArpCache
  /** The classifier fed by the device. */
  readonly classifier: Classifier
  /** Its first level. */
  readonly ethDemux: FieldDemux
  /** Its IPv4 level. */
  readonly ipv4: Ipv4Demux
  /** Counts frames of EtherTypes nobody handles (VLAN-tagged, IPv6, ...), which ingress then drops. */
  readonly ethDrops: EthTypeDropCounter
  /** The ARP path (`[ARP]`). */
  readonly arpPath: Path
  /** The ICMP path (`[ETH, IP, ICMP]`). */
  readonly icmpPath: Path
  /** Its ICMP stage. */
  readonly icmp: IcmpStage
  /** The reassembly path (`[REASM]`). */
  readonly reasmPath: Path
  /** The ingress binding (counters: classified, unclaimed). */
  readonly binding: IngressBinding
  private readonly txBatch: Msg[] = []

  /** @internal Use {@link Host.addInterface}. */
  constructor(host: Host, index: number, device: Device, opts: InterfaceOptions) {
    const [address, prefixLength] = parseCidr(opts.address, `${host.name}: interface ${opts.name ?? device.name}`)
    this.index = index
    this.name = opts.name ?? device.name
    this.device = device
    this.mac = opts.mac === undefined ? device.mac : typeof opts.mac === 'string' ? parseMacOrThrow(opts.mac, host.name) : Uint8Array.from(opts.mac)
    this.address = address
    this.prefixLength = prefixLength
    this.mtu = opts.mtu ?? device.mtu
    const s = host.scheduler
    this.arp = new ArpCache(s, { ...opts.arp, mac: this.mac, ip: address, transmit: f => this.transmit(f) })
    this.arpPath = s.adopt(new Path([new ArpStage(this.arp)], { name: `${host.name}/${this.name}/arp` }).connect(0, device))
    const isLocal = (a: number): boolean => host.isLocalAddress(a)
    this.icmp = new IcmpStage(address, Dir.Forward, isLocal)
    const ip = new IpStage<Interface>({ link: this, routes: host.routes, protocol: IpProto.ICMP, isLocal, anyProtocol: true })
    this.icmpPath = s.adopt(new Path([new EthStage({ mac: this.mac, arp: this.arp }), ip, this.icmp], { name: `${host.name}/${this.name}/icmp` }).connect(0, device))
    this.reasmPath = s.adopt(
      new Path([new ReassemblyStage(host.reassembler, m => this.reinject(m))], { name: `${host.name}/${this.name}/reasm` }).connect(0, device),
    )
    this.ethDemux = ethTypeDemux()
    this.ipv4 = new Ipv4Demux(address, directedBroadcast(this))
    this.ipv4.isLocal = isLocal
    this.ipv4.reassembly = this.reasmPath.ends[0]
    this.ipv4.unknownProtocol = this.icmpPath.ends[0]
    this.ipv4.protocols.set(IpProto.ICMP, this.icmpPath.ends[0])
    this.ethDrops = new EthTypeDropCounter(this.ethDemux)
    this.ethDemux.set(EtherType.ARP, this.arpPath.ends[0]).set(EtherType.IPv4, this.ipv4).setDefault(this.ethDrops)
    this.classifier = new Classifier(`${host.name}/${this.name}`, this.ethDemux)
    this.binding = bindDevice(device, this.classifier, s.clock, index)
  }

  /** Sends one complete frame straight to the device (ARP, parked frames); takes ownership. */
  transmit(frame: Msg): void {
    const b = this.txBatch
    b[0] = frame
    this.device.send(b, 1)
    b[0] = undefined as unknown as Msg
  }

  /** True if `ip` is on this interface's network. */
  onLink(ip: number): boolean {
    const mask = this.prefixLength === 0 ? 0 : (0xffffffff << (32 - this.prefixLength)) >>> 0
    return ((ip & mask) >>> 0) === ((this.address & mask) >>> 0)
  }

  private reinject(datagram: Msg): void {
    const end = this.classifier.classify(datagram)
    if (end === null) {
      this.binding.stats.unclaimed++
      datagram.free()
    } else {
      this.binding.stats.classified++
      end.enqueue(datagram)
    }
  }
}

/** Options of {@link Host.netStages}. */
export interface NetStagesOptions {
  /** Set DF on outgoing datagrams. */
  df?: boolean
  /** TTL of outgoing datagrams. */
  ttl?: number
  /**
   * Direction that is up the stack (default Forward: the stages sit next to end 0). With
   * Backward they sit next to end 1, as the server side of a 1-path or spliced path does.
   */
  up?: Dir
  /** Our address on the connection (default: the outgoing interface's); an intercepted connection's is the original destination. */
  local?: number
}

/** What {@link Host.netStages} returns. */
export interface NetStages {
  /** In path order: `[EthStage, IpStage]` (up = Forward, end 0 faces the device) or `[IpStage, EthStage]` (up = Backward). */
  stages: Stage[]
  /** The ETH stage. */
  eth: EthStage
  /** The IP stage. */
  ip: IpStage<Interface>
  /** Our address towards the remote (the interface's). */
  localIp: number
  /** The interface the route goes out of. */
  iface: Interface
}

/** Options of {@link Host.ping}. */
export interface PingOptions {
  /** Echo requests to send (default 1). */
  count?: number
  /** Wait for each reply this long (default 1000 ms). */
  timeoutMs?: number
  /** Between requests (default 100 ms). */
  intervalMs?: number
  /** ICMP data bytes per request (default 56). */
  size?: number
}

/** What {@link Host.ping} resolves to. */
export interface PingResult {
  /** Requests sent. */
  sent: number
  /** Replies received in time. */
  received: number
  /** Round-trip time per received reply, in ms of the scheduler's clock. */
  rttMs: number[]
}

/** Options of a {@link Host}. */
export interface HostOptions {
  /** Name for dumps and path names. */
  name: string
  /** Reassembly limits (shared by all interfaces). */
  reassembly?: ReassemblerOptions
}

/** An IPv4 host built from paths (see the module comment for the contract). */
export class Host {
  /** Name. */
  readonly name: string
  /** The scheduler running every path of this host. */
  readonly scheduler: Scheduler
  /** The routing table (connected routes are added with each interface). */
  readonly routes = new RouteTable<Interface>()
  /** The interfaces, in the order added. */
  readonly interfaces: Interface[] = []
  /** Reassembly, shared by the interfaces. */
  readonly reassembler: Reassembler
  /** Paths attached with {@link Host.attach} (for dumps). */
  readonly attached = new Set<Path>()
  private readonly protocols = new Map<number, DemuxTarget>()
  private interceptNode: ClassifierNode | null = null
  private readonly errorListeners = new Set<IcmpErrorListener>()
  private readonly pings = new Map<number, (seq: number, from: number) => void>()
  private nextPingId = 1

  /** Creates a host with no interfaces. */
  constructor(scheduler: Scheduler, opts: HostOptions) {
    this.name = opts.name
    this.scheduler = scheduler
    this.reassembler = new Reassembler(scheduler, { ...opts.reassembly, onTimeout: (b, off, end) => this.reassemblyTimedOut(b, off, end) })
    this.nextPingId = 1 + Math.floor(Math.random() * 60000)
  }

  /**
   * Adds an interface on `device` with an address (`10.0.0.1/24`): builds its ARP, ICMP
   * and reassembly paths and classifier, binds the device, adds the connected route and
   * announces the address with a gratuitous ARP. Throws {@link ConfigError} for a bad
   * address or a device already in use.
   */
  addInterface(device: Device, opts: InterfaceOptions): Interface {
    if (this.interfaces.some(i => i.device === device)) throw new ConfigError(`${this.name}: device ${device.name} already has an interface`)
    const iface = new Interface(this, this.interfaces.length, device, opts)
    this.interfaces.push(iface)
    for (const [proto, target] of this.protocols) iface.ipv4.protocols.set(proto, target)
    iface.ipv4.intercept = this.interceptNode
    iface.icmp.onEchoReply = (id, seq, from) => this.pings.get(id)?.(seq, from)
    iface.icmp.onError = r => this.emitError(r)
    this.routes.add([iface.address, iface.prefixLength], iface, 0)
    if (opts.announce ?? true) iface.arp.announce()
    return iface
  }

  /** True if `ip` is one of this host's interface addresses. */
  isLocalAddress(ip: number): boolean {
    const ifs = this.interfaces
    for (let i = 0; i < ifs.length; i++) if (ifs[i]!.address === ip) return true
    return false
  }

  /** The interface called `name`, or undefined. */
  interface(name: string): Interface | undefined {
    return this.interfaces.find(i => i.name === name)
  }

  /**
   * Adds a route, e.g. `addRoute('0.0.0.0/0', { via: '10.0.0.254' })`. The gateway must
   * be on a connected network (its interface is found from it). Throws {@link ConfigError}.
   */
  addRoute(cidr: string, opts: { via?: string; dev?: string; metric?: number }): Route<Interface> {
    const where = `${this.name}: route ${cidr}`
    let iface: Interface | undefined
    let gw = 0
    if (opts.via !== undefined) {
      try {
        gw = parseIPv4(opts.via)
      } catch {
        throw new ConfigError(`${where}: bad gateway '${opts.via}': expected an IPv4 address like 10.0.0.254`)
      }
      iface = this.interfaces.find(i => i.onLink(gw))
      if (iface === undefined) throw new ConfigError(`${where}: gateway ${opts.via} is on no connected network; add the interface first`)
    }
    if (opts.dev !== undefined) {
      const d = this.interface(opts.dev)
      if (d === undefined) throw new ConfigError(`${where}: no interface '${opts.dev}' (have ${this.interfaces.map(i => i.name).join(', ') || 'none'})`)
      if (iface !== undefined && iface !== d) throw new ConfigError(`${where}: gateway ${opts.via} is not on ${opts.dev}`)
      iface = d
    }
    if (iface === undefined) throw new ConfigError(`${where}: say where it goes with { via } or { dev }`)
    return this.routes.add(cidr, iface, gw, opts.metric ?? 0)
  }

  /** The route to `dst`, or undefined. */
  route(dst: number | string): Route<Interface> | undefined {
    return this.routes.lookup(typeof dst === 'string' ? parseIPv4(dst) : dst >>> 0)
  }

  /**
   * Hangs `target` under the IP protocol demux of every interface (present and future):
   * TCP registers protocol 6 with its 4-tuple node. Replaces an earlier registration.
   */
  registerProtocol(protocol: number, target: ClassifierNode | PathEnd): void {
    if (!(protocol >= 0 && protocol <= 255 && Number.isInteger(protocol))) throw new ConfigError(`${this.name}: protocol ${protocol} is not 0..255`)
    if (protocol === IpProto.ICMP) throw new ConfigError(`${this.name}: protocol 1 (ICMP) belongs to the host; use onIcmpError() to see ICMP errors`)
    this.protocols.set(protocol, target)
    for (const i of this.interfaces) i.ipv4.protocols.set(protocol, target)
  }

  /**
   * Hangs `node` in the "not ours" branch of every interface's IPv4 level (present and
   * future), before forwarding: a datagram routed through the host that `node` claims
   * (returns a path end for) is taken locally, anything it returns null for is forwarded
   * as before. TCP's interception (transparent proxies) registers here; null removes it.
   */
  setIntercept(node: ClassifierNode | null): void {
    this.interceptNode = node
    for (const i of this.interfaces) i.ipv4.intercept = node
  }

  /** Removes a registration. */
  unregisterProtocol(protocol: number): void {
    this.protocols.delete(protocol)
    for (const i of this.interfaces) i.ipv4.protocols.delete(protocol)
  }

  /**
   * The network stages for a connection to `remote` over `protocol`: `[ETH, IP]` for the
   * interface the route goes out of. Throws {@link ConfigError} when there is no route.
   */
  netStages(remote: number | string, protocol: number, opts: NetStagesOptions = {}): NetStages {
    const dst = typeof remote === 'string' ? parseIPv4(remote) : remote >>> 0
    const r = this.routes.lookup(dst)
    if (r === undefined) throw new ConfigError(`${this.name}: no route to ${formatIPv4(dst)}; add one with host.addRoute('0.0.0.0/0', { via })`)
    const iface = r.iface
    const up = opts.up ?? Dir.Forward
    const eth = new EthStage({ mac: iface.mac, arp: iface.arp, up })
    const ip = new IpStage<Interface>({
      link: iface, routes: this.routes, protocol, remote: dst, up, ...(opts.local !== undefined ? { local: opts.local } : {}),
      ...(opts.df !== undefined ? { df: opts.df } : {}), ...(opts.ttl !== undefined ? { ttl: opts.ttl } : {}),
    })
    return { stages: up === Dir.Forward ? [eth, ip] : [ip, eth], eth, ip, localIp: ip.local, iface }
  }

  /** Connects end `end` (default 0) of `path` to `iface`'s device and adopts it into the scheduler. */
  attach(path: Path, iface: Interface, end: 0 | 1 = 0): Path {
    path.connect(end, iface.device)
    this.scheduler.adopt(path)
    this.attached.add(path)
    return path
  }

  /** Forgets an attached path (after closing it). */
  detach(path: Path): void {
    this.attached.delete(path)
  }

  /** Subscribes to ICMP errors received by any interface; returns the unsubscribe function. */
  onIcmpError(listener: IcmpErrorListener): () => void {
    this.errorListeners.add(listener)
    return () => this.errorListeners.delete(listener)
  }

  /**
   * Sends `count` echo requests to `ip` and resolves with the replies' RTTs. Timers run
   * on the host's scheduler: with a ManualClock, drive it (`runFor`) before awaiting.
   */
  ping(ip: number | string, opts: PingOptions = {}): Promise<PingResult> {
    const dst = typeof ip === 'string' ? parseIPv4(ip) : ip >>> 0
    const count = opts.count ?? 1
    const timeoutMs = opts.timeoutMs ?? 1000
    const intervalMs = opts.intervalMs ?? 100
    const size = opts.size ?? 56
    const r = this.routes.lookup(dst)
    if (r === undefined) return Promise.reject(new ConfigError(`${this.name}: no route to ${formatIPv4(dst)}`))
    const icmp = r.iface.icmp
    const id = this.nextPingId
    this.nextPingId = (id % 65535) + 1
    const s = this.scheduler
    const result: PingResult = { sent: 0, received: 0, rttMs: [] }
    const sentAt = new Map<number, number>()
    return new Promise(resolve => {
      let seq = 0
      const finish = s.timer(() => {
        this.pings.delete(id)
        resolve(result)
      })
      const next = s.timer(() => {
        seq++
        sentAt.set(seq, s.now())
        result.sent++
        icmp.sendEcho(dst, id, seq, size)
        if (seq < count) next.set(intervalMs)
        else finish.set(timeoutMs)
      })
      this.pings.set(id, (rseq, from) => {
        const t0 = sentAt.get(rseq)
        if (t0 === undefined || from !== dst || s.now() - t0 > timeoutMs) return
        sentAt.delete(rseq)
        result.received++
        result.rttMs.push(s.now() - t0)
        if (result.received === count) {
          finish.cancel()
          next.cancel()
          this.pings.delete(id)
          resolve(result)
        }
      })
      next.set(0)
    })
  }

  /** Everything about the host as text: interfaces, routes, ARP tables, classifiers, paths. */
  describe(): string {
    const out: string[] = [`host ${this.name}`]
    for (const i of this.interfaces) {
      out.push(`  interface ${i.name} ${formatIPv4(i.address)}/${i.prefixLength} mac ${formatMac(i.mac)} mtu ${i.mtu}`)
      const arp = i.arp.describe()
      if (arp) out.push(...arp.split('\n').map(l => `    arp ${l}`))
    }
    out.push('  routes')
    out.push(...this.routes.describe(i => i.name).split('\n').filter(Boolean).map(l => `    ${l}`))
    for (const i of this.interfaces) out.push(...i.classifier.describe().split('\n').map(l => `  ${l}`))
    out.push('  paths')
    for (const i of this.interfaces) for (const p of [i.arpPath, i.icmpPath, i.reasmPath]) out.push(`    ${p.describe()}`)
    for (const p of this.attached) out.push(`    ${p.describe()}`)
    return out.join('\n')
  }

  /** Closes the host's own paths, unbinds the devices and discards partial datagrams (devices stay open). */
  close(): void {
    for (const i of this.interfaces) {
      i.binding.unbind()
      i.arp.clear()
      i.arpPath.close()
      i.icmpPath.close()
      i.reasmPath.close()
    }
    for (const p of this.attached) p.close()
    this.attached.clear()
    this.reassembler.clear()
    this.pings.clear()
  }

  /** RFC 1122 §3.3.2: time exceeded (code 1) to the source of a datagram we could not reassemble. */
  private reassemblyTimedOut(b: Uint8Array, off: number, end: number): void {
    const r = this.routes.lookup(get32(b, off + 12))
    if (r !== undefined) r.iface.icmp.sendError(b, off, end, IcmpType.TIME_EXCEEDED, TimeExceededCode.REASSEMBLY)
  }

  private emitError(r: IcmpErrorReport): void {
    for (const l of this.errorListeners) l(r)
  }
}

function parseMacOrThrow(text: string, where: string): Uint8Array {
  try {
    return parseMac(text)
  } catch {
    throw new ConfigError(`${where}: bad MAC '${text}': expected six hex bytes like 02:00:00:00:01:01`)
  }
}
