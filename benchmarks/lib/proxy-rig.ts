/**
 * The five Scout configurations (DESIGN §4) as benchmark rigs: a client, a forwarder and a
 * server, where the forwarder's two devices are {@link BenchDevice}s.
 *
 * ```
 *   client 10.0.0.2 ── wire ── [BenchDevice A] forwarder [BenchDevice B] ── wire ── 10.0.1.2 server
 *   forwarder: 2-path / 1-path proxy (our TCP both ways), FWD, IP/FWD (spliced), or an IP router
 * ```
 * For the proxies the client and the server are real hosts running our TCP: they connect
 * through the proxy over memory wires in virtual time and, for FWD and IP/FWD, the proxy
 * splices the session. Then the devices switch to bench mode: the wires go quiet and the
 * benchmark continues the connection with frames it builds itself from the peers' TCB
 * state (next sequence and acknowledgment numbers, ports), so every segment the forwarder
 * sees is one it would see on that live connection.
 * @module
 */
import { parseIPv4 } from '../../core/bytes.js'
import { ManualClock } from '../../core/clock.js'
import { csumUpdate32 } from '../../core/checksum.js'
import { framePool, type Msg } from '../../core/msg.js'
import type { Path } from '../../core/path.js'
import { Scheduler } from '../../core/scheduler.js'
import { MemoryWire, type Impairments } from '../../drivers/memory/wire.js'
import { Host } from '../../paths/host.js'
import { IpRouter } from '../../paths/ip-router.js'
import { ProxyForwarder } from '../../paths/proxy/forwarder.js'
import { emitEth } from '../../stages/eth/header.js'
import { emitIpv4 } from '../../stages/ip/header.js'
import type { ProxyHandler, ProxySessionApi } from '../../stages/proxy/session.js'
import { emitTcp, TcpFlag } from '../../stages/tcp/segment.js'
import { TcpModule, type TcpConnection } from '../../stages/tcp/module.js'
import type { TcbConfig } from '../../stages/tcp/tcb.js'
import { BenchDevice } from './bench-device.js'

/** The configurations of Scout's Table II. */
export type ScoutConfig = '2-path' | '1-path' | 'fwd' | 'ipfwd' | 'ipfwd-shared' | 'router'

/** All of them, in the paper's order. */
export const SCOUT_CONFIGS: readonly ScoutConfig[] = ['2-path', '1-path', 'fwd', 'ipfwd', 'ipfwd-shared', 'router']

/** Names as in the paper. */
export const CONFIG_LABEL: Record<ScoutConfig, string> = { '2-path': '2-path', '1-path': '1-path', fwd: 'FWD', ipfwd: 'IP/FWD', 'ipfwd-shared': 'IP/FWD (shared path)', router: 'IP router' }

/**
 * TCB tunables of every connection: no timestamps (a 1460-byte segment carries 1460
 * bytes, as in Scout's measurement), Nagle off (one segment out per segment in), buffers
 * large enough that a round of 64 full segments never waits for room.
 */
export const BENCH_TCB: TcbConfig = { noDelay: true, sndBuf: 1 << 20, rcvBuf: 1 << 20, timestamps: false }

export const CLIENT_IP = parseIPv4('10.0.0.2')
export const PROXY_A_IP = parseIPv4('10.0.0.1')
export const PROXY_B_IP = parseIPv4('10.0.1.1')
export const SERVER_IP = parseIPv4('10.0.1.2')
export const PROXY_PORT = 1080
export const SERVER_PORT = 8080
const MAC = (n: number): Uint8Array => Uint8Array.of(2, 0, 0, 0, 0, n)

/** One side's frame addressing: who sends and to whom. */
export interface FrameEnds {
  srcMac: Uint8Array
  dstMac: Uint8Array
  srcIp: number
  dstIp: number
  srcPort: number
  dstPort: number
}

/** A reusable TCP frame whose seq/ack fields are patched in place (RFC 1624 checksum update). */
export class FrameTemplate {
  /** The frame bytes. */
  readonly bytes: Uint8Array
  // Numbers from the start, and int32 across calls: the harness must cost the same whatever
  // the sequence numbers (a field that first held undefined, or a uint32 >= 2^31 passed to
  // a call, allocates a heap number per store; the router rig's sequence numbers are small,
  // the proxies' are not, and the harness is timed on the router rig).
  private seq = 0
  private ack = 0
  private static readonly TCP = 14 + 20

  /** Builds an ACK|PSH segment (PSH only with payload) of `payloadLen` zero bytes. */
  constructor(e: FrameEnds, seq: number, ack: number, payloadLen: number, window = 0xffff) {
    const payload = new Uint8Array(payloadLen)
    const flags = TcpFlag.ACK | (payloadLen > 0 ? TcpFlag.PSH : 0)
    const tcp = emitTcp({ srcPort: e.srcPort, dstPort: e.dstPort, seq, ack, flags, window, payload }, e.srcIp, e.dstIp)
    this.bytes = emitEth({ dst: e.dstMac, src: e.srcMac, type: 0x0800 }, emitIpv4({ src: e.srcIp, dst: e.dstIp, protocol: 6, ttl: 64, id: 0, df: true, payload: tcp }), false)
    this.seq = seq >>> 0
    this.ack = ack >>> 0
  }

  /** Sets the sequence number. */
  setSeq(v: number): void {
    v >>>= 0
    this.patch(4, this.seq | 0, v | 0)
    this.seq = v
  }

  /** Sets the acknowledgment number. */
  setAck(v: number): void {
    v >>>= 0
    this.patch(8, this.ack | 0, v | 0)
    this.ack = v
  }

  /** A pooled Msg holding a copy of the frame (what a device's receive would hand over). */
  msg(): Msg {
    return framePool.allocFrom(this.bytes)
  }

  private patch(at: number, old: number, v: number): void {
    const b = this.bytes
    const o = FrameTemplate.TCP + at
    b[o] = v >>> 24
    b[o + 1] = (v >>> 16) & 0xff
    b[o + 2] = (v >>> 8) & 0xff
    b[o + 3] = v & 0xff
    const c = FrameTemplate.TCP + 16
    const cs = csumUpdate32((b[c]! << 8) | b[c + 1]!, old, v)
    b[c] = cs >>> 8
    b[c + 1] = cs & 0xff
  }
}

/** A forwarder in one configuration, with a connection ready to be driven by frames. */
export interface Rig {
  /** Its configuration. */
  config: ScoutConfig
  /** The scheduler (virtual time). */
  sched: Scheduler
  /** The clock. */
  clock: ManualClock
  /** The forwarder's client-side device. */
  devA: BenchDevice
  /** The forwarder's server-side device. */
  devB: BenchDevice
  /** Frames from the client to the forwarder. */
  fromClient: FrameEnds
  /** Frames from the server to the forwarder. */
  fromServer: FrameEnds
  /** The client's next sequence number and what it acknowledges. */
  clientSeq: number
  /** See clientSeq. */
  clientAck: number
  /** The server's next sequence number; its ACKs acknowledge `devB.sink.highSeq`. */
  serverSeq: number
  /** The forwarder's paths (for drop counters). */
  paths(): Path[]
  /** The proxy, if any. */
  proxy: ProxyForwarder | null
  /** The proxied session, if any. */
  session: ProxySessionApi | null
  /** Switches both devices to bench mode (inject and sink). */
  benchMode(): void
}

/** Every drop counted by the stages of `paths`, as `stage:reason` -> count. */
export function pathDrops(paths: Path[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const p of paths) for (const s of p.stages) for (const [k, v] of Object.entries(s.drops)) out[`${s.name}:${k}`] = (out[`${s.name}:${k}`] ?? 0) + v
  return out
}

/** A plug gateway: connect to the server, relay both ways. */
export function plugHandler(onServerOpen?: (s: ProxySessionApi) => void): ProxyHandler {
  return {
    name: 'plug',
    onClientOpen: s => s.connect(SERVER_IP, SERVER_PORT),
    onServerOpen: s => onServerOpen?.(s),
  }
}

/** A client, a proxy (or router) and a server on memory wires, devices wrapped for benchmarking. */
export interface ProxyNet {
  clock: ManualClock
  sched: Scheduler
  devA: BenchDevice
  devB: BenchDevice
  /** The server's device (a BenchDevice kept live: its `onRx` sees what the server receives). */
  devS: BenchDevice
  client: Host
  server: Host
  proxyHost: Host | null
  tcpC: TcpModule
  tcpS: TcpModule
  tcpP: TcpModule | null
  proxy: ProxyForwarder | null
  router: IpRouter | null
}

/** Options of {@link proxyNet}. */
export interface ProxyNetOptions {
  /** A proxy with this layout, or a plain IP router between the hosts. */
  forwarder: '1-path' | '2-path' | 'router'
  /** The proxy's handler [plug]. */
  handler?: ProxyHandler
  /** TCB tunables of the client and server. */
  peerTcb?: TcbConfig
  /** TCB tunables of the proxy. */
  proxyTcb?: TcbConfig
  /** One-way delay of each wire [0]. */
  delayMs?: number
  /** The proxy trusts TCP checksums (as behind a device that verified them: receive checksum offload) [false]. */
  trustChecksums?: boolean
  /** Rate limit of the client's wire, bit/s [none]. */
  clientRateBps?: number
  /** Rate limit of the server's wire, bit/s [none]: the bottleneck where the proxy's buffers fill. */
  serverRateBps?: number
  /** Frames a rate-limited wire queues before it drops [unbounded]. */
  queueFrames?: number
}

/** Builds the network. */
export function proxyNet(o: ProxyNetOptions): ProxyNet {
  const clock = new ManualClock()
  const sched = new Scheduler({ clock })
  const impair = (rate?: number): Impairments => ({ ...(o.delayMs ? { delayMs: o.delayMs } : {}), ...(rate ? { rateBps: rate, queueLimit: o.queueFrames ?? 1 << 30 } : {}) })
  const w1 = new MemoryWire(sched, { a: { mac: MAC(1) }, b: { mac: MAC(2) }, impair: impair(o.clientRateBps) })
  const w2 = new MemoryWire(sched, { a: { mac: MAC(3) }, b: { mac: MAC(4) }, impair: impair(o.serverRateBps) })
  const client = new Host(sched, { name: 'client' })
  const server = new Host(sched, { name: 'server' })
  const devA = new BenchDevice(w1.b)
  const devB = new BenchDevice(w2.a)
  const devS = new BenchDevice(w2.b)
  const ic = client.addInterface(w1.a, { address: '10.0.0.2/24', announce: false })
  const is = server.addInterface(devS, { address: '10.0.1.2/24', announce: false })
  ic.arp.setStatic(PROXY_A_IP, devA.mac)
  is.arp.setStatic(PROXY_B_IP, devB.mac)
  const isnSecret = new Uint8Array(16).fill(3)
  const peer = o.peerTcb ?? BENCH_TCB
  const tcpC = new TcpModule(client, { config: peer, isnSecret })
  const tcpS = new TcpModule(server, { config: peer, isnSecret })
  if (o.forwarder === 'router') {
    client.addRoute('0.0.0.0/0', { via: '10.0.0.1' })
    server.addRoute('0.0.0.0/0', { via: '10.0.1.1' })
    const router = new IpRouter(sched, { sides: [{ device: devA, address: '10.0.0.1/24', announce: false }, { device: devB, address: '10.0.1.1/24', announce: false }] })
    router.sides[0].arp.setStatic(CLIENT_IP, w1.a.mac)
    router.sides[1].arp.setStatic(SERVER_IP, devS.mac)
    return { clock, sched, devA, devB, devS, client, server, proxyHost: null, tcpC, tcpS, tcpP: null, proxy: null, router }
  }
  const p = new Host(sched, { name: 'proxy' })
  const ia = p.addInterface(devA, { address: '10.0.0.1/24', announce: false })
  const ib = p.addInterface(devB, { address: '10.0.1.1/24', announce: false })
  ia.arp.setStatic(CLIENT_IP, w1.a.mac)
  ib.arp.setStatic(SERVER_IP, devS.mac)
  const tcpP = new TcpModule(p, { config: o.proxyTcb ?? BENCH_TCB, isnSecret, trustChecksums: o.trustChecksums ?? false })
  const proxy = new ProxyForwarder({ host: p, tcp: tcpP, port: PROXY_PORT, handler: o.handler ?? plugHandler(), layout: o.forwarder, tcb: o.proxyTcb ?? BENCH_TCB })
  return { clock, sched, devA, devB, devS, client, server, proxyHost: p, tcpC, tcpS, tcpP, proxy, router: null }
}

/**
 * Builds a rig: for the proxies, connects client and server through the proxy (and
 * splices for FWD / IP/FWD), then reads the peers' TCB state for the frames to come.
 */
export function buildRig(config: ScoutConfig, trustChecksums = false): Rig {
  const net = proxyNet({ forwarder: config === 'router' ? 'router' : config === '2-path' ? '2-path' : '1-path', trustChecksums })
  const { sched, devA, devB } = net
  if (net.router !== null) {
    const r = net.router
    const cPort = 40000
    return {
      config, sched, clock: net.clock, devA, devB, proxy: null, session: null,
      fromClient: { srcMac: MAC(1), dstMac: devA.mac, srcIp: CLIENT_IP, dstIp: SERVER_IP, srcPort: cPort, dstPort: SERVER_PORT },
      fromServer: { srcMac: MAC(4), dstMac: devB.mac, srcIp: SERVER_IP, dstIp: CLIENT_IP, srcPort: SERVER_PORT, dstPort: cPort },
      clientSeq: 1000, clientAck: 5000, serverSeq: 5000,
      paths: () => [r.path],
      benchMode() {
        devA.live = false
        devB.live = false
        devB.sink.highSeq = 1000
      },
    }
  }
  let session: ProxySessionApi | null = null
  let serverConn: TcpConnection | null = null
  net.tcpS.listen(SERVER_PORT, c => {
    serverConn = c
    c.stage.app = { onData() {} }
  })
  const proxy = net.proxy!
  const cc = net.tcpC.connect(PROXY_A_IP, PROXY_PORT)
  cc.stage.app = { onData() {} }
  const origOpen = proxy.handler.onServerOpen
  ;(proxy.handler as { onServerOpen?: (s: ProxySessionApi) => void }).onServerOpen = s => {
    session = s
    origOpen?.call(proxy.handler, s)
  }
  sched.runFor(50)
  const sc = serverConn as TcpConnection | null
  if (session === null || sc === null || cc.stage.tcb.state !== 'ESTABLISHED') throw new Error(`${config}: the proxied connection did not open`)
  const sess = session as ProxySessionApi
  if (config === 'fwd' || config === 'ipfwd' || config === 'ipfwd-shared') {
    sess.splice({ mode: config })
    sched.runFor(50)
    if (sess.state !== 'spliced') throw new Error(`${config}: the splice did not complete (state ${sess.state})`)
  }
  sched.runFor(200) // delayed ACKs out, everything quiet
  const cs = cc.stage.tcb.snapshot()
  const ss = sc.stage.tcb.snapshot()
  const fwdPaths = (): Path[] => {
    const w = proxy.sessions.values().next().value
    const shared = [...proxy.sharedPaths.values()].map(sp => sp.path)
    return w === undefined ? shared : [w.pathA, ...(w.pathB ? [w.pathB] : []), ...shared]
  }
  return {
    config, sched, clock: net.clock, devA, devB, proxy, session: sess,
    fromClient: { srcMac: MAC(1), dstMac: devA.mac, srcIp: CLIENT_IP, dstIp: PROXY_A_IP, srcPort: cs.localPort, dstPort: PROXY_PORT },
    fromServer: { srcMac: MAC(4), dstMac: devB.mac, srcIp: SERVER_IP, dstIp: PROXY_B_IP, srcPort: SERVER_PORT, dstPort: ss.remotePort },
    clientSeq: cs.sndNxt, clientAck: cs.rcvNxt, serverSeq: ss.sndNxt,
    paths: fwdPaths,
    benchMode() {
      devA.live = false
      devB.live = false
      devB.sink.highSeq = ss.rcvNxt
    },
  }
}
