/**
 * Splice configuration: the per-direction FWD state computed from the two connections'
 * control blocks at the moment of the splice (DESIGN §5, Scout §III-C, IBM TCP Splice §3.2).
 *
 * Connection A joins the client and the proxy, B the proxy and the server. For segments
 * from A's peer (A -> B):
 * ```
 *   seqOffset   = B.sndEnd - A.rcvNxt
 *                 (the end of B's send stream, FIN included: what the proxy already queued
 *                  for the server comes first; the client's next byte follows it)
 *   ackOffset   = the B -> A seqOffset
 *   tsvalOffset = B.tsLastSent - A.tsRecent   (the server sees TSvals continue from ours)
 *   inShift     = A.sndWscale (the client's shift), outShift = B.rcvWscale (ours towards B)
 *   base        = A.rcvNxt (older data was consumed by the proxy: chop it)
 * ```
 * and symmetrically for B -> A. Timestamps are mapped when both connections use them and
 * NOP-ed when only one does; SACK blocks are mapped when both negotiated SACK, else NOP-ed.
 * @module
 */
import type { TcbSnapshot } from '../../stages/tcp/tcb.js'
import { TsMode, type FwdDirectionConfig } from '../../stages/fwd/rewrite.js'
import type { FwdConfig } from '../../stages/fwd/stage.js'
import { SpliceStateError } from '../../core/errors.js'
import { seqAdd } from '../../core/seq.js'

/** The addresses of one spliced connection, from the proxy's side. */
export interface ConnectionAddrs {
  /** Our address on this connection. */
  localIp: number
  /** The peer's address. */
  remoteIp: number
  /** Our port. */
  localPort: number
  /** The peer's port. */
  remotePort: number
}

/** One side of a splice: its addresses and its control block's state. */
export interface SpliceSide {
  /** Addresses. */
  addrs: ConnectionAddrs
  /** The TCB's state at the splice. */
  tcb: TcbSnapshot
}

/** States in which a connection can be spliced: synchronized, and a direction may still carry data or need ACKs. */
export const SPLICEABLE_STATES: ReadonlySet<string> = new Set(['ESTABLISHED', 'CLOSE-WAIT', 'FIN-WAIT-1', 'FIN-WAIT-2'])

/**
 * Why `from` -> `to` cannot be spliced, or null. A direction whose sender already sent
 * FIN is fine once the proxy passed the FIN on (the other TCB has it queued): FWD then
 * only carries that direction's ACKs.
 */
function directionProblem(from: SpliceSide, to: SpliceSide, name: string): string | null {
  if (from.tcb.finReceived && !to.tcb.finQueued) return `the ${name} sent FIN and the proxy has not passed it on`
  return null
}

function direction(from: SpliceSide, to: SpliceSide, ackOffset: number, tsecrOffset: number): FwdDirectionConfig {
  const tsMode = from.tcb.tsOk && to.tcb.tsOk ? TsMode.Map : from.tcb.tsOk || to.tcb.tsOk ? TsMode.Nop : TsMode.None
  const c: FwdDirectionConfig = {
    outSrcIp: to.addrs.localIp,
    outDstIp: to.addrs.remoteIp,
    outSrcPort: to.addrs.localPort,
    outDstPort: to.addrs.remotePort,
    seqOffset: (to.tcb.sndEnd - from.tcb.rcvNxt) >>> 0,
    ackOffset: ackOffset >>> 0,
    inShift: Math.max(0, from.tcb.sndWscale),
    outShift: Math.max(0, to.tcb.rcvWscale),
    tsMode,
    tsvalOffset: tsMode === TsMode.Map ? (to.tcb.tsLastSent - from.tcb.tsRecent) >>> 0 : 0,
    tsecrOffset: tsMode === TsMode.Map ? tsecrOffset >>> 0 : 0,
    sack: from.tcb.sackOk && to.tcb.sackOk,
    base: from.tcb.rcvNxt,
    highSeq: from.tcb.rcvNxt,
    window: from.tcb.sndWnd,
    lastAck: from.tcb.sndUna,
    tsLastIn: from.tcb.tsRecent,
    outMss: to.tcb.peerMss,
  }
  if (from.tcb.finReceived) c.finSeq = seqAdd(from.tcb.rcvNxt, -1)
  return c
}

/** Why connection `name` cannot be spliced, or null. */
function sideProblem(name: string, s: SpliceSide): string | null {
  if (!SPLICEABLE_STATES.has(s.tcb.state)) return `cannot splice: connection ${name} is ${s.tcb.state}`
  if (s.tcb.rcvBuffered > 0) return `cannot splice: connection ${name} holds ${s.tcb.rcvBuffered} received bytes the proxy has not read (move them to the other side first)`
  return null
}

/**
 * Computes the FWD configuration splicing `a` (client side) to `b` (server side).
 * Throws {@link SpliceStateError} if either connection is not in a state that can be
 * spliced, or if received data is still unread (the proxy must move it first).
 */
export function spliceConfig(a: SpliceSide, b: SpliceSide): Pick<FwdConfig, 'ab' | 'ba'> {
  const bad = sideProblem('A', a) ?? sideProblem('B', b)
  if (bad !== null) throw new SpliceStateError(bad)
  const problem = directionProblem(a, b, 'client') ?? directionProblem(b, a, 'server')
  if (problem !== null) throw new SpliceStateError(`cannot splice: ${problem}`)
  if (a.tcb.finReceived && b.tcb.finReceived) throw new SpliceStateError('cannot splice: both directions are finished')
  const abOffset = (b.tcb.sndEnd - a.tcb.rcvNxt) >>> 0
  const baOffset = (a.tcb.sndEnd - b.tcb.rcvNxt) >>> 0
  const tsAB = (b.tcb.tsLastSent - a.tcb.tsRecent) >>> 0
  const tsBA = (a.tcb.tsLastSent - b.tcb.tsRecent) >>> 0
  return {
    ab: direction(a, b, baOffset, tsBA),
    ba: direction(b, a, abOffset, tsAB),
  }
}
