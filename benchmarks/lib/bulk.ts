/**
 * A bulk transfer from client to server through the proxy of a {@link ProxyNet}, with a
 * trace of the data segments the server receives (time, sequence number): Scout's Fig. 10.
 * @module
 */
import type { Msg } from '../../core/msg.js'
import type { TcpConnection } from '../../stages/tcp/module.js'
import type { ProxySessionApi } from '../../stages/proxy/session.js'
import { PROXY_A_IP, PROXY_PORT, SERVER_PORT, type ProxyNet } from './proxy-rig.js'

/** One data segment seen by the server. */
export interface TracePoint {
  /** Virtual time, ms. */
  t: number
  /** Sequence number relative to the first data byte. */
  seq: number
  /** Payload bytes. */
  len: number
}

/** A running transfer. */
export interface Bulk {
  /** The proxied session (once the server connection opened). */
  session(): ProxySessionApi | null
  /** Bytes the server application has read. */
  received(): number
  /** Data segments seen at the server's device. */
  trace: TracePoint[]
  /** The client's connection. */
  client: TcpConnection
}

/**
 * Starts sending `total` bytes from the client through the proxy (the net's handler must
 * be a plug gateway built with `onSession` capturing the session).
 */
export function startBulk(net: ProxyNet, total: number, sessionRef: { s: ProxySessionApi | null }): Bulk {
  let got = 0
  const sink = new Uint8Array(65536)
  net.tcpS.listen(SERVER_PORT, c => {
    const t = c.stage.tcb
    c.stage.app = { onData() {} }
    t.events = { data: () => { for (let n; (n = t.read(sink)) > 0;) got += n } }
  })
  const trace: TracePoint[] = []
  let isn = -1
  net.devS.onRx = (m: Msg) => {
    const b = m.buf
    const ip = m.off + 14
    if (b[ip + 9] !== 6) return
    const ihl = (b[ip]! & 15) * 4
    const tcp = ip + ihl
    const len = ((b[ip + 2]! << 8) | b[ip + 3]!) - ihl - (b[tcp + 12]! >>> 4) * 4
    if (len <= 0) return
    const seq = ((b[tcp + 4]! << 24) | (b[tcp + 5]! << 16) | (b[tcp + 6]! << 8) | b[tcp + 7]!) >>> 0
    if (isn < 0) isn = seq
    trace.push({ t: net.clock.now(), seq: (seq - isn) >>> 0, len })
  }
  const client = net.tcpC.connect(PROXY_A_IP, PROXY_PORT)
  const tcb = client.stage.tcb
  const chunk = new Uint8Array(65536).fill(0x5a)
  let sent = 0
  const push = (): void => {
    while (sent < total) {
      const n = tcb.write(chunk, 0, Math.min(chunk.length, total - sent))
      if (n === 0) break
      sent += n
    }
  }
  client.stage.app = { onData() {} }
  tcb.events = { connected: push, writable: push }
  return { session: () => sessionRef.s, received: () => got, trace, client }
}

/** Bytes per `binMs` bin of a trace, as Mbit/s, from `from` to `to` ms. */
export function throughputBins(trace: TracePoint[], binMs: number, from: number, to: number): { t: number; mbps: number }[] {
  const n = Math.max(1, Math.ceil((to - from) / binMs))
  const bytes = new Float64Array(n)
  for (const p of trace) {
    const i = Math.floor((p.t - from) / binMs)
    if (i >= 0 && i < n) bytes[i]! += p.len
  }
  return Array.from(bytes, (b, i) => ({ t: from + i * binMs, mbps: (b * 8) / (binMs * 1e3) }))
}
