/**
 * The TCP control block: one connection's state machine (RFC 9293 §3.3.2, §3.10), pure
 * of I/O. It takes a segment ({@link Tcb.input}) or an application call (`write`, `read`,
 * `close`) and hands the segments to send to its {@link TcbHost}; time comes from the
 * host's clock and every timer is one re-armed core {@link Timer} per purpose.
 *
 * Sending: sliding window, Nagle (RFC 1122 §4.2.3.4, switchable), sender SWS avoidance,
 * MSS from options and path MTU, RTO per RFC 6298 with exponential backoff, slow start and
 * congestion avoidance (RFC 5681), limited transmit (RFC 3042), fast retransmit and
 * NewReno (RFC 6582), SACK loss recovery (RFC 6675) when negotiated, zero-window probing
 * with a persist timer, keep-alive (RFC 1122 §4.2.3.6, off by default), path MTU drops
 * (RFC 1191).
 * Receiving: out-of-order reassembly in the bounded receive buffer, overlap trimming,
 * delayed ACK (RFC 1122 §4.2.3.2), SACK and D-SACK blocks (RFC 2018, RFC 2883), window
 * scaling and a window that never shrinks (RFC 7323 §2), timestamps and PAWS (RFC 7323).
 * Robustness: RFC 5961 challenge ACKs (rate-limited per connection), ACK validation.
 *
 * For splicing (DESIGN.md §5): every sequence variable, window, buffer occupancy and
 * negotiated option is readable ({@link Tcb.snapshot}); {@link Tcb.startDrain} puts the
 * TCB into ACK-processing-only mode (Scout splice step 3) and reports `drained`;
 * {@link Tcb.established} builds a TCB in ESTABLISHED from spliced state (unsplice).
 * @module
 */
import { channel } from 'node:diagnostics_channel'
import { get16, get32, set16, set32 } from '../../core/bytes.js'
import { allocMsg, type Msg } from '../../core/msg.js'
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, type Seq } from '../../core/seq.js'
import type { Timer } from '../../core/timers.js'
import { ByteRing, OooRanges, Scoreboard } from './buffers.js'
import { MAX_WSCALE, parseOptions, TcpOptions, writeSackOption, writeSynOptions, writeTsOption } from './options.js'
import { TcpFlag, TcpField } from './segment.js'

const { FIN, SYN, RST, PSH, ACK } = TcpFlag

/** RFC 9293 §3.3.2 connection states, spelled as in the RFC. */
export type TcpState =
  | 'CLOSED'
  | 'LISTEN'
  | 'SYN-SENT'
  | 'SYN-RECEIVED'
  | 'ESTABLISHED'
  | 'FIN-WAIT-1'
  | 'FIN-WAIT-2'
  | 'CLOSE-WAIT'
  | 'CLOSING'
  | 'LAST-ACK'
  | 'TIME-WAIT'

/** Reasons the TCB drops a segment (each is a counter on the stage). */
export const TCB_DROP_REASONS = [
  /** A segment for a CLOSED TCB (answered with RST unless it is one). */
  'closed',
  /** LISTEN: a RST, an ACK (answered with RST) or a segment without SYN. */
  'listen-not-syn',
  /** SYN-SENT: the ACK does not cover our SYN (RFC 9293 §3.10.7.3). */
  'syn-sent-bad-ack',
  /** SYN-SENT: neither SYN nor an acceptable RST. */
  'syn-sent-no-syn',
  /** RFC 7323 §5.3: TSval older than TS.Recent. */
  'paws',
  /** RFC 7323 §3.2: a non-RST segment without timestamps once they were negotiated. */
  'ts-missing',
  /** RFC 9293 §3.10.7.4 first check: not in the receive window (an ACK is sent). */
  'out-of-window',
  /** RFC 5961 §3.2: a RST outside the window, dropped silently. */
  'rst-out-of-window',
  /** RFC 5961 §3.2: an in-window RST that is not an exact match (challenge ACK). */
  'rst-in-window',
  /** RFC 5961 §4.2: a SYN in a synchronized state (challenge ACK). */
  'syn-in-window',
  /** RFC 9293 §3.10.7.4 fifth check: ACK bit off. */
  'no-ack',
  /** RFC 5961 §5.2: ACK of data never sent (an ACK is sent). */
  'ack-unsent',
  /** RFC 5961 §5.2: ACK older than SND.UNA - MAX.SND.WND (an ACK is sent). */
  'ack-too-old',
  /** SYN-RECEIVED: an ACK that does not acknowledge our SYN (answered with RST). */
  'syn-received-bad-ack',
  /** The out-of-order range list is full (the segment will be retransmitted). */
  'ooo-full',
] as const
/** One of {@link TCB_DROP_REASONS}. */
export type TcbDropReason = (typeof TCB_DROP_REASONS)[number]

/** RFC 6298 (2.4): minimum RTO of one second. */
export const MIN_RTO_MS = 1000
/** RFC 6298 (2.1): initial RTO of one second. */
export const INITIAL_RTO_MS = 1000
/** RFC 6298 (2.5): a maximum RTO of at least 60 seconds. */
export const MAX_RTO_MS = 60000
/** RFC 9293 §3.7.1: the MSS assumed when the peer sends no MSS option (IPv4). */
export const DEFAULT_PEER_MSS = 536
/** RFC 5681 §3.2: duplicate ACKs that trigger fast retransmit. */
export const DUP_THRESH = 3
/** RFC 7323 §3.2: bytes a timestamps option takes in every segment (with two NOPs). */
export const TS_OPTION_LEN = 12
/** RFC 7323 §5.5: TS.Recent is invalid after 24 days of idleness. */
export const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000
/** RFC 1122 §4.2.3.2: an ACK may be delayed less than 0.5 s; we use Linux's 40 ms. */
export const DELAYED_ACK_MS = 40

/** Tunables of a TCB (all optional; defaults in brackets). */
export interface TcbConfig {
  /** MSS we advertise: the path MTU minus 40 [1460]. Also caps what we send (MSS clamping). */
  mss?: number
  /** Send buffer bound in bytes [262144]. */
  sndBuf?: number
  /** Receive buffer bound in bytes: the most we advertise and hold out of order [262144]. */
  rcvBuf?: number
  /** Offer window scaling (RFC 7323 §2) [true]. */
  windowScaling?: boolean
  /** Offer SACK (RFC 2018) [true]. */
  sack?: boolean
  /** Offer timestamps (RFC 7323 §3) [true]. */
  timestamps?: boolean
  /** Disable Nagle's algorithm [false]. */
  noDelay?: boolean
  /** Delayed-ACK timeout in ms, 0 to ACK every segment [40]. */
  delayedAckMs?: number
  /** Minimum RTO [1000, RFC 6298 (2.4)]. */
  minRtoMs?: number
  /** Maximum RTO [60000]. */
  maxRtoMs?: number
  /** Initial RTO [1000]. */
  initialRtoMs?: number
  /** Maximum segment lifetime; TIME-WAIT lasts 2 MSL [30000]. */
  mslMs?: number
  /** FIN-WAIT-2 timeout after a full close [60000]. */
  finWait2TimeoutMs?: number
  /** Challenge ACKs per second per connection (RFC 5961 §7) [10]. */
  challengeAckLimit?: number
  /**
   * RFC 7323 §3.2: drop non-RST segments without timestamps once they were negotiated
   * [true]. Off: accept and count them (`counters.tsMissing`), as Linux does; needed
   * behind a splice whose other side has no timestamps.
   */
  strictTimestamps?: boolean
  /** Retransmissions of one segment before giving up [15]. */
  maxRetransmits?: number
  /** Retransmissions of a SYN or SYN-ACK before giving up [6]. */
  synRetries?: number
  /** Initial window in segments (RFC 6928) [10]. */
  initialCwndSegments?: number
  /** Most out-of-order ranges held [32]. */
  maxOooRanges?: number
  /** Keep-alive idle time in ms, 0 for none [0; RFC 1122 §4.2.3.6 says off by default, >= 2 h when on]. */
  keepAliveMs?: number
  /** Keep-alive probe interval in ms [75000]. */
  keepAliveIntervalMs?: number
  /** Unanswered keep-alive probes before the connection is dropped [9]. */
  keepAliveProbes?: number
}

/** A {@link TcbConfig} with every default filled in. */
export type ResolvedTcbConfig = Required<TcbConfig>

/** Resolves a config with its defaults. */
export function tcbDefaults(c: TcbConfig = {}): ResolvedTcbConfig {
  return {
    mss: c.mss ?? 1460,
    sndBuf: c.sndBuf ?? 262144,
    rcvBuf: c.rcvBuf ?? 262144,
    windowScaling: c.windowScaling ?? true,
    sack: c.sack ?? true,
    timestamps: c.timestamps ?? true,
    noDelay: c.noDelay ?? false,
    delayedAckMs: c.delayedAckMs ?? DELAYED_ACK_MS,
    minRtoMs: c.minRtoMs ?? MIN_RTO_MS,
    maxRtoMs: c.maxRtoMs ?? MAX_RTO_MS,
    initialRtoMs: c.initialRtoMs ?? INITIAL_RTO_MS,
    mslMs: c.mslMs ?? 30000,
    finWait2TimeoutMs: c.finWait2TimeoutMs ?? 60000,
    challengeAckLimit: c.challengeAckLimit ?? 10,
    strictTimestamps: c.strictTimestamps ?? true,
    maxRetransmits: c.maxRetransmits ?? 15,
    synRetries: c.synRetries ?? 6,
    initialCwndSegments: c.initialCwndSegments ?? 10,
    maxOooRanges: c.maxOooRanges ?? 32,
    keepAliveMs: c.keepAliveMs ?? 0,
    keepAliveIntervalMs: c.keepAliveIntervalMs ?? 75000,
    keepAliveProbes: c.keepAliveProbes ?? 9,
  }
}

/** What a TCB needs from its surroundings (the TCP stage, or a test harness). */
export interface TcbHost {
  /** Current time in ms. */
  now(): number
  /** Creates a re-armable timer (one per purpose per TCB). */
  timer(callback: (now: number) => void): Timer
  /** Sends a finished segment: `msg.off` at the TCP header, checksum left to the host. */
  output(msg: Msg): void
  /** Drops a received segment for `reason` (counts and frees it). */
  drop(msg: Msg, reason: TcbDropReason): void
}

/** Callbacks from a TCB to its user (socket, proxy, splice engine); all optional. */
export interface TcbEvents {
  /** Every state change, with the rule that caused it. */
  state?(from: TcpState, to: TcpState, why: string): void
  /** ESTABLISHED reached. */
  connected?(): void
  /** New in-order bytes are readable. */
  data?(): void
  /** The peer's FIN arrived in order (end of stream). */
  end?(): void
  /** Send-buffer space was freed. */
  writable?(): void
  /** The connection was aborted: `'reset'` (RST received), `'refused'`, `'timeout'`. */
  error?(reason: 'reset' | 'refused' | 'timeout'): void
  /** Drain mode finished: every byte buffered for sending was acknowledged. */
  drained?(): void
  /** The TCB reached CLOSED and may be discarded. */
  closed?(): void
  /**
   * Owner only: a SYN that may reuse this TIME-WAIT connection's 4-tuple (RFC 6191).
   * Return true to take the segment (ownership passes; the TCB then closes), false to
   * have it answered with an ACK as usual.
   */
  reopen?(msg: Msg): boolean
}

/** Counters of a TCB. */
export interface TcbCounters {
  /** Segments processed. */
  segsIn: number
  /** Segments sent. */
  segsOut: number
  /** Payload bytes sent (including retransmissions). */
  bytesOut: number
  /** Segments retransmitted (RTO, fast retransmit, SACK recovery, probes excluded). */
  retransmits: number
  /** Retransmission timeouts. */
  rtoTimeouts: number
  /** Fast retransmits (entries into loss recovery). */
  fastRetransmits: number
  /** Duplicate ACKs received. */
  dupAcksIn: number
  /** Challenge ACKs sent (RFC 5961). */
  challengeAcks: number
  /** Challenge ACKs suppressed by the rate limit. */
  challengeAcksLimited: number
  /** Zero-window probes sent. */
  windowProbes: number
  /** Keep-alive probes sent. */
  keepAliveProbes: number
  /** Duplicate segments received (D-SACK material). */
  dupSegsIn: number
  /** Out-of-order segments received. */
  oooSegsIn: number
  /** Option parsing problems (bad lengths; the segment was still processed). */
  badOptions: number
  /** Delayed ACKs sent by the timer. */
  delayedAcks: number
  /** Segments without timestamps after they were negotiated (accepted unless `strictTimestamps`). */
  tsMissing: number
}

/** Everything splicing needs to read from a TCB (a copy). */
export interface TcbSnapshot {
  /** State. */
  state: TcpState
  /** Local and remote ports. */
  localPort: number
  /** Remote port. */
  remotePort: number
  /** Our initial sequence number. */
  iss: Seq
  /** The peer's initial sequence number. */
  irs: Seq
  /** Oldest unacknowledged sequence number. */
  sndUna: Seq
  /** Next sequence number to send. */
  sndNxt: Seq
  /** Highest sequence number sent + 1. */
  sndMax: Seq
  /** Peer's window in bytes (scaled). */
  sndWnd: number
  /** Largest window the peer ever offered. */
  maxSndWnd: number
  /** Next sequence number expected. */
  rcvNxt: Seq
  /** Window we last advertised, in bytes from RCV.NXT. */
  rcvWnd: number
  /** Right edge we advertised (RCV.NXT + RCV.WND, never moves left). */
  rcvAdv: Seq
  /** Bytes buffered for sending (unacknowledged + unsent). */
  sndBuffered: number
  /** The end of the send stream: the sequence number after the last byte queued, or after the FIN once one is queued. */
  sndEnd: Seq
  /** A FIN is queued (or sent) after the buffered data. */
  finQueued: boolean
  /** The peer's FIN arrived in order (RCV.NXT counts it). */
  finReceived: boolean
  /** Bytes sent but not acknowledged. */
  sndInFlight: number
  /** Bytes received in order and not yet read. */
  rcvBuffered: number
  /** Bytes held out of order. */
  rcvOutOfOrder: number
  /** Our advertised MSS. */
  advMss: number
  /** Peer's MSS (option or default 536). */
  peerMss: number
  /** Payload bytes per segment we send (MSS minus per-segment options). */
  sndMss: number
  /** Window scale shift applied to the peer's windows (0 if not negotiated). */
  sndWscale: number
  /** Window scale shift applied to ours. */
  rcvWscale: number
  /** SACK negotiated. */
  sackOk: boolean
  /** Timestamps negotiated. */
  tsOk: boolean
  /** TS.Recent: last TSval received from the peer (to echo). */
  tsRecent: number
  /** Last TSval we sent. */
  tsLastSent: number
  /** Last TSecr we sent. */
  tsEcrLastSent: number
  /** Offset of our TSval clock from the host clock (TSval = now + offset). */
  tsOffset: number
  /** Congestion window, slow-start threshold. */
  cwnd: number
  /** Slow-start threshold. */
  ssthresh: number
  /** Smoothed RTT (ms, 0 before the first sample), current RTO. */
  srtt: number
  /** RTT variation (ms, RFC 6298). */
  rttvar: number
  /** Current RTO (ms). */
  rto: number
  /** True while in drain mode; `drained` once it finished. */
  draining: boolean
  /** True once drain mode finished. */
  drained: boolean
}

/** State for {@link Tcb.established}: a connection that exists already (unsplice). */
export interface EstablishedParams {
  /** Local port. */
  localPort: number
  /** Remote port. */
  remotePort: number
  /** Next sequence number we send (SND.UNA = SND.NXT: nothing in flight). */
  sndNxt: Seq
  /** Next sequence number we expect. */
  rcvNxt: Seq
  /** Peer's window in bytes (already scaled). */
  sndWnd: number
  /** Window the peer was last offered on our behalf, in bytes (honoured: never shrunk). */
  rcvWnd: number
  /** Peer's MSS. */
  peerMss: number
  /** Window scale shifts, -1 if not negotiated. */
  sndWscale: number
  /** Our shift (-1 if not negotiated). */
  rcvWscale: number
  /** SACK negotiated. */
  sackOk: boolean
  /** Timestamps negotiated. */
  tsOk: boolean
  /** TS.Recent (peer's last TSval). */
  tsRecent?: number
  /** Our TSval clock offset so TSvals continue monotonically. */
  tsOffset?: number
  /**
   * The last TSval the peer saw from this connection (sent on our behalf by FWD). A TCB
   * spliced again before it sends anything maps the other peer's TSvals to continue from
   * it (paths/splice/config.ts); left at 0 they would fall far behind the peer's TS.Recent
   * and every segment would fail PAWS (RFC 7323 §5.3). Default: one tick before `tsOffset`'s clock.
   */
  tsLastSent?: number
  /**
   * The RTT estimate to start from (ms; 0 or absent: none, the first RTO is the initial
   * 1 s of RFC 6298 (2.1)). The splice engine passes the old TCB's: same peer, same path,
   * as Linux seeds a new connection from its per-destination metrics cache.
   */
  srtt?: number
  /** RTTVAR to go with {@link EstablishedParams.srtt} (default srtt / 2, RFC 6298 (2.2)). */
  rttvar?: number
}

const stateChannel = channel('pathsplice:tcp:state')

/** Smallest shift that lets a 16-bit window field cover `buf` bytes (RFC 7323 §2.3). */
export function wscaleFor(buf: number): number {
  let s = 0
  while (s < MAX_WSCALE && 65535 * 2 ** s < buf) s++
  return s
}

/** One connection's control block. */
export class Tcb {
  /** Current state. */
  state: TcpState = 'CLOSED'
  /** Local port. */
  localPort: number
  /** Remote port. */
  remotePort: number
  /** Event sink of the user (socket, proxy, splice engine). */
  events: TcbEvents = {}
  /** Event sink of the owner (the module: flow table, backlogs); `connected` and `closed` only. */
  ownerEvents: TcbEvents = {}
  /** Counters. */
  readonly counters: TcbCounters = {
    segsIn: 0, segsOut: 0, bytesOut: 0, retransmits: 0, rtoTimeouts: 0, fastRetransmits: 0, dupAcksIn: 0,
    challengeAcks: 0, challengeAcksLimited: 0, windowProbes: 0, keepAliveProbes: 0, dupSegsIn: 0, oooSegsIn: 0, badOptions: 0, delayedAcks: 0, tsMissing: 0,
  }
  /** True if the connection was opened actively (connect) rather than from LISTEN. */
  active = false
  /** Trace of state changes ("SYN-RECEIVED -> ESTABLISHED (SYN acked)"), last 16. */
  readonly trace: string[] = []

  // RFC 9293 §3.3.1 send sequence variables (SND.MAX: highest sent, for go-back-N after RTO).
  /** ISS. */
  iss: Seq
  /** IRS. */
  irs: Seq = 0
  /** SND.UNA. */
  sndUna: Seq
  /** SND.NXT. */
  sndNxt: Seq
  /** Highest sequence number sent + 1. */
  sndMax: Seq
  /** SND.WND (scaled, bytes). */
  sndWnd = 0
  /** SND.WL1. */
  sndWl1: Seq = 0
  /** SND.WL2. */
  sndWl2: Seq = 0
  /** Largest window the peer offered (RFC 5961 §5.2 MAX.SND.WND). */
  maxSndWnd = 0
  // Receive sequence variables.
  /** RCV.NXT. */
  rcvNxt: Seq = 0
  /** Right edge of the window we advertised (never moves left, RFC 9293 §3.8.6.2.2). */
  rcvAdv: Seq = 0
  /** Last ACK number sent (RFC 7323 Last.ACK.sent). */
  lastAckSent: Seq = 0

  // Negotiated options.
  /** MSS we advertise. */
  advMss: number
  /** Peer's MSS. */
  peerMss = DEFAULT_PEER_MSS
  /** Payload per segment we send. */
  sndMss = DEFAULT_PEER_MSS
  /** MSS allowed by the path MTU (RFC 1191), Infinity until an ICMP says otherwise. */
  pathMss = Infinity
  /** Peer's window scale shift. */
  sndWscale = 0
  /** Our window scale shift. */
  rcvWscale = 0
  /** SACK negotiated. */
  sackOk = false
  /** Timestamps negotiated. */
  tsOk = false
  /** TS.Recent. */
  tsRecent = 0
  /** When TS.Recent was last set (for the 24-day rule, RFC 7323 §5.5). */
  tsRecentAt = 0
  /** TSval clock offset. */
  tsOffset: number
  /** Last TSval sent. */
  tsLastSent = 0
  /** Last TSecr sent. */
  tsEcrLastSent = 0

  // Congestion control (RFC 5681, 6582, 6675).
  /** Congestion window (bytes). */
  cwnd = 0
  /** Slow-start threshold. */
  ssthresh = 0x7fffffff
  /** True during fast recovery. */
  inRecovery = false
  /** RFC 6582 "recover". */
  recover: Seq
  private caBytes = 0
  private dupAcks = 0
  private highRxt: Seq = 0
  /** SACK scoreboard. */
  readonly scoreboard = new Scoreboard()

  // RTT (RFC 6298).
  /** SRTT in ms (0 until the first sample). */
  srtt = 0
  /** RTTVAR. */
  rttvar = 0
  /** Current RTO in ms (backed off). */
  rto: number
  private rttTiming = false
  private rttSeq: Seq = 0
  private rttTime = 0
  private retries = 0
  private synRetransmitted = false

  // Buffers.
  /** Bytes waiting to be sent or acknowledged; byte 0 is sequence `bufSeq`. */
  readonly sndBuf: ByteRing
  /** Sequence number of sndBuf[0]. */
  bufSeq: Seq
  /** A FIN is queued after the buffered data. */
  finQueued = false
  /** Sequence number of our FIN (valid when finQueued). */
  finSeq: Seq = 0
  /** In-order bytes not yet read (length), out-of-order bytes beyond. */
  readonly rcvBuf: ByteRing
  /** Out-of-order ranges. */
  readonly ooo: OooRanges
  private rcvFinSeq: Seq = 0
  private rcvFinPending = false
  /** The peer's FIN was received in order. */
  peerFinished = false

  // Misc.
  private readonly cfg: ResolvedTcbConfig
  private readonly host: TcbHost
  private readonly opts = new TcpOptions()
  private readonly sackOut = new Uint32Array(8)
  private dsackStart: Seq = 0
  private dsackEnd: Seq = 0
  private dsackPending = false
  private ackNow = false
  private rcvSinceAck = 0
  /** Largest segment received (the peer's effective MSS, for the every-second-segment ACK rule). */
  private rcvSegMax = 0
  private challengeStart = -Infinity
  private challengeCount = 0
  private persistBackoff = 0
  private appClosed = false
  private pendingClose = false
  private drainMode = false
  /** Draining, first transmissions are not held to the congestion window (startDrain). */
  private drainUnpaced = false
  private wsAgreed = false
  private drainDone = false
  private emitted = false
  private readonly rtoTimer: Timer
  private readonly delAckTimer: Timer
  private readonly persistTimer: Timer
  /** TIME-WAIT (2 MSL) and FIN-WAIT-2 timeout share one timer: never both. */
  private readonly closeTimer: Timer
  /** Keep-alive: re-armed lazily (it checks `lastHeard` when it fires, not on every segment). */
  private readonly keepAliveTimer: Timer
  private lastHeard = 0
  private kaProbes = 0

  /**
   * Creates a CLOSED TCB. `iss` is the initial send sequence number (RFC 6528, chosen by
   * the module); `tsOffset` randomizes our TSval clock.
   */
  constructor(host: TcbHost, localPort: number, remotePort: number, iss: Seq, config: TcbConfig = {}, tsOffset = 0) {
    this.host = host
    this.cfg = tcbDefaults(config)
    this.localPort = localPort
    this.remotePort = remotePort
    this.iss = iss >>> 0
    this.sndUna = this.iss
    this.sndNxt = this.iss
    this.sndMax = this.iss
    this.bufSeq = seqAdd(this.iss, 1)
    this.recover = this.iss
    this.tsOffset = tsOffset >>> 0
    this.advMss = this.cfg.mss
    this.rto = this.cfg.initialRtoMs
    this.sndBuf = new ByteRing(this.cfg.sndBuf)
    this.rcvBuf = new ByteRing(this.cfg.rcvBuf)
    this.ooo = new OooRanges(this.cfg.maxOooRanges)
    this.rtoTimer = host.timer(() => this.onRto())
    this.delAckTimer = host.timer(() => this.onDelayedAck())
    this.persistTimer = host.timer(() => this.onPersist())
    this.closeTimer = host.timer(() => this.onCloseTimer())
    this.keepAliveTimer = host.timer(() => this.onKeepAlive())
  }

  /**
   * Turns keep-alive on with `idleMs` of idle time before the first probe (RFC 1122
   * §4.2.3.6), or off with 0.
   */
  setKeepAlive(idleMs: number): void {
    this.cfg.keepAliveMs = Math.max(0, idleMs)
    if (idleMs > 0) this.armKeepAlive()
    else this.keepAliveTimer.cancel()
  }

  /** Turns Nagle's algorithm off (true) or on (RFC 1122 §4.2.3.4 says it must be switchable). */
  setNoDelay(noDelay: boolean): void {
    this.cfg.noDelay = noDelay
    if (noDelay) this.output()
  }

  /**
   * RFC 1191 §6.3: the path MTU dropped (ICMP fragmentation needed with the next-hop
   * MTU). Segments get smaller from now on; what is in flight is resent at the new size.
   * Returns true if the send MSS changed.
   */
  setPathMtu(mtu: number): boolean {
    // RFC 1191 §3: never below 68; RFC 9293 §3.7.1: 576 - 40 is the classic floor for TCP.
    if (!(mtu >= 68)) return false
    const pm = Math.max(mtu - 40, 88)
    if (pm >= this.pathMss) return false
    this.pathMss = pm
    const before = this.sndMss
    this.updateSndMss()
    if (this.sndMss === before) return false
    if (this.sndMax !== this.sndUna && !this.persistTimer.armed) {
      this.sndNxt = this.sndUna
      this.rttTiming = false
      this.output()
    }
    return true
  }

  /** The resolved configuration. */
  get config(): Readonly<ResolvedTcbConfig> {
    return this.cfg
  }

  // ---------------------------------------------------------------- user calls

  /** RFC 9293 §3.10.1 passive OPEN: CLOSED -> LISTEN. */
  listen(): void {
    if (this.state !== 'CLOSED') return
    this.setState('LISTEN', 'passive OPEN')
  }

  /** RFC 9293 §3.10.1 active OPEN: sends a SYN, CLOSED -> SYN-SENT. */
  connect(): void {
    if (this.state !== 'CLOSED' && this.state !== 'LISTEN') return
    this.active = true
    this.sndUna = this.iss
    this.sndNxt = seqAdd(this.iss, 1)
    this.sndMax = this.sndNxt
    this.setState('SYN-SENT', 'active OPEN')
    this.startSynTiming()
    this.sendSyn(false)
    this.armRto()
  }

  /**
   * Builds a TCB already in ESTABLISHED from spliced state (unsplice, DESIGN.md §5): nothing
   * in flight, slow start from the initial window, the window the peer was offered kept
   * (the receive buffer grows to hold it if it is larger than `config.rcvBuf`).
   */
  static established(host: TcbHost, p: EstablishedParams, config: TcbConfig = {}): Tcb {
    const t = new Tcb(host, p.localPort, p.remotePort, seqAdd(p.sndNxt, -1), config, p.tsOffset ?? 0)
    t.sndUna = p.sndNxt >>> 0
    t.sndNxt = t.sndUna
    t.sndMax = t.sndUna
    t.bufSeq = t.sndUna
    // RFC 6582 §3.2: "recover" starts at the ISS, so the first loss may start a recovery
    // (at sndUna it blocked fast retransmit until the RTO, 1 s with no RTT estimate yet).
    t.recover = t.iss
    t.rcvNxt = p.rcvNxt >>> 0
    t.irs = seqAdd(t.rcvNxt, -1)
    t.lastAckSent = t.rcvNxt
    t.rcvAdv = seqAdd(t.rcvNxt, p.rcvWnd)
    // The peer may send up to that edge (RFC 9293 §3.8.6: the window must not shrink): the
    // buffer must hold it even when it is larger than this TCB's own bound.
    t.rcvBuf.raiseLimit(p.rcvWnd)
    const ws = p.sndWscale >= 0 && p.rcvWscale >= 0
    t.sndWscale = ws ? p.sndWscale : 0
    t.rcvWscale = ws ? p.rcvWscale : 0
    t.sackOk = p.sackOk
    t.tsOk = p.tsOk
    t.tsRecent = p.tsRecent ?? 0
    t.tsRecentAt = host.now()
    t.tsLastSent = (p.tsLastSent ?? (Math.floor(host.now()) + (p.tsOffset ?? 0) - 1)) >>> 0
    t.tsEcrLastSent = t.tsRecent
    t.peerMss = p.peerMss
    t.sndWnd = p.sndWnd
    t.maxSndWnd = p.sndWnd
    t.sndWl1 = t.rcvNxt
    t.sndWl2 = t.sndUna
    t.updateSndMss()
    t.initCwnd()
    if (p.srtt !== undefined && p.srtt > 0) {
      t.srtt = p.srtt
      t.rttvar = p.rttvar ?? p.srtt / 2
      t.rto = t.rtoFromSrtt()
    }
    t.active = true
    t.setState('ESTABLISHED', 'built from spliced state')
    return t
  }

  /**
   * Queues `n` bytes of `src[off..)` for sending; returns how many fit in the send buffer
   * (backpressure: wait for `writable`). Writing after `close`/`shutdown` takes nothing.
   */
  write(src: Uint8Array, off = 0, n = src.length - off): number {
    if (this.finQueued || this.pendingClose || this.drainMode) return 0
    switch (this.state) {
      case 'SYN-SENT':
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
      case 'CLOSE-WAIT':
        break
      default:
        return 0
    }
    const took = this.sndBuf.append(src, off, n)
    if (took > 0) this.output()
    return took
  }

  /**
   * Queues all `n` bytes, raising the send buffer's limit if they do not fit. For the
   * splice engine only: bytes a proxy already accepted from one connection must reach
   * the other before the send stream's end is fixed (Scout splice step 2). Returns false
   * (and queues nothing) if the connection can no longer send.
   */
  writeAll(src: Uint8Array, off = 0, n = src.length - off): boolean {
    if (n <= 0) return true
    this.sndBuf.raiseLimit(this.sndBuf.length + n)
    return this.write(src, off, n) === n
  }

  /** Free space in the send buffer. */
  get writableLength(): number {
    return this.sndBuf.limit - this.sndBuf.length
  }

  /** In-order bytes ready to read. */
  get readableLength(): number {
    return this.rcvBuf.length
  }

  /** Copies up to `n` received bytes into `dst[off..)`, frees them from the window; returns the count. */
  read(dst: Uint8Array, off = 0, n = dst.length - off): number {
    const have = this.rcvBuf.length
    if (n > have) n = have
    if (n <= 0) return 0
    this.rcvBuf.copyOut(0, dst, off, n)
    this.rcvBuf.consume(n)
    this.maybeWindowUpdate()
    return n
  }

  /**
   * Half close (RFC 9293 §3.10.4 CLOSE, sending side only): queue a FIN after the buffered
   * data; we keep receiving.
   */
  shutdown(): void {
    switch (this.state) {
      case 'CLOSED':
      case 'LISTEN':
      case 'SYN-SENT':
        // RFC 9293 §3.10.4: delete the TCB.
        this.toClosed('CLOSE before synchronization')
        return
      case 'SYN-RECEIVED':
        // RFC 9293 §3.10.4: queue until ESTABLISHED.
        this.pendingClose = true
        return
      case 'ESTABLISHED':
        this.queueFin()
        this.setState('FIN-WAIT-1', 'CLOSE')
        this.output()
        return
      case 'CLOSE-WAIT':
        this.queueFin()
        this.setState('LAST-ACK', 'CLOSE')
        this.output()
        return
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
      case 'CLOSING':
      case 'LAST-ACK':
      case 'TIME-WAIT':
        return
      default:
        return assertNever(this.state)
    }
  }

  /** Full close: like {@link Tcb.shutdown}, and FIN-WAIT-2 times out since nobody reads any more. */
  close(): void {
    this.appClosed = true
    this.shutdown()
    if (this.state === 'FIN-WAIT-2') this.closeTimer.set(this.cfg.finWait2TimeoutMs)
  }

  /** RFC 9293 §3.10.5 ABORT: send a RST in synchronized states, then CLOSED. */
  abort(): void {
    switch (this.state) {
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
      case 'CLOSE-WAIT':
        this.sendRst(this.sndMax, 0, false)
        break
      default:
        break
    }
    this.toClosed('ABORT')
  }

  /**
   * Scout splice step 3: ACK processing only. From now on received data is never
   * acknowledged (nor delivered), ACKs up to one full window beyond SND.MAX are accepted
   * (they cover data the forwarder sent), and what is buffered keeps being (re)transmitted
   * until acknowledged; then `events.drained()` fires once and timers stop.
   *
   * What was never sent goes out as the peer's window allows, not paced by the congestion
   * window (see sendOne), unless `paced`: a caller whose buffer may hold megabytes (an
   * MSOCKS move's salvage) keeps slow start, so the burst does not overflow the queue in
   * front of the peer.
   */
  startDrain(opts: { paced?: boolean } = {}): void {
    // A delayed ACK still owed covers data the proxy took before the splice: send it now,
    // since a draining TCB sends no new ACKs.
    if (this.lastAckSent !== this.rcvNxt) this.sendAck()
    this.drainMode = true
    this.drainUnpaced = opts.paced !== true
    this.delAckTimer.cancel()
    this.ackNow = false
    this.checkDrained()
    if (!this.drainDone) this.output()
  }

  /** True while draining (until drained). */
  get draining(): boolean {
    return this.drainMode && !this.drainDone
  }

  /** True once drain mode finished. */
  get drained(): boolean {
    return this.drainDone
  }

  /** Stops every timer (the TCB is being discarded). */
  dispose(): void {
    this.rtoTimer.cancel()
    this.delAckTimer.cancel()
    this.persistTimer.cancel()
    this.closeTimer.cancel()
    this.keepAliveTimer.cancel()
  }

  /**
   * Stops the timers and frees the send and receive buffers: a TCB a splice has drained
   * and replaced by FWD owns no bytes any more, and each ring may have grown to its limit
   * (256 KiB by default). Its sequence state stays readable (snapshot()).
   */
  releaseBuffers(): void {
    this.dispose()
    this.sndBuf.release()
    this.rcvBuf.release()
  }

  /** A copy of everything splicing reads. */
  snapshot(): TcbSnapshot {
    return {
      state: this.state,
      localPort: this.localPort,
      remotePort: this.remotePort,
      iss: this.iss,
      irs: this.irs,
      sndUna: this.sndUna,
      sndNxt: this.sndNxt,
      sndMax: this.sndMax,
      sndWnd: this.sndWnd,
      maxSndWnd: this.maxSndWnd,
      rcvNxt: this.rcvNxt,
      rcvWnd: Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt)),
      rcvAdv: this.rcvAdv,
      sndBuffered: this.sndBuf.length,
      sndEnd: this.finQueued ? seqAdd(this.finSeq, 1) : seqAdd(this.bufSeq, this.sndBuf.length),
      finQueued: this.finQueued,
      finReceived: this.peerFinished,
      sndInFlight: seqDiff(this.sndMax, this.sndUna),
      rcvBuffered: this.rcvBuf.length,
      rcvOutOfOrder: this.ooo.bytes(),
      advMss: this.advMss,
      peerMss: this.peerMss,
      sndMss: this.sndMss,
      sndWscale: this.sndWscale,
      rcvWscale: this.rcvWscale,
      sackOk: this.sackOk,
      tsOk: this.tsOk,
      tsRecent: this.tsRecent,
      tsLastSent: this.tsLastSent,
      tsEcrLastSent: this.tsEcrLastSent,
      tsOffset: this.tsOffset,
      cwnd: this.cwnd,
      ssthresh: this.ssthresh,
      srtt: this.srtt,
      rttvar: this.rttvar,
      rto: this.rto,
      draining: this.drainMode && !this.drainDone,
      drained: this.drainDone,
    }
  }

  // ---------------------------------------------------------------- segment arrives

  /**
   * RFC 9293 §3.10.7 SEGMENT ARRIVES. `msg.off` is at the TCP header, `msg.end` at the end
   * of the segment; the checksum was verified by the caller. Takes ownership of `msg`.
   */
  input(msg: Msg): void {
    const b = msg.buf
    const o = msg.off
    const hl = (b[o + 12]! >>> 4) << 2
    const seq = get32(b, o + TcpField.SEQ)
    const ack = get32(b, o + TcpField.ACK)
    const flags = b[o + TcpField.FLAGS]!
    const wnd = get16(b, o + TcpField.WINDOW)
    const dataOff = o + hl
    const len = msg.end - dataOff
    const opts = this.opts
    if (parseOptions(b, o + TcpField.HEADER_LEN, o + hl, opts) !== null) this.counters.badOptions++
    this.counters.segsIn++
    this.emitted = false
    this.lastHeard = this.host.now()
    this.kaProbes = 0
    switch (this.state) {
      case 'CLOSED':
        this.inputClosed(msg, seq, ack, flags, len)
        return
      case 'LISTEN':
        this.inputListen(msg, seq, ack, flags, wnd)
        return
      case 'SYN-SENT':
        this.inputSynSent(msg, seq, ack, flags, wnd, dataOff, len)
        return
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
      case 'CLOSE-WAIT':
      case 'CLOSING':
      case 'LAST-ACK':
      case 'TIME-WAIT':
        this.inputSynchronized(msg, seq, ack, flags, wnd, dataOff, len)
        return
      default:
        assertNever(this.state)
    }
  }

  /** RFC 9293 §3.10.7.1: CLOSED answers everything but a RST with a RST. */
  private inputClosed(msg: Msg, seq: Seq, ack: Seq, flags: number, len: number): void {
    if ((flags & RST) === 0) {
      if (flags & ACK) this.sendRst(ack, 0, false)
      else this.sendRst(0, seqAdd(seq, len + (flags & SYN ? 1 : 0) + (flags & FIN ? 1 : 0)), true)
    }
    this.host.drop(msg, 'closed')
  }

  /** RFC 9293 §3.10.7.2: LISTEN. */
  private inputListen(msg: Msg, seq: Seq, ack: Seq, flags: number, wnd: number): void {
    // First: an incoming RST is ignored.
    if (flags & RST) return this.host.drop(msg, 'listen-not-syn')
    // Second: an ACK is answered with <SEQ=SEG.ACK><CTL=RST>.
    if (flags & ACK) {
      this.sendRst(ack, 0, false)
      return this.host.drop(msg, 'listen-not-syn')
    }
    if ((flags & SYN) === 0) return this.host.drop(msg, 'listen-not-syn')
    // Third: SYN. RCV.NXT = SEG.SEQ + 1, IRS = SEG.SEQ, send <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
    // Data on the SYN is not kept (it will be retransmitted); noted deviation.
    this.irs = seq
    this.rcvNxt = seqAdd(seq, 1)
    this.rcvAdv = this.rcvNxt
    this.lastAckSent = this.rcvNxt
    this.negotiate()
    this.sndWnd = wnd // RFC 7323 §2.2: the window of a SYN is never scaled.
    this.maxSndWnd = wnd
    this.sndWl1 = seq
    this.sndWl2 = this.iss
    if (this.tsOk) {
      this.tsRecent = this.opts.tsVal
      this.tsRecentAt = this.host.now()
    }
    this.sndUna = this.iss
    this.sndNxt = seqAdd(this.iss, 1)
    this.sndMax = this.sndNxt
    this.setState('SYN-RECEIVED', 'SYN received in LISTEN')
    this.startSynTiming()
    this.sendSyn(true)
    this.armRto()
    msg.free()
  }

  /** RFC 9293 §3.10.7.3: SYN-SENT. */
  private inputSynSent(msg: Msg, seq: Seq, ack: Seq, flags: number, wnd: number, dataOff: number, len: number): void {
    // First: the ACK must cover our SYN: ISS < SEG.ACK <= SND.NXT.
    let ackOk = false
    if (flags & ACK) {
      if (seqLe(ack, this.iss) || seqGt(ack, this.sndMax)) {
        if ((flags & RST) === 0) this.sendRst(ack, 0, false)
        return this.host.drop(msg, 'syn-sent-bad-ack')
      }
      ackOk = true
    }
    // Second: RST. RFC 5961 §3.2 / RFC 9293: accept only with an acceptable ACK.
    if (flags & RST) {
      if (ackOk) {
        msg.free()
        this.fail('refused', 'RST in SYN-SENT')
        return
      }
      return this.host.drop(msg, 'syn-sent-no-syn')
    }
    if ((flags & SYN) === 0) return this.host.drop(msg, 'syn-sent-no-syn')
    // Fourth: SYN.
    this.irs = seq
    this.rcvNxt = seqAdd(seq, 1)
    this.rcvAdv = this.rcvNxt
    this.lastAckSent = this.rcvNxt
    this.negotiate()
    if (this.tsOk) {
      this.tsRecent = this.opts.tsVal
      this.tsRecentAt = this.host.now()
    }
    if (ackOk) {
      // Our SYN is acknowledged: ESTABLISHED. RFC 7323 §2.2: the SYN's window is unscaled.
      this.sampleRttOnAck(ack)
      this.sndUna = ack
      if (seqLt(this.sndNxt, ack)) this.sndNxt = ack
      this.sndWnd = wnd
      this.maxSndWnd = wnd
      this.sndWl1 = seq
      this.sndWl2 = ack
      this.rtoTimer.cancel()
      this.retries = 0
      this.rto = this.rtoFromSrtt()
      this.setState('ESTABLISHED', 'SYN-ACK received')
      this.armKeepAlive()
      this.emitConnected()
      this.ackNow = true
      // Sixth and later: text and FIN carried on the SYN-ACK.
      this.processTextAndFin(msg, seqAdd(seq, 1), flags & ~SYN, dataOff, len)
      this.output()
      this.flushAck()
      msg.free()
      return
    }
    // Simultaneous open (RFC 9293 §3.5 figure 7): SYN-RECEIVED, send <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
    this.sndWnd = wnd
    this.maxSndWnd = wnd
    this.sndWl1 = seq
    this.sndWl2 = this.iss
    this.setState('SYN-RECEIVED', 'SYN received in SYN-SENT (simultaneous open)')
    this.sendSyn(true)
    this.armRto()
    msg.free()
  }

  /** RFC 9293 §3.10.7.4: SYN-RECEIVED and the synchronized states. */
  private inputSynchronized(msg: Msg, seq: Seq, ack: Seq, flags: number, wnd: number, dataOff: number, len: number): void {
    const opts = this.opts
    // RFC 6191 §2 (RFC 1122 §4.2.2.13): a new SYN may end TIME-WAIT early when its TSval
    // (or, without timestamps, its sequence number) is above what this incarnation saw.
    if (this.state === 'TIME-WAIT' && (flags & (SYN | ACK | RST | FIN)) === SYN) {
      const newer = this.tsOk && opts.hasTs ? seqGt(opts.tsVal, this.tsRecent) : seqGt(seq, this.rcvNxt)
      if (newer && this.ownerEvents.reopen?.(msg) === true) {
        this.toClosed('SYN reuses the 4-tuple (RFC 6191)')
        return
      }
    }
    // RFC 7323 §3.2: once timestamps are on, a non-RST segment without them SHOULD be
    // dropped. With `strictTimestamps` off we accept and count it, as Linux does: a splice
    // between a connection with timestamps and one without NOPs them out (DESIGN §5).
    if (this.tsOk && !opts.hasTs && (flags & RST) === 0 && this.state !== 'SYN-RECEIVED') {
      if (this.cfg.strictTimestamps) return this.host.drop(msg, 'ts-missing')
      this.counters.tsMissing++
    }
    // RFC 7323 §5.3 R1: PAWS. An old TSval (not on a RST) gets an ACK and is dropped, unless
    // TS.Recent went stale after 24 idle days (§5.5).
    if (this.tsOk && opts.hasTs && (flags & RST) === 0 && seqLt(opts.tsVal, this.tsRecent) && this.host.now() - this.tsRecentAt < PAWS_IDLE_MS) {
      this.ackNow = true
      this.flushAck()
      return this.host.drop(msg, 'paws')
    }
    // First: sequence number acceptability (four cases).
    const segLen = len + (flags & SYN ? 1 : 0) + (flags & FIN ? 1 : 0)
    const rcvWnd = Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt))
    let acceptable: boolean
    if (segLen === 0) {
      acceptable = rcvWnd === 0 ? seq === this.rcvNxt : inWindow(seq, this.rcvNxt, rcvWnd)
    } else if (rcvWnd === 0) {
      acceptable = false
    } else {
      acceptable = inWindow(seq, this.rcvNxt, rcvWnd) || inWindow(seqAdd(seq, segLen - 1), this.rcvNxt, rcvWnd)
    }
    if (!acceptable) {
      if (flags & RST) return this.host.drop(msg, 'rst-out-of-window')
      if (this.drainMode && (flags & ACK) !== 0 && (flags & SYN) === 0) {
        // Scout splice step 3: the peer's data now goes to the forwarder, past our stale
        // window, but its ACKs are still ours to process (they drain our send buffer). An
        // ACK-only segment counts as a duplicate ACK (RFC 5681 §2), so fast retransmit and
        // SACK recovery work while draining, not only the retransmission timer.
        this.processAckFields(ack, seq, wnd, flags, len + ((flags & FIN) !== 0 ? 1 : 0))
        // A retransmission of data we already took (our ACK was lost): acknowledging old
        // data is allowed, and nobody else will (the forwarder chops it).
        if (len > 0 && seqLe(seqAdd(seq, len), this.rcvNxt)) this.emit(this.sndMax, ACK, 0)
        this.output()
        msg.free()
        return
      }
      // RFC 9293 §3.10.7.4: "special allowance should be made to accept valid ACKs" with a zero window.
      const zeroWindowProbe = rcvWnd === 0 && seq === this.rcvNxt && (flags & ACK) !== 0 && (flags & SYN) === 0
      // (`len` passed on: a probe carrying a byte is never a duplicate ACK.)
      if (zeroWindowProbe) this.processAckFields(ack, seq, wnd, flags, len)
      if (len > 0 && seqLe(seqAdd(seq, len), this.rcvNxt)) {
        // RFC 2883 §4.1: a duplicate segment is reported in a D-SACK block.
        this.counters.dupSegsIn++
        this.setDsack(seq, seqAdd(seq, len))
      }
      if (this.state === 'SYN-RECEIVED' && (flags & SYN) !== 0 && seq === this.irs) {
        if ((flags & ACK) !== 0 && seqGt(ack, this.sndUna) && seqLe(ack, this.sndMax)) {
          // Simultaneous open (RFC 9293 §3.5 figure 8, line 6): the peer's SYN-ACK acks our
          // SYN: ESTABLISHED, and our ACK for its SYN goes out.
          this.sampleRttOnAck(ack)
          this.sndUna = ack
          this.sndWnd = wnd // the window of a SYN is never scaled (RFC 7323 §2.2)
          this.maxSndWnd = Math.max(this.maxSndWnd, wnd)
          this.sndWl1 = seq
          this.sndWl2 = ack
          this.rtoTimer.cancel()
          this.retries = 0
          this.setState('ESTABLISHED', 'SYN-ACK received in SYN-RECEIVED (simultaneous open)')
          this.armKeepAlive()
          this.emitConnected()
          this.ackNow = true
          this.flushAck()
          this.output()
          msg.free()
          return
        }
        // A retransmitted SYN: our SYN-ACK was lost; send it again (as Linux does).
        this.sendSyn(true)
      } else {
        if (this.state === 'TIME-WAIT' && (flags & FIN) !== 0) this.closeTimer.set(2 * this.cfg.mslMs)
        this.ackNow = true
        this.flushAck()
      }
      if (zeroWindowProbe) {
        this.output()
        msg.free()
        return
      }
      return this.host.drop(msg, 'out-of-window')
    }
    // Second: RST. RFC 5961 §3.2: exact match resets, in-window gets a challenge ACK.
    if (flags & RST) {
      if (seq !== this.rcvNxt) {
        this.challengeAck()
        return this.host.drop(msg, 'rst-in-window')
      }
      msg.free()
      switch (this.state) {
        case 'SYN-RECEIVED':
          // From a passive OPEN: back to LISTEN, i.e. this embryonic TCB goes away quietly.
          if (!this.active) this.toClosed('RST in SYN-RECEIVED (passive)')
          else this.fail('refused', 'RST in SYN-RECEIVED (active)')
          return
        case 'ESTABLISHED':
        case 'FIN-WAIT-1':
        case 'FIN-WAIT-2':
        case 'CLOSE-WAIT':
          this.fail('reset', `RST in ${this.state}`)
          return
        case 'CLOSING':
        case 'LAST-ACK':
        case 'TIME-WAIT':
          this.toClosed(`RST in ${this.state}`)
          return
        default:
          return
      }
    }
    // Fourth: SYN in a synchronized state. RFC 5961 §4.2: challenge ACK, drop.
    if (flags & SYN) {
      this.challengeAck()
      return this.host.drop(msg, 'syn-in-window')
    }
    // Fifth: ACK.
    if ((flags & ACK) === 0) return this.host.drop(msg, 'no-ack')
    if (this.state === 'SYN-RECEIVED') {
      if (seqGt(ack, this.sndUna) && seqLe(ack, this.sndMax)) {
        this.sndWnd = wnd << this.sndWscale
        this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd)
        this.sndWl1 = seq
        this.sndWl2 = ack
        this.setState('ESTABLISHED', 'SYN acked')
        this.armKeepAlive()
        this.emitConnected()
        if (this.pendingClose) {
          this.pendingClose = false
          this.queueFin()
          this.setState('FIN-WAIT-1', 'queued CLOSE')
        }
      } else {
        this.sendRst(ack, 0, false)
        return this.host.drop(msg, 'syn-received-bad-ack')
      }
    }
    // RFC 7323 §4.3: remember TS.Recent when the segment covers Last.ACK.sent.
    if (this.tsOk && opts.hasTs && seqLe(seq, this.lastAckSent)) {
      this.tsRecent = opts.tsVal
      this.tsRecentAt = this.host.now()
    }
    const r = this.processAckFields(ack, seq, wnd, flags, len)
    if (r !== null) {
      this.flushAck()
      return this.host.drop(msg, r)
    }
    // Per-state completion of the fifth step.
    switch (this.state) {
      case 'FIN-WAIT-1':
        if (this.finAcked()) {
          this.setState('FIN-WAIT-2', 'FIN acked')
          if (this.appClosed) this.closeTimer.set(this.cfg.finWait2TimeoutMs)
        }
        break
      case 'CLOSING':
        if (this.finAcked()) this.enterTimeWait('FIN acked in CLOSING')
        break
      case 'LAST-ACK':
        if (this.finAcked()) {
          msg.free()
          this.toClosed('FIN acked in LAST-ACK')
          return
        }
        break
      case 'ESTABLISHED':
      case 'FIN-WAIT-2':
      case 'CLOSE-WAIT':
      case 'TIME-WAIT':
      case 'SYN-RECEIVED':
        break
      default:
        break
    }
    // Sixth (URG: delivered inline, RFC 6093), seventh (text), eighth (FIN).
    this.processTextAndFin(msg, seq, flags, dataOff, len)
    msg.free()
    if (this.state === 'CLOSED') return
    this.output()
    this.flushAck()
  }

  /**
   * The ACK part of the fifth step: validation (RFC 5961 §5.2), SND.UNA advance, RTT,
   * congestion control, duplicate ACKs, window update. Returns a drop reason or null.
   */
  private processAckFields(ack: Seq, seq: Seq, wnd: number, flags: number, len: number): TcbDropReason | null {
    // Drain mode (Scout splice step 3): the peer's ACK also covers what the forwarder sent
    // it after our stream, and that runs ahead for as long as the drain lasts, far more
    // than the one window Scout allows. The FWD stage in front already refused ACKs far
    // from anything sent (blind injection), so any ACK past SND.MAX counts as SND.MAX.
    const upper = this.drainMode ? seqAdd(this.sndMax, 0x3fffffff) : this.sndMax
    if (seqGt(ack, upper)) {
      // RFC 9293 §3.10.7.4 / RFC 5961 §5.2: ACK of something not yet sent: ACK and drop.
      this.challengeAck()
      return 'ack-unsent'
    }
    if (seqLt(ack, seqAdd(this.sndUna, -Math.max(this.maxSndWnd, 1)))) {
      // RFC 5961 §5.2: too old to be a valid ACK (blind injection): ACK and drop.
      this.challengeAck()
      return 'ack-too-old'
    }
    if (this.drainMode && seqGt(ack, this.sndMax)) ack = this.sndMax
    // A peer that keeps answering with a zero window is alive: probes never time out.
    if (this.sndWnd === 0 && wnd === 0) this.retries = 0
    const scaledWnd = wnd << this.sndWscale
    // RFC 6675 §5: SACK information first, so the loss decision below sees it.
    if (this.sackOk && this.opts.sackCount > 0) this.takeSack()
    if (seqGt(ack, this.sndUna)) {
      this.ackAdvance(ack)
    } else if (ack === this.sndUna && len === 0 && (flags & (SYN | FIN)) === 0 && this.sndMax !== this.sndUna &&
      (scaledWnd === this.sndWnd || this.opts.sackCount > 0) && this.sndWnd !== 0 && !this.persistTimer.armed) {
      // RFC 5681 §2: a duplicate ACK (RFC 6675: one carrying SACK information counts too).
      this.onDupAck()
    }
    // RFC 9293 §3.10.7.4: update the send window if SND.UNA =< SEG.ACK and the segment is
    // newer than the last update (SND.WL1/WL2).
    if (seqGe(ack, this.sndUna) && (seqLt(this.sndWl1, seq) || (this.sndWl1 === seq && seqLe(this.sndWl2, ack)))) {
      const was = this.sndWnd
      this.sndWnd = scaledWnd
      this.sndWl1 = seq
      this.sndWl2 = ack
      if (scaledWnd > this.maxSndWnd) this.maxSndWnd = scaledWnd
      if (was === 0 && scaledWnd > 0 && this.persistTimer.armed) {
        // The window opened: leave persist mode; a probe still out is now covered by the RTO.
        this.persistTimer.cancel()
        this.persistBackoff = 0
        // A probe byte the receiver did not take is simply sent again with what follows.
        this.sndNxt = this.sndUna
        if (this.sndMax !== this.sndUna) this.armRto()
      }
    }
    return null
  }

  /** New data acknowledged: RTT, buffers, congestion control (RFC 5681, 6582), RTO restart (RFC 6298 §5.3). */
  private ackAdvance(ack: Seq): void {
    const acked = seqDiff(ack, this.sndUna)
    this.sampleRttOnAck(ack)
    if (seqGt(ack, this.bufSeq)) {
      const n = Math.min(seqDiff(ack, this.bufSeq), this.sndBuf.length)
      this.sndBuf.consume(n)
      this.bufSeq = seqAdd(this.bufSeq, n)
    }
    this.sndUna = ack
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack
    if (seqLt(this.highRxt, ack)) this.highRxt = ack
    this.scoreboard.trim(ack)
    this.retries = 0
    this.rto = this.rtoFromSrtt()
    const mss = this.sndMss
    if (this.inRecovery) {
      if (seqGe(ack, this.recover)) {
        // RFC 6582 §3.2 step 3: full acknowledgment; deflate and leave recovery.
        this.inRecovery = false
        this.cwnd = Math.min(this.ssthresh, Math.max(this.flight(), mss) + mss)
        this.dupAcks = 0
      } else if (!this.sackOk || this.scoreboard.count === 0) {
        // RFC 6582 §3.2 step 5: partial ACK: retransmit the next hole, deflate. Also with
        // SACK negotiated but no blocks received (a splice towards a peer without SACK
        // strips them): RFC 6675's NextSeg finds no hole then, and only the RTO would.
        this.retransmitAt(this.sndUna)
        this.cwnd = Math.max(this.cwnd - acked + (acked >= mss ? mss : 0), mss)
      }
    } else if (this.sndUna !== seqAdd(this.iss, 1) || acked > 1) {
      // (The ACK of our SYN alone does not grow the window.)
      this.dupAcks = 0
      if (this.cwnd < this.ssthresh) {
        // RFC 5681 §3.1 (2): slow start, at most one SMSS per ACK.
        this.cwnd += Math.min(acked, mss)
      } else {
        // RFC 5681 §3.1 (3): congestion avoidance, about one SMSS per RTT (byte counting).
        this.caBytes += acked
        if (this.caBytes >= this.cwnd) {
          this.caBytes -= this.cwnd
          this.cwnd += mss
        }
      }
    }
    // RFC 6298 §5.2/5.3: stop the timer when everything is acked, else restart it.
    if (this.sndUna === this.sndMax) this.rtoTimer.cancel()
    else if (!this.persistTimer.armed) this.armRto()
    if (this.sndBuf.length < this.sndBuf.limit) this.events.writable?.()
    this.checkDrained()
  }

  /** RFC 5681 §3.2 / RFC 6582 §3.2 / RFC 6675 §5: a duplicate ACK. */
  private onDupAck(): void {
    this.counters.dupAcksIn++
    this.dupAcks++
    if (this.inRecovery) {
      // RFC 6582 §3.2 step 4: inflate by one SMSS per further duplicate (NewReno only).
      if (!this.sackOk) this.cwnd += this.sndMss
      return
    }
    const lost = this.dupAcks >= DUP_THRESH ||
      (this.sackOk && this.scoreboard.sackedBytes() > (DUP_THRESH - 1) * this.sndMss)
    // RFC 6582 §3.2 step 2: no new recovery unless the ACK covers more than "recover".
    if (lost && (seqGt(this.sndUna, this.recover) || this.recover === this.iss)) this.enterRecovery()
  }

  /** Fast retransmit (RFC 5681 §3.2 steps 2-3; RFC 6675 §5 step 4). */
  private enterRecovery(): void {
    this.counters.fastRetransmits++
    const mss = this.sndMss
    this.recover = this.sndMax
    this.inRecovery = true
    // RFC 5681 eq. (4): ssthresh = max(FlightSize / 2, 2 * SMSS).
    this.ssthresh = Math.max(this.flight() >> 1, 2 * mss)
    this.highRxt = this.sndUna
    const len = this.retransmitAt(this.sndUna)
    this.highRxt = seqAdd(this.sndUna, Math.max(len, 1))
    this.cwnd = this.sackOk ? this.ssthresh : this.ssthresh + DUP_THRESH * mss
    this.armRto()
  }

  /** Adds the segment's SACK blocks to the scoreboard, ignoring D-SACK and bogus blocks (RFC 6675 §4). */
  private takeSack(): void {
    const o = this.opts
    for (let i = 0; i < o.sackCount; i++) {
      const l = o.sack[i * 2]!
      const r = o.sack[i * 2 + 1]!
      if (!seqLt(l, r) || seqLe(r, this.sndUna) || seqGt(r, this.sndMax) || seqLt(l, this.sndUna)) continue
      this.scoreboard.add(l, r)
    }
  }

  /** Seventh and eighth steps of RFC 9293 §3.10.7.4: segment text and FIN. */
  private processTextAndFin(msg: Msg, seq: Seq, flags: number, dataOff: number, len: number): void {
    switch (this.state) {
      case 'ESTABLISHED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
        break
      default:
        // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer already sent FIN; text is ignored.
        // FIN retransmissions in these states were answered in the first step.
        return
    }
    if (this.drainMode) return // Scout splice step 3: never acknowledge new data.
    let end = seqAdd(seq, len)
    if (len > 0) {
      let s = seq
      if (seqLt(s, this.rcvNxt)) {
        // RFC 9293 §3.10.7.4: trim the part already received; report it (RFC 2883 D-SACK).
        this.counters.dupSegsIn++
        this.setDsack(s, this.rcvNxt)
        s = this.rcvNxt
      }
      // Right edge: the advertised window, and what the buffer can hold.
      const free = this.rcvBuf.limit - this.rcvBuf.length
      let right = seqAdd(this.rcvNxt, free)
      if (seqLt(this.rcvAdv, right) && seqGt(this.rcvAdv, this.rcvNxt)) right = this.rcvAdv
      if (seqGt(end, right)) {
        end = right
        flags &= ~FIN // A FIN beyond the window is not ours to take yet.
      }
      const n = seqDiff(end, s)
      if (n > 0) this.acceptData(msg.buf, dataOff + seqDiff(s, seq), s, n)
    }
    if (flags & FIN) {
      this.rcvFinSeq = end
      this.rcvFinPending = true
    }
    if (this.rcvFinPending && this.rcvFinSeq === this.rcvNxt) this.processFin()
  }

  /** Stores `n` in-window bytes at sequence `s` (RFC 9293 §3.10.7.4 seventh step). */
  private acceptData(buf: Uint8Array, off: number, s: Seq, n: number): void {
    const rel = seqDiff(s, this.rcvNxt)
    const base = this.rcvBuf.length
    if (rel === 0) {
      this.rcvBuf.writeAt(base, buf, off, n)
      let next = seqAdd(s, n)
      const hadHoles = this.ooo.count > 0
      if (hadHoles) next = this.ooo.advance(next)
      const gained = seqDiff(next, this.rcvNxt)
      this.rcvBuf.extend(gained)
      this.rcvNxt = next
      this.rcvSinceAck += n
      if (n > this.rcvSegMax) this.rcvSegMax = n
      // RFC 5681 §4.2: ACK at once when a segment fills (part of) a hole; RFC 1122 §4.2.3.2:
      // at least every second full-sized segment; else delay.
      if (hadHoles || this.cfg.delayedAckMs === 0 || this.rcvSinceAck >= 2 * this.rcvMss()) this.ackNow = true
      else if (!this.delAckTimer.armed) this.delAckTimer.set(this.cfg.delayedAckMs)
      this.events.data?.()
      return
    }
    // Out of order: RFC 5681 §4.2 / RFC 9293: send an immediate duplicate ACK.
    this.counters.oooSegsIn++
    this.ackNow = true
    const e = seqAdd(s, n)
    if (this.ooo.covers(s, e)) {
      this.counters.dupSegsIn++
      this.setDsack(s, e)
      return
    }
    if (!this.ooo.add(s, e)) return // bounded: the sender will retransmit it
    this.rcvBuf.writeAt(base + rel, buf, off, n)
  }

  /** Eighth step: the FIN is in order. */
  private processFin(): void {
    this.rcvFinPending = false
    this.rcvNxt = seqAdd(this.rcvNxt, 1)
    this.peerFinished = true
    this.ackNow = true
    switch (this.state) {
      case 'SYN-RECEIVED':
      case 'ESTABLISHED':
        this.setState('CLOSE-WAIT', 'FIN received')
        break
      case 'FIN-WAIT-1':
        // Our FIN is not acked yet (else we would be in FIN-WAIT-2): simultaneous close.
        this.setState('CLOSING', 'FIN received in FIN-WAIT-1 (simultaneous close)')
        break
      case 'FIN-WAIT-2':
        this.enterTimeWait('FIN received in FIN-WAIT-2')
        break
      default:
        break
    }
    this.events.end?.()
  }

  // ---------------------------------------------------------------- output

  /** Sends whatever the windows, Nagle and SWS avoidance allow (RFC 9293 §3.8.6.2.1, RFC 1122 §4.2.3.4). */
  output(): void {
    switch (this.state) {
      case 'ESTABLISHED':
      case 'CLOSE-WAIT':
      case 'FIN-WAIT-1':
      case 'CLOSING':
      case 'LAST-ACK':
        break
      default:
        return
    }
    if (this.drainDone) return
    if (this.inRecovery && this.sackOk) this.sackRecoverySend()
    for (;;) {
      if (!this.sendOne(false)) break
    }
  }

  /**
   * Sends one new (or go-back-N) segment from SND.NXT if allowed; returns true if it did.
   * `force` overrides Nagle and SWS avoidance (the persist timer's override, RFC 9293 §3.8.6.2.1).
   */
  private sendOne(force: boolean): boolean {
    const bufEnd = seqAdd(this.bufSeq, this.sndBuf.length)
    const unsent = Math.max(0, seqDiff(bufEnd, this.sndNxt))
    const finNext = this.finQueued && seqLe(this.sndNxt, this.finSeq)
    if (unsent === 0 && !finNext) return false
    // RFC 3042 limited transmit: each of the first two duplicate ACKs lets one more new
    // segment out (cwnd itself unchanged), so small windows still reach three duplicates.
    const limited = !this.inRecovery && this.dupAcks > 0 && this.dupAcks < DUP_THRESH && this.sndNxt === this.sndMax ? this.dupAcks * this.sndMss : 0
    // Drain mode (Scout splice step 3): what is buffered is the head of a stream whose rest
    // the forwarder already sends on, unpaced by this TCB. Held back by the congestion
    // window it would only be a hole at the receiver, whose duplicate ACKs (caused by the
    // forwarded data) look like loss: first transmissions go out as the peer's window
    // allows. Retransmissions keep the congestion window's pace.
    const wnd = this.drainUnpaced && this.sndNxt === this.sndMax ? this.sndWnd : Math.min(this.sndWnd, this.cwnd + limited)
    const usable = seqDiff(seqAdd(this.sndUna, wnd), this.sndNxt)
    const len = Math.min(unsent, this.sndMss, Math.max(0, usable))
    const fin = finNext && seqAdd(this.sndNxt, len) === this.finSeq
    if (len === 0 && !fin) {
      this.maybePersist(unsent)
      return false
    }
    if (!force && len < this.sndMss && !fin) {
      if (len === unsent) {
        // RFC 1122 §4.2.3.4 Nagle: a small segment waits while data is unacknowledged.
        // (Retransmissions after go-back-N are not held: SND.NXT < SND.MAX.)
        // Not while draining: the small segment is not the last one, the forwarded data follows.
        if (!this.cfg.noDelay && !this.drainMode && this.sndMax !== this.sndUna && this.sndNxt === this.sndMax) return false
      } else if (len < (this.maxSndWnd >> 1)) {
        // RFC 9293 §3.8.6.2.1 sender SWS avoidance: wait for a bigger window.
        this.maybePersist(unsent)
        return false
      }
    }
    const seq = this.sndNxt
    const isRtx = seqLt(seq, this.sndMax)
    this.emit(seq, ACK | (len > 0 && len === unsent ? PSH : 0) | (fin ? FIN : 0), len)
    if (isRtx) this.counters.retransmits++
    else if (!this.rttTiming && !this.tsOk && len > 0) {
      this.rttTiming = true
      this.rttSeq = seq
      this.rttTime = this.host.now()
    }
    this.sndNxt = seqAdd(seq, len + (fin ? 1 : 0))
    if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt
    if (!this.rtoTimer.armed && !this.persistTimer.armed) this.armRto()
    return true
  }

  /** RFC 9293 §3.8.6.1: with data waiting and nothing outstanding, the persist timer probes the window. */
  private maybePersist(unsent: number): void {
    if (unsent > 0 && this.sndMax === this.sndUna && !this.persistTimer.armed) {
      this.rtoTimer.cancel()
      this.persistTimer.set(this.persistDelay())
    }
  }

  private persistDelay(): number {
    const base = Math.max(this.rtoFromSrtt(), 200)
    return Math.min(base * 2 ** this.persistBackoff, this.cfg.maxRtoMs)
  }

  /** RFC 6675 §5 (4.2-4.3): while pipe allows, retransmit lost holes, then send new data. */
  private sackRecoverySend(): void {
    const mss = this.sndMss
    let pipe = this.pipe()
    let guard = 0
    while (this.cwnd - pipe >= mss && guard++ < 1024) {
      // NextSeg rule 1: the first unSACKed, not yet retransmitted byte below the highest SACK.
      let s = seqGt(this.highRxt, this.sndUna) ? this.highRxt : this.sndUna
      s = this.scoreboard.skipSacked(s)
      const high = this.scoreboard.count > 0 ? this.scoreboard.highSacked : this.sndUna
      if (seqLt(s, high)) {
        const holeEnd = this.scoreboard.nextSackedAfter(s, high)
        const max = Math.min(seqDiff(holeEnd, s), mss)
        const len = this.retransmitAt(s, max)
        this.highRxt = seqAdd(s, Math.max(len, 1))
        pipe += Math.max(len, 1)
        continue
      }
      // Rule 2: new data.
      const before = this.sndNxt
      if (!this.sendOne(false)) break
      pipe += seqDiff(this.sndNxt, before)
    }
  }

  /** RFC 6675 §4 "pipe": bytes believed in flight (lost-and-not-retransmitted and SACKed excluded). */
  private pipe(): number {
    const sb = this.scoreboard
    if (sb.count === 0) return seqDiff(this.sndMax, this.sndUna)
    const high = sb.highSacked
    const rx = seqLt(this.highRxt, high) ? (seqGt(this.highRxt, this.sndUna) ? this.highRxt : this.sndUna) : high
    // Above the highest SACK: in flight. Below highRxt and unSACKed: retransmitted, in flight.
    let p = Math.max(0, seqDiff(this.sndMax, high))
    p += seqDiff(rx, this.sndUna) - (sb.sackedBytes() - sb.sackedAbove(rx))
    return Math.max(0, p)
  }

  /** Retransmits up to `max` bytes (default one SMSS) at `seq` (plus FIN if it follows); returns the data length. */
  private retransmitAt(seq: Seq, max = this.sndMss): number {
    const bufEnd = seqAdd(this.bufSeq, this.sndBuf.length)
    const len = Math.max(0, Math.min(max, seqDiff(bufEnd, seq)))
    const fin = this.finQueued && seqAdd(seq, len) === this.finSeq && seqLt(this.finSeq, this.sndMax)
    if (len === 0 && !fin) return 0
    // Karn's algorithm (RFC 6298 §3): never time a retransmitted segment.
    if (this.rttTiming && seqLe(seq, this.rttSeq)) this.rttTiming = false
    this.emit(seq, ACK | (fin ? FIN : 0), len)
    this.counters.retransmits++
    // Repacketized data may reach past SND.MAX (more was written since): it is sent now.
    const end = seqAdd(seq, len)
    if (seqGt(end, this.sndMax)) this.sndMax = end
    return len
  }

  // ---------------------------------------------------------------- timers

  /** RFC 6298 §5.4-5.7: retransmission timeout. */
  private onRto(): void {
    switch (this.state) {
      case 'SYN-SENT':
      case 'SYN-RECEIVED':
        if (++this.retries > this.cfg.synRetries) {
          if (this.state === 'SYN-SENT' || this.active) this.fail('timeout', `${this.state} retransmissions exhausted`)
          else this.toClosed('SYN-ACK retransmissions exhausted') // passive: the embryo just goes away
          return
        }
        this.counters.rtoTimeouts++
        this.synRetransmitted = true
        this.rttTiming = false // Karn
        this.rto = Math.min(this.rto * 2, this.cfg.maxRtoMs)
        this.sendSyn(this.state === 'SYN-RECEIVED')
        this.counters.retransmits++
        this.rtoTimer.set(this.rto)
        return
      case 'CLOSED':
      case 'LISTEN':
      case 'TIME-WAIT':
      case 'FIN-WAIT-2':
        return
      default:
        break
    }
    if (this.sndUna === this.sndMax) return
    if (++this.retries > this.cfg.maxRetransmits) {
      this.fail('timeout', 'retransmissions exhausted')
      return
    }
    this.counters.rtoTimeouts++
    const mss = this.sndMss
    // RFC 5681 §3.1 eq. (4) on the first timeout only; the loss window is one SMSS.
    if (this.retries === 1) this.ssthresh = Math.max(this.flight() >> 1, 2 * mss)
    this.cwnd = mss
    this.caBytes = 0
    this.inRecovery = false
    this.dupAcks = 0
    this.recover = this.sndMax // RFC 6582 §4
    this.scoreboard.clear() // RFC 6675 §5.1: the receiver may have reneged.
    this.highRxt = this.sndUna
    this.rttTiming = false // Karn
    // RFC 6298 (5.5): back off the timer.
    this.rto = Math.min(this.rto * 2, this.cfg.maxRtoMs)
    // Go back N: resend from SND.UNA as the ACKs come back.
    const len = this.retransmitAt(this.sndUna)
    const finToo = this.finQueued && seqAdd(this.sndUna, len) === this.finSeq && seqLt(this.finSeq, this.sndMax)
    this.sndNxt = seqAdd(this.sndUna, len + (finToo ? 1 : 0))
    this.rtoTimer.set(this.rto)
  }

  private onDelayedAck(): void {
    if (this.drainMode) return
    this.counters.delayedAcks++
    this.sendAck()
  }

  /** RFC 9293 §3.8.6.1 / RFC 1122 §4.2.2.17: probe a zero window (or force a small segment). */
  private onPersist(): void {
    switch (this.state) {
      case 'ESTABLISHED':
      case 'CLOSE-WAIT':
      case 'FIN-WAIT-1':
      case 'CLOSING':
      case 'LAST-ACK':
        break
      default:
        return
    }
    const bufEnd = seqAdd(this.bufSeq, this.sndBuf.length)
    if (this.sndWnd === 0) {
      this.counters.windowProbes++
      if (this.sndMax === this.sndUna) {
        // First probe: one new byte beyond the window.
        if (seqLt(this.sndNxt, bufEnd)) {
          this.emit(this.sndNxt, ACK, 1)
          this.sndNxt = seqAdd(this.sndNxt, 1)
          this.sndMax = this.sndNxt
        }
      } else {
        // The probe byte is still unacknowledged (or was lost): send it again.
        this.emit(this.sndUna, ACK, 1)
      }
      this.persistBackoff++
      this.persistTimer.set(this.persistDelay())
      return
    }
    // A small but non-zero window: the SWS override timeout sends what fits.
    this.persistBackoff = 0
    this.sendOne(true)
    this.output()
    // Data sent while the persist timer ran had no retransmission timer (sendOne arms it
    // only when neither runs): with nothing new to send, nothing would recover a loss.
    if (this.sndMax !== this.sndUna && !this.rtoTimer.armed && !this.persistTimer.armed) this.armRto()
  }

  private armKeepAlive(): void {
    if (this.cfg.keepAliveMs > 0 && (this.state === 'ESTABLISHED' || this.state === 'CLOSE-WAIT')) {
      this.keepAliveTimer.setAt(this.lastHeard + this.cfg.keepAliveMs)
    }
  }

  /** RFC 1122 §4.2.3.6: after the idle time, probe with SEG.SEQ = SND.NXT - 1 until answered or given up. */
  private onKeepAlive(): void {
    if (this.cfg.keepAliveMs <= 0 || (this.state !== 'ESTABLISHED' && this.state !== 'CLOSE-WAIT')) return
    const now = this.host.now()
    const idleUntil = this.lastHeard + this.cfg.keepAliveMs
    if (this.kaProbes === 0 && now < idleUntil) {
      this.keepAliveTimer.setAt(idleUntil)
      return
    }
    if (this.kaProbes >= this.cfg.keepAliveProbes) {
      this.fail('timeout', 'keep-alive probes unanswered')
      return
    }
    this.kaProbes++
    this.counters.keepAliveProbes++
    if (!this.drainMode) this.emit(seqAdd(this.sndMax, -1), ACK, 0)
    this.keepAliveTimer.set(this.cfg.keepAliveIntervalMs)
  }

  private onCloseTimer(): void {
    switch (this.state) {
      case 'TIME-WAIT':
        this.toClosed('2 MSL elapsed in TIME-WAIT')
        return
      case 'FIN-WAIT-2':
        this.toClosed('FIN-WAIT-2 timeout')
        return
      default:
        return
    }
  }

  // ---------------------------------------------------------------- emitting segments

  /** Sends SYN (active) or SYN-ACK (`ack`) at ISS with our SYN options. */
  private sendSyn(ack: boolean): void {
    const m = allocMsg(TcpField.HEADER_LEN + 40)
    const b = m.buf
    const o = m.off
    const cfg = this.cfg
    // On a SYN-ACK offer only what the peer offered (RFC 7323 §1.3, RFC 2018 §2).
    const ws = ack ? (this.wsAgreed ? this.rcvWscale : -1) : cfg.windowScaling ? wscaleFor(cfg.rcvBuf) : -1
    const sackP = ack ? this.sackOk : cfg.sack
    const ts = ack ? this.tsOk : cfg.timestamps
    const tsVal = this.tsNow()
    const optLen = writeSynOptions(b, o + TcpField.HEADER_LEN, {
      mss: this.advMss, wscale: ws, sackPermitted: sackP, ts, tsVal, tsEcr: ack ? this.tsRecent : 0,
    })
    const hl = TcpField.HEADER_LEN + optLen
    const wnd = Math.min(this.rcvBuf.limit - this.rcvBuf.length, 65535)
    this.writeHeader(b, o, this.iss, ack ? this.rcvNxt : 0, SYN | (ack ? ACK : 0), wnd, hl)
    m.end = o + hl
    if (ts) {
      this.tsLastSent = tsVal
      this.tsEcrLastSent = ack ? this.tsRecent : 0
    }
    if (ack) {
      this.lastAckSent = this.rcvNxt
      const right = seqAdd(this.rcvNxt, wnd)
      if (seqGt(right, this.rcvAdv)) this.rcvAdv = right
    }
    this.counters.segsOut++
    this.host.output(m)
  }

  /** Applies the peer's SYN options (RFC 9293 §3.7.1, RFC 7323 §2-3, RFC 2018 §2). */
  private negotiate(): void {
    const o = this.opts
    const cfg = this.cfg
    this.peerMss = o.mss > 0 ? o.mss : DEFAULT_PEER_MSS
    // RFC 7323 §2.2: scaling only when both SYNs carry the option.
    if (cfg.windowScaling && o.wscale >= 0) {
      this.sndWscale = o.wscale
      this.rcvWscale = wscaleFor(cfg.rcvBuf)
      this.wsAgreed = true
    } else {
      this.sndWscale = 0
      this.rcvWscale = 0
      this.wsAgreed = false
    }
    this.sackOk = cfg.sack && o.sackPermitted
    this.tsOk = cfg.timestamps && o.hasTs
    this.updateSndMss()
    this.initCwnd()
  }

  private updateSndMss(): void {
    // RFC 9293 §3.7.1 / RFC 6691: payload = min(peer MSS, our path MSS) - per-segment options.
    const base = Math.min(this.peerMss, this.advMss, this.pathMss)
    this.sndMss = Math.max(1, base - (this.tsOk ? TS_OPTION_LEN : 0))
  }

  /** RFC 6928: IW = min(10 * MSS, max(2 * MSS, 14600)) (or the configured number of segments). */
  private initCwnd(): void {
    const mss = this.sndMss
    const n = this.cfg.initialCwndSegments
    this.cwnd = n === 10 ? Math.min(10 * mss, Math.max(2 * mss, 14600)) : n * mss
    this.ssthresh = 0x7fffffff
  }

  private rcvMss(): number {
    // A peer with a smaller MSS than ours sends smaller full-sized segments (estimated from
    // the largest seen, floored at 536 like Linux, so tiny writes are not "full-sized").
    const mine = this.advMss - (this.tsOk ? TS_OPTION_LEN : 0)
    return Math.max(1, Math.min(mine, Math.max(this.rcvSegMax, DEFAULT_PEER_MSS)))
  }

  /** Sends a pure ACK now. */
  sendAck(): void {
    if (this.state === 'CLOSED' || this.state === 'LISTEN' || this.state === 'SYN-SENT') return
    if (this.drainMode) return
    this.emit(this.sndMax, ACK, 0)
  }

  /** Sends a pending immediate ACK unless a segment sent meanwhile carried it. */
  private flushAck(): void {
    // A segment sent meanwhile carried the ACK only if it acknowledged everything we have now
    // (a window update sent from inside a `data` callback precedes the FIN, for instance).
    if (this.ackNow && (!this.emitted || this.lastAckSent !== this.rcvNxt)) this.sendAck()
    this.ackNow = false
  }

  /** RFC 5961 §7: challenge ACKs, at most `challengeAckLimit` per second per connection. */
  private challengeAck(): void {
    const now = this.host.now()
    if (now - this.challengeStart >= 1000) {
      this.challengeStart = now
      this.challengeCount = 0
    }
    if (this.challengeCount >= this.cfg.challengeAckLimit) {
      this.counters.challengeAcksLimited++
      return
    }
    this.challengeCount++
    this.counters.challengeAcks++
    if (this.drainMode) return
    this.emit(this.sndMax, ACK, 0)
  }

  /** Sends a RST: <SEQ=seq><CTL=RST> or <SEQ=0><ACK=ack><CTL=RST,ACK>. */
  private sendRst(seq: Seq, ack: Seq, withAck: boolean): void {
    const m = allocMsg(TcpField.HEADER_LEN)
    this.writeHeader(m.buf, m.off, seq, ack, RST | (withAck ? ACK : 0), 0, TcpField.HEADER_LEN)
    m.end = m.off + TcpField.HEADER_LEN
    this.counters.segsOut++
    this.host.output(m)
  }

  /** Builds and sends one segment at `seq` with `len` bytes from the send buffer. */
  private emit(seq: Seq, flags: number, len: number): void {
    const withSack = this.sackOk && (flags & ACK) !== 0 && (this.ooo.count > 0 || this.dsackPending)
    const optMax = (this.tsOk ? TS_OPTION_LEN : 0) + (withSack ? 36 : 0)
    const m = allocMsg(TcpField.HEADER_LEN + optMax + len)
    const b = m.buf
    const o = m.off
    let hl = TcpField.HEADER_LEN
    const tsVal = this.tsNow()
    if (this.tsOk) {
      hl += writeTsOption(b, o + hl, tsVal, this.tsRecent)
      this.tsLastSent = tsVal
      this.tsEcrLastSent = this.tsRecent
    }
    if (withSack) {
      // RFC 6691: data plus options must fit the MSS; a full data segment carries fewer (or no) blocks.
      const room = Math.min(this.peerMss, this.advMss, this.pathMss) - (this.tsOk ? TS_OPTION_LEN : 0) - len - 4
      const maxBlocks = Math.min(this.tsOk ? 3 : 4, len > 0 ? Math.max(0, room >> 3) : 4)
      let n = 0
      if (this.dsackPending) {
        // RFC 2883 §4: the D-SACK block goes first.
        this.sackOut[0] = this.dsackStart
        this.sackOut[1] = this.dsackEnd
        n = 1
      }
      if (n > maxBlocks) n = 0 // no room for the D-SACK block; it is reported on the next pure ACK
      else this.dsackPending = false
      n += this.ooo.blocks(this.sackOut, n, maxBlocks - n)
      if (n > 0) hl += writeSackOption(b, o + hl, this.sackOut, n)
    }
    const wnd = this.advertiseWindow()
    this.writeHeader(b, o, seq, flags & ACK ? this.rcvNxt : 0, flags, wnd, hl)
    if (len > 0) this.sndBuf.copyOut(seqDiff(seq, this.bufSeq), b, o + hl, len)
    m.end = o + hl + len
    if (flags & ACK) {
      this.lastAckSent = this.rcvNxt
      this.rcvSinceAck = 0
      this.delAckTimer.cancel()
      this.emitted = true
    }
    this.counters.segsOut++
    this.counters.bytesOut += len
    this.host.output(m)
  }

  /**
   * The window field to send (RFC 9293 §3.8.6.2.2 receiver SWS avoidance; RFC 7323 §2.4 never
   * shrink). Updates RCV.ADV.
   */
  private advertiseWindow(): number {
    const free = this.rcvBuf.limit - this.rcvBuf.length
    const cur = Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt))
    let wnd = free
    // Only move the right edge when it gains at least min(RCV.BUFF / 2, MSS).
    if (wnd > cur && wnd - cur < Math.min(this.rcvBuf.limit >> 1, this.advMss)) wnd = cur
    if (wnd < cur) wnd = cur
    if (this.drainMode) wnd = cur
    let field = wnd >>> this.rcvWscale
    if (field > 65535) field = 65535
    const right = seqAdd(this.rcvNxt, field << this.rcvWscale)
    if (seqGt(right, this.rcvAdv)) this.rcvAdv = right
    return field
  }

  /** After the application read: send a window update if the window grew enough (RFC 1122 §4.2.3.3). */
  private maybeWindowUpdate(): void {
    switch (this.state) {
      case 'ESTABLISHED':
      case 'FIN-WAIT-1':
      case 'FIN-WAIT-2':
        break
      default:
        return
    }
    if (this.drainMode) return
    // The window we could advertise: free space, as far as the 16-bit field (scaled) reaches.
    const wnd = Math.min(this.rcvBuf.limit - this.rcvBuf.length, 65535 * 2 ** this.rcvWscale)
    const cur = Math.max(0, seqDiff(this.rcvAdv, this.rcvNxt))
    if (wnd - cur >= Math.min(this.rcvBuf.limit >> 1, 2 * this.advMss)) this.sendAck()
  }

  private writeHeader(b: Uint8Array, o: number, seq: Seq, ack: Seq, flags: number, wnd: number, hl: number): void {
    set16(b, o, this.localPort)
    set16(b, o + 2, this.remotePort)
    set32(b, o + 4, seq)
    set32(b, o + 8, ack)
    b[o + 12] = (hl >>> 2) << 4
    b[o + 13] = flags
    set16(b, o + 14, wnd)
    set16(b, o + 16, 0)
    set16(b, o + 18, 0)
  }

  // ---------------------------------------------------------------- helpers

  private tsNow(): number {
    return (Math.floor(this.host.now()) + this.tsOffset) >>> 0
  }

  private flight(): number {
    return seqDiff(this.sndMax, this.sndUna)
  }

  private finAcked(): boolean {
    return this.finQueued && seqGt(this.sndUna, this.finSeq)
  }

  private queueFin(): void {
    if (this.finQueued) return
    this.finQueued = true
    this.finSeq = seqAdd(this.bufSeq, this.sndBuf.length)
  }

  private setDsack(s: Seq, e: Seq): void {
    if (!this.sackOk) return
    this.dsackStart = s
    this.dsackEnd = e
    this.dsackPending = true
  }

  private startSynTiming(): void {
    this.rttTiming = true
    this.rttSeq = this.iss
    this.rttTime = this.host.now()
  }

  private armRto(): void {
    this.rtoTimer.set(this.rto)
  }

  /** RTO from SRTT/RTTVAR without backoff (RFC 6298 (2.3)), or the initial RTO before a sample. */
  private rtoFromSrtt(): number {
    if (this.srtt === 0) return this.synRetransmitted ? Math.max(this.cfg.initialRtoMs, 3000) : this.cfg.initialRtoMs
    const r = this.srtt + Math.max(1, 4 * this.rttvar)
    return Math.min(Math.max(r, this.cfg.minRtoMs), this.cfg.maxRtoMs)
  }

  /** RTT sample from a timestamp echo (RFC 7323 §4.1) or a timed segment (RFC 6298 §3, Karn). */
  private sampleRttOnAck(ack: Seq): void {
    let r = -1
    if (this.tsOk && this.opts.hasTs && this.opts.tsEcr !== 0) {
      r = seqDiff(this.tsNow(), this.opts.tsEcr)
      this.rttTiming = false
    } else if (this.rttTiming && seqGt(ack, this.rttSeq)) {
      r = this.host.now() - this.rttTime
      this.rttTiming = false
    }
    if (r < 0) return
    // RFC 6298 (2.2)/(2.3).
    if (this.srtt === 0) {
      this.srtt = Math.max(r, 0.001)
      this.rttvar = r / 2
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r)
      this.srtt = 0.875 * this.srtt + 0.125 * r
    }
  }

  private checkDrained(): void {
    if (!this.drainMode || this.drainDone) return
    if (this.sndBuf.length === 0 && this.sndUna === this.sndMax) {
      this.drainDone = true
      this.rtoTimer.cancel()
      this.persistTimer.cancel()
      this.delAckTimer.cancel()
      this.events.drained?.()
    }
  }

  private enterTimeWait(why: string): void {
    this.rtoTimer.cancel()
    this.persistTimer.cancel()
    this.delAckTimer.cancel()
    this.setState('TIME-WAIT', why)
    // RFC 9293 §3.10.7.4: wait 2 MSL.
    this.closeTimer.set(2 * this.cfg.mslMs)
  }

  private fail(reason: 'reset' | 'refused' | 'timeout', why: string): void {
    if (reason === 'timeout') {
      switch (this.state) {
        case 'SYN-RECEIVED':
        case 'ESTABLISHED':
        case 'FIN-WAIT-1':
        case 'FIN-WAIT-2':
        case 'CLOSE-WAIT':
        case 'CLOSING':
        case 'LAST-ACK':
          this.sendRst(this.sndMax, 0, false)
          break
        default:
          break
      }
    }
    this.events.error?.(reason)
    this.toClosed(why)
  }

  private toClosed(why: string): void {
    this.dispose()
    if (this.state === 'CLOSED') return
    this.setState('CLOSED', why)
    this.events.closed?.()
    this.ownerEvents.closed?.()
  }

  private emitConnected(): void {
    this.ownerEvents.connected?.()
    this.events.connected?.()
  }

  /** Every state change goes through here: traced, published, reported. */
  setState(next: TcpState, why: string): void {
    const from = this.state
    if (from === next) return
    this.state = next
    const line = `${from} -> ${next} (${why})`
    this.trace.push(line)
    if (this.trace.length > 16) this.trace.shift()
    if (stateChannel.hasSubscribers) stateChannel.publish({ tcb: this, from, to: next, why })
    this.events.state?.(from, next, why)
  }
}

function inWindow(s: Seq, lo: Seq, len: number): boolean {
  return ((s - lo) >>> 0) < len
}

function assertNever(x: never): never {
  throw new Error(`unexpected state ${String(x)}`)
}
