/**
 * An MSOCKS network on memory wires, our TCP everywhere, in virtual time: a client host
 * with two interfaces (two addresses), a proxy with three, a server.
 * ```
 *   client 10.0.0.2 ── wire 1 ── 10.0.0.1 ┐
 *                                          proxy 10.0.1.1 ── wire 2 ── 10.0.1.2 server
 *   client 10.0.2.2 ── wire 3 ── 10.0.2.1 ┘
 * ```
 */
import { parseIPv4 } from '../../core/bytes.js'
import { ManualClock } from '../../core/clock.js'
import { Scheduler } from '../../core/scheduler.js'
import { MemoryWire, type Impairments } from '../../drivers/memory/wire.js'
import { Host } from '../../paths/host.js'
import { ProxyForwarder, type ProxyLayout } from '../../paths/proxy/forwarder.js'
import { Resplicer } from '../../paths/proxy/resplice.js'
import { MsocksService, type MsocksLogEvent } from '../../stages/proxy/handlers/msocks.js'
import { socks5Proxy, type Socks5LogEvent } from '../../stages/proxy/handlers/socks5.js'
import { TcpModule } from '../../stages/tcp/module.js'
import { TcpSocket } from '../../stages/tcp/socket.js'
import type { TcbConfig } from '../../stages/tcp/tcb.js'
import type { MobileConnectTarget, MobileTransport } from '../../clients/msocks/index.js'
import { CLIENT, PROXY_A, PROXY_B, PROXY_PORT, SERVER, SERVER_PORT, staticArp } from './proxy-net.js'

/** Wires 1 and 2 are proxy-net's: the same client, proxy and server addresses and ports. */
export { PROXY_PORT, SERVER, SERVER_PORT }
export const CLIENT1 = CLIENT
export const CLIENT2 = '10.0.2.2'
export const PROXY1 = PROXY_A
export const PROXY2 = '10.0.2.1'
export const USERS = { alice: 'wonderland', mallory: 'evil' }

/** Options of {@link msocksNet}. */
export interface MsocksNetOptions {
  seed?: number
  /** Impairments of the two client wires. */
  impairClient?: Impairments
  /** Impairments of the server wire. */
  impairServer?: Impairments
  layout?: ProxyLayout
  mode?: 'fwd' | 'ipfwd'
  tcb?: TcbConfig
  /** TCB tunables of the client host only (over `tcb`). */
  clientTcb?: TcbConfig
  /** The SOCKS handler splices after the reply [true]; false relays (control mode). */
  socksSplice?: boolean
  /** The SOCKS handler accepts BIND / MBIND [false]. */
  bind?: boolean
  /** Its BIND timeout (virtual ms). */
  bindTimeoutMs?: number
}

/** A wire whose lanes can be cut (hard hand-off: nothing more crosses) and restored. */
export class Cuttable {
  private saved: [unknown, unknown] | null = null
  constructor(readonly wire: MemoryWire) {}
  cut(): void {
    if (this.saved !== null) return
    this.saved = [this.wire.a.lane, this.wire.b.lane]
    this.wire.a.lane = null
    this.wire.b.lane = null
  }
  restore(): void {
    if (this.saved === null) return
    this.wire.a.lane = this.saved[0] as MemoryWire['a']['lane']
    this.wire.b.lane = this.saved[1] as MemoryWire['b']['lane']
    this.saved = null
  }
}

/** Builds the network, a SOCKS5 proxy with MSOCKS (users alice, mallory) and its resplicer. */
export function msocksNet(o: MsocksNetOptions = {}) {
  const clock = new ManualClock()
  const sched = new Scheduler({ clock })
  const seed = o.seed ?? 1
  const delay: Impairments = { delayMs: 2 }
  const mk = (s: number, imp: Impairments | undefined) => new MemoryWire(sched, { seed: s, impair: imp ?? delay })
  const w1 = mk(seed, o.impairClient)
  const w2 = mk(seed + 1, o.impairServer)
  const w3 = mk(seed + 2, o.impairClient)
  const c = new Host(sched, { name: 'client' })
  const p = new Host(sched, { name: 'proxy' })
  const s = new Host(sched, { name: 'server' })
  const ic1 = c.addInterface(w1.a, { address: `${CLIENT1}/24`, announce: false })
  const ic2 = c.addInterface(w3.a, { address: `${CLIENT2}/24`, announce: false })
  const ip1 = p.addInterface(w1.b, { address: `${PROXY1}/24`, announce: false })
  const ip2 = p.addInterface(w2.a, { address: `${PROXY_B}/24`, announce: false })
  const ip3 = p.addInterface(w3.b, { address: `${PROXY2}/24`, announce: false })
  const is = s.addInterface(w2.b, { address: `${SERVER}/24`, announce: false })
  staticArp(ic1, ip1)
  staticArp(ic2, ip3)
  staticArp(ip2, is)
  const isnSecret = new Uint8Array(16).fill(7)
  const tcb = o.tcb ?? {}
  const tcpC = new TcpModule(c, { config: { ...tcb, ...o.clientTcb }, isnSecret })
  const tcpP = new TcpModule(p, { config: tcb, isnSecret })
  const tcpS = new TcpModule(s, { config: tcb, isnSecret })
  const socksLog: Socks5LogEvent[] = []
  const msocksLog: MsocksLogEvent[] = []
  const msocks = new MsocksService({ onLog: e => msocksLog.push(e) })
  const handler = socks5Proxy({ users: USERS, rules: [{ action: 'allow', dst: '10.0.1.0/24' }], msocks, onLog: e => socksLog.push(e), splice: o.socksSplice ?? true, ...(o.mode ? { mode: o.mode } : {}), bind: o.bind ?? false, ...(o.bindTimeoutMs !== undefined ? { bindTimeoutMs: o.bindTimeoutMs } : {}) })
  const fw = new ProxyForwarder({ host: p, tcp: tcpP, port: PROXY_PORT, handler, tcb, ...(o.layout ? { layout: o.layout } : {}) })
  const resplicer = new Resplicer(fw, msocks)
  /** A socket factory for MobileSocket over the client host's TCP (the route picks the interface). */
  const connect = (t: MobileConnectTarget): MobileTransport => new TcpSocket(tcpC.connect(parseIPv4(t.host), t.port))
  /** Runs virtual time in small steps, letting promises, timers and stream callbacks run. */
  const until = async (cond: () => boolean, limitMs = 120_000, stepMs = 2): Promise<boolean> => {
    const end = clock.now() + limitMs
    while (!cond()) {
      if (clock.now() >= end) return false
      sched.runFor(stepMs)
      await new Promise(r => setImmediate(r))
    }
    return true
  }
  return {
    clock, sched, c, p, s, tcpC, tcpP, tcpS, fw, msocks, resplicer, socksLog, msocksLog, connect, until,
    wire1: new Cuttable(w1), wire2: new Cuttable(w2), wire3: new Cuttable(w3),
  }
}
