/**
 * MSOCKS (Maltz and Bhagwat, "MSOCKS: an architecture for transport layer mobility",
 * §III): the SOCKS5 extension that lets a mobile client move a spliced session to a new
 * client connection (a new address or interface), without the server or the application
 * noticing. This file holds the wire format, the basepoint arithmetic of §III-B.4/B.5 and
 * the identifier registry; the resplice itself is `paths/proxy/resplice.ts`.
 *
 * ## Wire format (all integers big-endian; see also docs/msocks.md)
 *
 * Method negotiation and authentication are plain RFC 1928 §3 / RFC 1929. Then:
 * ```
 *  MCONNECT request   = RFC 1928 §4 request with CMD = X'80' (a CONNECT that asks for an identifier)
 *     +----+------+-----+------+----------+----------+
 *     |VER | CMD  | RSV | ATYP | DST.ADDR | DST.PORT |
 *     | 05 |  80  | 00  |  01  |    4     |    2     |      (ATYP 03 with a resolver too)
 *  MCONNECT reply (success) = RFC 1928 §6 reply, then the connection identifier:
 *     +----+-----+-----+------+----------+----------+--------+
 *     |VER | REP | RSV | ATYP | BND.ADDR | BND.PORT |   ID   |
 *     | 05 | 00  | 00  |  01  |    4     |    2     |   16   |   = 26 octets
 *     A failure reply is the plain 10-octet RFC 1928 reply (no ID) and the proxy closes.
 *  MBIND (CMD X'82', with `socks5Proxy({ bind: true })`): a BIND whose first reply is the
 *     plain 10-octet one (BND = where the server connects) and whose second reply (BND =
 *     the server's address) has the MCONNECT reply's form, with the identifier.
 *  RECONNECT request (on a new connection to the same proxy, after method/auth):
 *     +----+-----+-----+------+-----------+--------------+
 *     |VER | CMD | RSV |  ID  | DATA_READ | DATA_WRITTEN |
 *     | 05 | 81  | 00  |  16  |     8     |      8       |     = 35 octets
 *  RECONNECT reply:
 *     +----+-----+-----+-----+--------------+------------+
 *     |VER | REP | RSV | RSV | DATA_SALVAGE | DATA_WRITE |
 *     | 05 |     | 00  | 00  |      8       |     8      |      = 20 octets
 *     REP X'00' succeeded: the session now runs on this connection; the next octet from
 *     the proxy is the next server octet after the salvaged ones. Any other REP: the
 *     counters are 0, the proxy closes this connection, and the old session is untouched.
 * ```
 * DATA_READ counts the server octets the client library took from its sockets (after the
 * MCONNECT reply, over all connections of the session); DATA_WRITTEN the application
 * octets it wrote. DATA_SALVAGE: octets still to be read from the old socket (§III-C);
 * DATA_WRITE: how many of the last written octets to write again on the new connection
 * (the hole of Fig. 10). Counters are unsigned 64-bit; values above 2^53 are refused.
 *
 * Identifiers are 16 random octets (`crypto.randomBytes`), bound to the authenticated
 * user (or to "no user" without authentication). An unknown identifier and one of another
 * user get the same reply (X'80'), so a guess learns nothing; both are counted and logged.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { seqAdd, seqDiff } from '../../../core/seq.js'
import type { ProxySessionApi } from '../session.js'
import { SOCKS5_VERSION, type Socks5Parse } from './socks5.js'

/** CMD of an MCONNECT request: a CONNECT whose success reply carries a connection identifier. */
export const MSOCKS_CMD_CONNECT = 0x80
/**
 * CMD of an MBIND request: a BIND (RFC 1928 §4) whose second reply (the server connected
 * in) carries a connection identifier, like an MCONNECT reply; the first reply is the
 * plain 10-octet one.
 */
export const MSOCKS_CMD_BIND = 0x82
/** CMD of a RECONNECT request. */
export const MSOCKS_CMD_RECONNECT = 0x81
/** Octets of a connection identifier. */
export const MSOCKS_ID_LENGTH = 16
/** Octets of an MCONNECT success reply (RFC 1928 reply with an IPv4 BND.ADDR, then the ID). */
export const MSOCKS_CONNECT_REPLY_LENGTH = 10 + MSOCKS_ID_LENGTH
/** Octets of a RECONNECT request. */
export const MSOCKS_RECONNECT_LENGTH = 3 + MSOCKS_ID_LENGTH + 16
/** Octets of a RECONNECT reply. */
export const MSOCKS_RECONNECT_REPLY_LENGTH = 20

/** REP codes of a RECONNECT reply. */
export const MsocksRep = {
  /** X'00' the session moved to this connection. */
  Succeeded: 0x00,
  /** X'01' general failure (the proxy could not carry out the move). */
  GeneralFailure: 0x01,
  /** X'80' no such connection for this user (unknown, expired, or another user's). */
  UnknownId: 0x80,
  /** X'81' DATA_READ / DATA_WRITTEN do not fit the session's state. */
  BadCounters: 0x81,
  /** X'82' the session cannot move now (closing, or its splice did not complete in time). */
  NotMovable: 0x82,
} as const
/** One of {@link MsocksRep}. */
export type MsocksRepCode = (typeof MsocksRep)[keyof typeof MsocksRep]

/** A RECONNECT request. */
export interface MsocksReconnect {
  /** The connection identifier from the MCONNECT reply. */
  id: Uint8Array
  /** Server octets the client library has taken from its sockets. */
  dataRead: number
  /** Application octets written. */
  dataWritten: number
}

/** A RECONNECT reply. */
export interface MsocksReconnectReply {
  /** REP. */
  rep: number
  /** Octets to read from the old socket before reading the new one. */
  dataSalvage: number
  /** Octets to write again (the last ones written) before new data. */
  dataWrite: number
}

const MAX_U64_SAFE = Number.MAX_SAFE_INTEGER
const NEED_MORE = { kind: 'need-more' } as const

function putU64(b: Uint8Array, at: number, n: number): void {
  if (!(Number.isInteger(n) && n >= 0 && n <= MAX_U64_SAFE)) throw new RangeError(`msocks: counter ${n} is not an integer in 0..2^53-1`)
  const hi = Math.floor(n / 0x1_0000_0000)
  const lo = n >>> 0
  b[at] = hi >>> 24; b[at + 1] = (hi >>> 16) & 255; b[at + 2] = (hi >>> 8) & 255; b[at + 3] = hi & 255
  b[at + 4] = lo >>> 24; b[at + 5] = (lo >>> 16) & 255; b[at + 6] = (lo >>> 8) & 255; b[at + 7] = lo & 255
}

/** Reads a u64 counter; -1 if it is above 2^53 - 1 (not representable exactly). */
function getU64(b: Uint8Array, at: number): number {
  const hi = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0
  const lo = ((b[at + 4]! << 24) | (b[at + 5]! << 16) | (b[at + 6]! << 8) | b[at + 7]!) >>> 0
  if (hi > 0x1f_ffff) return -1
  return hi * 0x1_0000_0000 + lo
}

/** Builds a RECONNECT request. Throws a RangeError for a bad identifier or counter. */
export function buildReconnect(r: MsocksReconnect): Uint8Array {
  if (r.id.length !== MSOCKS_ID_LENGTH) throw new RangeError(`msocks: an identifier has ${MSOCKS_ID_LENGTH} octets, got ${r.id.length}`)
  const b = new Uint8Array(MSOCKS_RECONNECT_LENGTH)
  b[0] = SOCKS5_VERSION
  b[1] = MSOCKS_CMD_RECONNECT
  b.set(r.id, 3)
  putU64(b, 3 + MSOCKS_ID_LENGTH, r.dataRead)
  putU64(b, 11 + MSOCKS_ID_LENGTH, r.dataWritten)
  return b
}

/** Parses a RECONNECT request (after `VER CMD` were seen to be `05 81`). */
export function parseReconnect(b: Uint8Array): Socks5Parse<MsocksReconnect> {
  if (b.length >= 1 && b[0] !== SOCKS5_VERSION) return { kind: 'error', reason: `request version ${b[0]}, expected 5` }
  if (b.length >= 2 && b[1] !== MSOCKS_CMD_RECONNECT) return { kind: 'error', reason: `command ${b[1]} is not RECONNECT (${MSOCKS_CMD_RECONNECT})` }
  if (b.length < MSOCKS_RECONNECT_LENGTH) return NEED_MORE
  const dataRead = getU64(b, 3 + MSOCKS_ID_LENGTH)
  const dataWritten = getU64(b, 11 + MSOCKS_ID_LENGTH)
  if (dataRead < 0 || dataWritten < 0) return { kind: 'error', reason: 'a RECONNECT counter is above 2^53 - 1' }
  return { kind: 'ok', value: { id: b.slice(3, 3 + MSOCKS_ID_LENGTH), dataRead, dataWritten }, length: MSOCKS_RECONNECT_LENGTH }
}

/** Builds a RECONNECT reply (counters 0 unless it succeeded). */
export function buildReconnectReply(rep: number, dataSalvage = 0, dataWrite = 0): Uint8Array {
  const b = new Uint8Array(MSOCKS_RECONNECT_REPLY_LENGTH)
  b[0] = SOCKS5_VERSION
  b[1] = rep
  putU64(b, 4, dataSalvage)
  putU64(b, 12, dataWrite)
  return b
}

/** Parses a RECONNECT reply. */
export function parseReconnectReply(b: Uint8Array): Socks5Parse<MsocksReconnectReply> {
  if (b.length >= 1 && b[0] !== SOCKS5_VERSION) return { kind: 'error', reason: `reply version ${b[0]}, expected 5` }
  if (b.length < MSOCKS_RECONNECT_REPLY_LENGTH) return NEED_MORE
  const dataSalvage = getU64(b, 4)
  const dataWrite = getU64(b, 12)
  if (dataSalvage < 0 || dataWrite < 0) return { kind: 'error', reason: 'a RECONNECT reply counter is above 2^53 - 1' }
  return { kind: 'ok', value: { rep: b[1]!, dataSalvage, dataWrite }, length: MSOCKS_RECONNECT_REPLY_LENGTH }
}

/** An MCONNECT reply as the client sees it. */
export interface MsocksConnectReply {
  /** REP (RFC 1928 §6). */
  rep: number
  /** BND.ADDR (IPv4, u32). */
  bindIp: number
  /** BND.PORT. */
  bindPort: number
  /** The identifier (success only). */
  id: Uint8Array | null
}

/** Parses an MCONNECT reply: 26 octets on success, the plain 10-octet reply otherwise. */
export function parseConnectReply(b: Uint8Array): Socks5Parse<MsocksConnectReply> {
  if (b.length >= 1 && b[0] !== SOCKS5_VERSION) return { kind: 'error', reason: `reply version ${b[0]}, expected 5` }
  if (b.length < 4) return NEED_MORE
  if (b[3] !== 1) return { kind: 'error', reason: `reply ATYP ${b[3]}: this proxy answers with IPv4 (1)` }
  const rep = b[1]!
  const len = rep === 0 ? MSOCKS_CONNECT_REPLY_LENGTH : 10
  if (b.length < len) return NEED_MORE
  const bindIp = ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0
  const bindPort = (b[8]! << 8) | b[9]!
  return { kind: 'ok', value: { rep, bindIp, bindPort, id: rep === 0 ? b.slice(10, 10 + MSOCKS_ID_LENGTH) : null }, length: len }
}

// ------------------------------------------------------------------ basepoints (§III-B.4/B.5)

/** The proxy's view of a spliced session at a RECONNECT, as 32-bit sequence numbers. */
export interface RespliceState {
  /** Server sequence number of the first server octet the application gets (octet 0 of DATA_READ). */
  readBase: number
  /** Sequence number (towards the server) of the first octet of DATA_WRITTEN. */
  writeBase: number
  /** snd_una_C: the old client connection's highest ACK, mapped to the server's sequence space. */
  sndUnaC: number
  /** The end of the server's stream as forwarded so far (highest seq + len). */
  serverHigh: number
  /** snd_una_D: the server's highest ACK (towards-server sequence space). */
  sndUnaD: number
}

/** The outcome of {@link resplicePoints}. */
export type ResplicePoints =
  | {
    /** The counters fit. */
    readonly ok: true
    /** splice_irs: server sequence number of the next octet the new connection carries. */
    readonly spliceIrs: number
    /** data_salvage = snd_una_C - data_read when positive, else 0 (Fig. 8 / Fig. 9). */
    readonly dataSalvage: number
    /** data_write = data_written - snd_una_D (Fig. 10). */
    readonly dataWrite: number
    /** Towards-server sequence number the first rewritten octet maps to (snd_una_D). */
    readonly rewriteFrom: number
    /**
     * Which case of §III-B.4: 'salvage' (Fig. 8, snd_una_C > data_read), 'read-ahead'
     * (Fig. 9, data_read > snd_una_C: retransmissions below data_read are chopped), 'exact'.
     */
    readonly figure: 'salvage' | 'read-ahead' | 'exact'
  }
  | {
    /** The counters do not fit (a forged or buggy client). */
    readonly ok: false
    /** Why, for the log. */
    readonly reason: string
  }

/** Largest gap a counter may have to a sequence number (far larger ones wrapped or are lies). */
export const MSOCKS_MAX_GAP = 2 ** 30

/**
 * Chooses the basepoints of a resplice (§III-B.4/B.5). Counters are 64-bit octet counts;
 * sequence numbers wrap at 2^32, so positions are compared as 32-bit differences.
 */
export function resplicePoints(st: RespliceState, dataRead: number, dataWritten: number): ResplicePoints {
  const readPos = seqAdd(st.readBase, dataRead)
  const sent = seqDiff(st.serverHigh, readPos)
  if (sent < 0) return { ok: false, reason: `data_read ${dataRead} is ${-sent} octets beyond what the server has sent` }
  if (sent > MSOCKS_MAX_GAP) return { ok: false, reason: `data_read ${dataRead} is ${sent} octets behind the server's stream (more than ${MSOCKS_MAX_GAP})` }
  const unread = seqDiff(st.sndUnaC, readPos)
  if (unread > MSOCKS_MAX_GAP) return { ok: false, reason: `data_read ${dataRead} is more than ${MSOCKS_MAX_GAP} octets below the client's acknowledgment` }
  // Fig. 8: acked but unread octets sit in the old socket: salvage them, resume at snd_una_C.
  // Fig. 9: read but not yet acked: resume at data_read; retransmissions below it are chopped.
  const dataSalvage = unread > 0 ? unread : 0
  const spliceIrs = unread > 0 ? st.sndUnaC : readPos
  const hole = seqDiff(seqAdd(st.writeBase, dataWritten), st.sndUnaD)
  if (hole < 0) return { ok: false, reason: `data_written ${dataWritten} is ${-hole} octets below what the server acknowledged` }
  if (hole > MSOCKS_MAX_GAP) return { ok: false, reason: `data_written ${dataWritten} is more than ${MSOCKS_MAX_GAP} octets beyond the server's acknowledgment` }
  const figure = unread > 0 ? 'salvage' : unread < 0 ? 'read-ahead' : 'exact'
  return { ok: true, spliceIrs, dataSalvage, dataWrite: hole, rewriteFrom: st.sndUnaD, figure }
}

// ------------------------------------------------------------------ registry

/** A structured MSOCKS event (for logs and tests). */
export type MsocksLogEvent =
  | {
    /** An identifier was issued (MCONNECT succeeded). */
    readonly type: 'issued'
    /** Session id. */
    readonly session: number
    /** The user it is bound to (null: no authentication). */
    readonly user: string | null
  }
  | {
    /** A RECONNECT was refused. */
    readonly type: 'refused'
    /** The new connection's session id. */
    readonly session: number
    /** The user who asked. */
    readonly user: string | null
    /** The reply code sent. */
    readonly rep: MsocksRepCode
    /** Why. */
    readonly reason: string
  }
  | {
    /** A session moved to a new client connection. */
    readonly type: 'moved'
    /** The old session id. */
    readonly from: number
    /** The new session id (now carrying the server connection). */
    readonly to: number
    /** The reply's DATA_SALVAGE. */
    readonly dataSalvage: number
    /** The reply's DATA_WRITE. */
    readonly dataWrite: number
  }

/** Counters of an {@link MsocksService}. */
export interface MsocksStats {
  /** Identifiers issued. */
  issued: number
  /** Identifiers live now. */
  live: number
  /** RECONNECTs carried out. */
  moved: number
  /** RECONNECTs with an identifier nobody holds (forged, guessed or expired). */
  unknownId: number
  /** RECONNECTs with another user's identifier. */
  wrongUser: number
  /** RECONNECTs whose counters did not fit. */
  badCounters: number
  /** RECONNECTs for a session that could not move (closing, or not spliced in time). */
  notMovable: number
  /** RECONNECTs that failed for another reason. */
  failed: number
}

/** What the proxy needs to move a session (implemented by `paths/proxy/resplice.ts`). */
export interface MsocksMover {
  /** Called once the server connection of `s` is open, before the reply: records its stream bases. */
  opened(s: ProxySessionApi): void
  /**
   * Moves `from`'s server connection onto the client connection of `to` (which has just
   * read the RECONNECT request and nothing after it). Calls `reply` exactly once with the
   * reply to write; on success the mover has switched `to` to forwarding right after it.
   */
  move(from: ProxySessionApi, to: ProxySessionApi, req: MsocksReconnect, reply: (r: MsocksReconnectReply, reason: string) => void): void
  /** Forgets a session's bases. */
  forget(s: ProxySessionApi): void
}

/** Options of an {@link MsocksService}. */
export interface MsocksServiceOptions {
  /** Receives structured events. */
  onLog?: (e: MsocksLogEvent) => void
}

interface Entry {
  session: ProxySessionApi
  user: string | null
}

/**
 * Connection identifiers and their owners: give one to `socks5Proxy({ msocks })`, then
 * {@link MsocksService.attach} the forwarder's resplicer (`new Resplicer(forwarder, service)`
 * does that).
 */
export class MsocksService {
  /** Counters. */
  readonly stats: MsocksStats = { issued: 0, live: 0, moved: 0, unknownId: 0, wrongUser: 0, badCounters: 0, notMovable: 0, failed: 0 }
  private readonly byId = new Map<string, Entry>()
  private readonly idOf = new WeakMap<ProxySessionApi, string>()
  private mover: MsocksMover | null = null
  private readonly log: ((e: MsocksLogEvent) => void) | null

  /** Creates an empty registry. */
  constructor(opts: MsocksServiceOptions = {}) {
    this.log = opts.onLog ?? null
  }

  /** Connects the registry to the proxy that moves sessions. */
  attach(mover: MsocksMover): void {
    this.mover = mover
  }

  /** @internal The server connection of an MCONNECT session opened: a new identifier for it. */
  issue(s: ProxySessionApi, user: string | null): Uint8Array {
    const m = this.need()
    m.opened(s)
    const id = randomBytes(MSOCKS_ID_LENGTH)
    const key = id.toString('hex')
    this.byId.set(key, { session: s, user })
    this.idOf.set(s, key)
    this.stats.issued++
    this.stats.live++
    this.log?.({ type: 'issued', session: s.id, user })
    return new Uint8Array(id)
  }

  /** @internal A session closed: its identifier dies with it (unless it moved). */
  closed(s: ProxySessionApi): void {
    const key = this.idOf.get(s)
    if (key === undefined) return
    this.idOf.delete(s)
    const e = this.byId.get(key)
    if (e !== undefined && e.session === s) {
      this.byId.delete(key)
      this.stats.live--
    }
    this.mover?.forget(s)
  }

  /** @internal A RECONNECT on session `to` by `user`: `reply` is called once with what to send. */
  reconnect(to: ProxySessionApi, user: string | null, req: MsocksReconnect, reply: (r: Uint8Array, ok: boolean) => void): void {
    const key = Buffer.from(req.id).toString('hex')
    const e = this.byId.get(key)
    const refuse = (rep: MsocksRepCode, reason: string): void => {
      this.log?.({ type: 'refused', session: to.id, user, rep, reason })
      reply(buildReconnectReply(rep), false)
    }
    if (e === undefined || e.session.state === 'closed') {
      this.stats.unknownId++
      return refuse(MsocksRep.UnknownId, 'unknown connection identifier')
    }
    if (e.user !== user) {
      // Same answer as an unknown identifier: a guess must not learn that it hit one.
      this.stats.wrongUser++
      return refuse(MsocksRep.UnknownId, `identifier of session ${e.session.id} belongs to another user`)
    }
    const from = e.session
    this.need().move(from, to, req, (r, reason) => {
      if (r.rep !== MsocksRep.Succeeded) {
        if (r.rep === MsocksRep.BadCounters) this.stats.badCounters++
        else if (r.rep === MsocksRep.NotMovable) this.stats.notMovable++
        else this.stats.failed++
        return refuse(r.rep as MsocksRepCode, reason)
      }
      // The identifier now names the new connection's session.
      if (this.byId.get(key)?.session === from) {
        this.byId.set(key, { session: to, user })
        this.idOf.delete(from)
        this.idOf.set(to, key)
      }
      this.stats.moved++
      this.log?.({ type: 'moved', from: from.id, to: to.id, dataSalvage: r.dataSalvage, dataWrite: r.dataWrite })
      reply(buildReconnectReply(r.rep, r.dataSalvage, r.dataWrite), true)
    })
  }

  private need(): MsocksMover {
    if (this.mover === null) throw new Error('msocks: no resplicer attached; create `new Resplicer(forwarder, service)` after the forwarder')
    return this.mover
  }
}
