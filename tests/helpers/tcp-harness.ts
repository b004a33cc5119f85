/**
 * Test harness for the pure TCB: a ManualClock and timer heap, a host that records every
 * segment sent as a TcpRepr, and helpers that read like a packet trace (STYLE.md §5.6).
 */
import type { Test } from 'tap'
import { ManualClock } from '../../core/clock.js'
import { Msg } from '../../core/msg.js'
import { TimerQueue } from '../../core/timers.js'
import { emitTcp, formatFlags, parseTcp, TcpFlag, type TcpRepr } from '../../stages/tcp/segment.js'
import { Tcb, type TcbConfig, type TcbDropReason, type TcbHost } from '../../stages/tcp/tcb.js'

export const { FIN, SYN, RST, PSH, ACK } = TcpFlag
export const LOCAL_PORT = 80
export const REMOTE_PORT = 40000
export const ISS = 1000
export const PEER_ISS = 5000

/** A recording host on virtual time. */
export class TestHost implements TcbHost {
  readonly clock = new ManualClock(0)
  readonly timers = new TimerQueue(this.clock)
  readonly out: TcpRepr[] = []
  readonly drops: Record<string, number> = {}
  lastDrop: string | null = null
  now(): number {
    return this.clock.now()
  }
  timer(cb: (now: number) => void) {
    return this.timers.timer(cb)
  }
  output(msg: Msg): void {
    const r = parseTcp(msg.buf, msg.off, msg.end)
    msg.free()
    if (typeof r === 'string') throw new Error(`TCB emitted a bad segment: ${r}`)
    this.out.push(r)
  }
  drop(msg: Msg, reason: TcbDropReason): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1
    this.lastDrop = reason
    if (msg.live) msg.free()
  }
  /** Advances virtual time to `t`, firing due timers on the way (in deadline order). */
  advanceTo(t: number): void {
    for (;;) {
      const next = this.timers.nextDeadline()
      if (next > t) break
      if (next > this.clock.now()) this.clock.set(next)
      this.timers.runDue(next)
    }
    if (t > this.clock.now()) this.clock.set(t)
  }
  /** Advances by `ms`. */
  advance(ms: number): void {
    this.advanceTo(this.clock.now() + ms)
  }
  /** Takes (and clears) what was sent. */
  take(): TcpRepr[] {
    return this.out.splice(0)
  }
}

/** A segment from the peer to the TCB under test, defaults filled. */
export function fromPeer(r: Partial<TcpRepr>): TcpRepr {
  return { srcPort: REMOTE_PORT, dstPort: LOCAL_PORT, seq: 0, ack: 0, flags: ACK, window: 65535, ...r }
}

/** Delivers `r` to `tcb` (optionally at time `at`). */
export function deliver(host: TestHost, tcb: Tcb, r: Partial<TcpRepr>, at?: number): void {
  if (at !== undefined) host.advanceTo(at)
  const bytes = emitTcp(fromPeer(r))
  tcb.input(Msg.from(bytes))
}

/** Expected fields of a sent segment (anything not given is not checked; PSH ignored unless given). */
export interface Expect {
  flags?: number
  seq?: number
  ack?: number
  window?: number
  len?: number
  mss?: number
  wscale?: number | null
  sackPermitted?: boolean
  sack?: [number, number][] | null
  ts?: [number, number] | null
}

/** Short description of a segment for messages. */
export function describeSeg(r: TcpRepr): string {
  const o = r.options ?? {}
  const extra = [
    o.mss !== undefined ? `mss=${o.mss}` : '',
    o.wscale !== undefined ? `ws=${o.wscale}` : '',
    o.sackPermitted ? 'sackOK' : '',
    o.sack ? `sack=${o.sack.map(([a, b]) => `${a}-${b}`).join(',')}` : '',
    o.ts ? `ts=${o.ts[0]}/${o.ts[1]}` : '',
  ].filter(Boolean).join(' ')
  return `${formatFlags(r.flags)} seq=${r.seq} ack=${r.ack} win=${r.window} len=${r.payload?.length ?? 0} ${extra}`.trim()
}

/** Asserts that exactly `exp.length` segments were sent, each matching, and clears them. */
export function expectSent(t: Test, host: TestHost, exp: Expect[], msg = 'segments sent'): TcpRepr[] {
  const got = host.take()
  t.equal(got.length, exp.length, `${msg}: count (got ${got.map(describeSeg).join(' | ') || 'nothing'})`)
  for (let i = 0; i < Math.min(got.length, exp.length); i++) {
    const g = got[i]!
    const e = exp[i]!
    const d = describeSeg(g)
    if (e.flags !== undefined) {
      const mask = e.flags & PSH ? 0xff : 0xff & ~PSH
      t.equal(formatFlags(g.flags & mask), formatFlags(e.flags & mask), `${msg} #${i} flags: ${d}`)
    }
    if (e.seq !== undefined) t.equal(g.seq, e.seq >>> 0, `${msg} #${i} seq: ${d}`)
    if (e.ack !== undefined) t.equal(g.ack, e.ack >>> 0, `${msg} #${i} ack: ${d}`)
    if (e.window !== undefined) t.equal(g.window, e.window, `${msg} #${i} window: ${d}`)
    if (e.len !== undefined) t.equal(g.payload?.length ?? 0, e.len, `${msg} #${i} len: ${d}`)
    if (e.mss !== undefined) t.equal(g.options?.mss, e.mss, `${msg} #${i} mss: ${d}`)
    if (e.wscale !== undefined) t.equal(g.options?.wscale ?? null, e.wscale, `${msg} #${i} wscale: ${d}`)
    if (e.sackPermitted !== undefined) t.equal(!!g.options?.sackPermitted, e.sackPermitted, `${msg} #${i} sackPermitted: ${d}`)
    if (e.sack !== undefined) t.same(g.options?.sack ?? null, e.sack, `${msg} #${i} sack: ${d}`)
    if (e.ts !== undefined) t.same(g.options?.ts ?? null, e.ts, `${msg} #${i} ts: ${d}`)
  }
  return got
}

/** Builds a TCB on a fresh host. */
export function newTcb(config: TcbConfig = {}, tsOffset = 0): { host: TestHost; tcb: Tcb } {
  const host = new TestHost()
  const tcb = new Tcb(host, LOCAL_PORT, REMOTE_PORT, ISS, config, tsOffset)
  return { host, tcb }
}

/** SYN options a Linux peer would send. */
export const LINUX_SYN_OPTS = { mss: 1460, sackPermitted: true, ts: [7777, 0] as [number, number], wscale: 7 }

/** A passive TCB that received a SYN and sent its SYN-ACK (output cleared). */
export function tcbSynReceived(config: TcbConfig = {}, synOpts: TcpRepr['options'] = { mss: 1460 }): { host: TestHost; tcb: Tcb } {
  const { host, tcb } = newTcb(config)
  tcb.listen()
  deliver(host, tcb, { seq: PEER_ISS, flags: SYN, options: synOpts, window: 65535 })
  host.take()
  return { host, tcb }
}

/**
 * An ESTABLISHED passive TCB: no options unless given (so windows are unscaled and no
 * timestamps), peer window 65535, output cleared. Our next seq is ISS+1, the peer's PEER_ISS+1.
 */
export function tcbEstablished(config: TcbConfig = {}, synOpts: TcpRepr['options'] = { mss: 1460 }): { host: TestHost; tcb: Tcb } {
  const { host, tcb } = tcbSynReceived(config, synOpts)
  const ts = synOpts?.ts ? { options: { ts: [synOpts.ts[0] + 1, tcb.tsLastSent] as [number, number] } } : {}
  deliver(host, tcb, { seq: PEER_ISS + 1, ack: ISS + 1, flags: ACK, window: 65535, ...ts })
  host.take()
  return { host, tcb }
}

/** Bytes 0..n-1 (mod 251) for payloads. */
export function bytes(n: number, start = 0): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (start + i) % 251
  return b
}

/** Reads everything readable from `tcb`. */
export function readAll(tcb: Tcb): Uint8Array {
  const out = new Uint8Array(tcb.readableLength)
  tcb.read(out)
  return out
}
