/**
 * SOCKS5: the SOCKS Protocol Version 5 (RFC 1928) with username/password
 * authentication (RFC 1929), CONNECT and (when enabled) BIND, spliced after the reply
 * that completes the server connection.
 *
 * Read first: RFC 1928 §3 (method negotiation), §4 (requests), §5 (addressing),
 * §6 (replies); RFC 1929 §2 (username/password sub-negotiation).
 *
 * ```
 *  client                         proxy                                server
 *  VER NMETHODS METHODS ───────▶  'greeting'   choose 00 (no auth) or 02 (user/pass); else FF + close
 *                       ◀───────  VER METHOD
 *  01 ULEN UNAME PLEN PASSWD ──▶  'auth'       (method 02 only) 01 00 ok / 01 01 + close
 *  VER CMD RSV ATYP ADDR PORT ─▶  'request'    CMD, ATYP, resolve, rules ─▶ connect ──────────▶
 *  (early data, kept)  ────────▶  'connecting'                                  ◀── open / error
 *                       ◀───────  VER REP RSV ATYP BND.ADDR BND.PORT  'done': splice (or relay)
 * ```
 *
 * Policy: no open relay. A request is allowed only by a matching `allow` rule (first match
 * wins); without one it is refused with REP 02 "connection not allowed by ruleset".
 * Choices where the RFC leaves room:
 * - Domain names (ATYP 03) need a `resolve` option; without one they get REP 08 "address
 *   type not supported" (this proxy does not support that type); a name `resolve` cannot
 *   map gets REP 04 "host unreachable". IPv6 (ATYP 04) gets REP 08.
 * - UDP ASSOCIATE gets REP 07 "command not supported"; so does BIND unless the `bind`
 *   option is set (a BIND opens a port on the proxy: off unless asked for).
 * - BIND (RFC 1928 §4, §6): DST.ADDR/DST.PORT go through the rules like a CONNECT's (port
 *   0 allowed: the client rarely knows the server's port). The proxy listens on a fresh
 *   port of its address towards DST.ADDR (`s.acceptFrom`) and sends the first reply with
 *   that BND.ADDR/BND.PORT; only DST.ADDR may connect (any port; others get a RST); when
 *   it did, the second reply carries its address and port and the session splices. No
 *   connection within `bindTimeoutMs`: a second reply REP 04 and close.
 * ```
 *  VER 02 RSV ATYP DST.ADDR DST.PORT ─▶  'request'  rules, acceptFrom(DST.ADDR) ─ listen
 *                       ◀───────  VER 00 RSV 01 BND.ADDR BND.PORT   (where the server connects)
 *                       ◀───────  VER 00 RSV 01 SRV.ADDR SRV.PORT  ◀── the server connects in: splice
 * ```
 * - With the `msocks` option, MSOCKS's MCONNECT (CMD X'80': a CONNECT whose reply carries
 *   a connection identifier) and RECONNECT (X'81') are accepted; see `./msocks.ts`. With
 *   `msocks` and `bind`, MBIND (X'82'): a BIND whose second reply carries an identifier.
 * - The RSV octet of a request is not checked.
 * - A greeting or sub-negotiation with a wrong version, or a request with a wrong version,
 *   closes the connection without a reply: the peer does not speak SOCKS5.
 * - Connect failures: 'refused' → REP 05, 'timeout' and 'unreachable' → REP 04, anything
 *   else → REP 01; then close (RFC 1928 §6: terminate shortly after a failure reply).
 * - Bytes the client sends after its request, before the reply, are kept (up to
 *   {@link SOCKS5_MAX_EARLY_DATA}) and written to the server before splicing.
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { formatIPv4, parseIPv4 } from '../../../core/bytes.js'
import { ConfigError } from '../../../core/errors.js'
import type { BoundAddress, ProxyHandler, ProxySessionApi, SpliceMode, SpliceOptions } from '../session.js'
import { MSOCKS_CMD_BIND, MSOCKS_CMD_CONNECT, MSOCKS_CMD_RECONNECT, MsocksRep, buildReconnectReply, parseReconnect, type MsocksService } from './msocks.js'

// ------------------------------------------------------------------ protocol constants

/** RFC 1928 §3: the protocol version octet. */
export const SOCKS5_VERSION = 5
/** RFC 1929 §2: the version octet of the username/password sub-negotiation. */
export const SOCKS5_USERPASS_VERSION = 1

/** RFC 1928 §3: authentication methods. */
export const Socks5Method = {
  /** X'00' NO AUTHENTICATION REQUIRED. */
  NoAuth: 0x00,
  /** X'02' USERNAME/PASSWORD (RFC 1929). */
  UserPass: 0x02,
  /** X'FF' NO ACCEPTABLE METHODS. */
  NoAcceptable: 0xff,
} as const

/** RFC 1928 §4: request commands. */
export const Socks5Cmd = {
  /** X'01' CONNECT. */
  Connect: 1,
  /** X'02' BIND. */
  Bind: 2,
  /** X'03' UDP ASSOCIATE. */
  UdpAssociate: 3,
} as const

/** RFC 1928 §4, §5: address types. */
export const Socks5Atyp = {
  /** X'01' IP V4 address (4 octets). */
  IPv4: 1,
  /** X'03' DOMAINNAME (a length octet, then the name). */
  Domain: 3,
  /** X'04' IP V6 address (16 octets). */
  IPv6: 4,
} as const

/** RFC 1928 §6: reply codes. */
export const Socks5Rep = {
  /** X'00' succeeded. */
  Succeeded: 0x00,
  /** X'01' general SOCKS server failure. */
  GeneralFailure: 0x01,
  /** X'02' connection not allowed by ruleset. */
  NotAllowed: 0x02,
  /** X'03' Network unreachable. */
  NetworkUnreachable: 0x03,
  /** X'04' Host unreachable. */
  HostUnreachable: 0x04,
  /** X'05' Connection refused. */
  ConnectionRefused: 0x05,
  /** X'06' TTL expired. */
  TtlExpired: 0x06,
  /** X'07' Command not supported. */
  CommandNotSupported: 0x07,
  /** X'08' Address type not supported. */
  AddressTypeNotSupported: 0x08,
} as const

/** A reply code (see {@link Socks5Rep}). */
export type Socks5ReplyCode = (typeof Socks5Rep)[keyof typeof Socks5Rep]

/** Length of a reply with an IPv4 BND.ADDR: VER REP RSV ATYP + 4 + 2. */
export const SOCKS5_REPLY_LENGTH = 10

/** Default of {@link Socks5Options.bindTimeoutMs}: how long a BIND waits for the server to connect. */
export const SOCKS5_BIND_TIMEOUT_MS = 30_000

/** Most early data (sent after the request, before the reply) kept per session; more resets the session. */
export const SOCKS5_MAX_EARLY_DATA = 65536

// ------------------------------------------------------------------ pure parsers and builders

/**
 * Result of an incremental parser: not enough bytes yet, a value and how many bytes it
 * took, or an error (with the reply to send first, if the protocol has one for it).
 */
export type Socks5Parse<T> =
  | {
    /** The message is not complete yet. */
    readonly kind: 'need-more'
  }
  | {
    /** A whole message. */
    readonly kind: 'ok'
    /** What it says. */
    readonly value: T
    /** Its length in bytes (what follows belongs to the next message). */
    readonly length: number
  }
  | {
    /** Not a valid message. */
    readonly kind: 'error'
    /** Why, for logs. */
    readonly reason: string
    /** The reply to send before closing, if the protocol has one for this case. */
    readonly reply?: Socks5ReplyCode
  }

/** A parsed greeting (RFC 1928 §3). */
export interface Socks5Greeting {
  /** The methods the client offers, in its order. */
  methods: number[]
}

/** A parsed username/password request (RFC 1929 §2). */
export interface Socks5Credentials {
  /** UNAME, decoded as UTF-8. */
  user: string
  /** PASSWD, decoded as UTF-8. */
  password: string
}

/** A destination address (RFC 1928 §5). */
export type Socks5Address =
  | {
    /** ATYP X'01'. */
    readonly type: 'ipv4'
    /** The address, u32. */
    readonly ip: number
  }
  | {
    /** ATYP X'03'. */
    readonly type: 'domain'
    /** The name, one char per octet (RFC 1928 gives no encoding). */
    readonly name: string
  }
  | {
    /** ATYP X'04'. */
    readonly type: 'ipv6'
    /** The 16 address octets. */
    readonly bytes: Uint8Array
  }

/** A parsed request (RFC 1928 §4). */
export interface Socks5Request {
  /** CMD (see {@link Socks5Cmd}). */
  cmd: number
  /** DST.ADDR. */
  addr: Socks5Address
  /** DST.PORT. */
  port: number
}

const NEED_MORE = { kind: 'need-more' } as const

/**
 * RFC 1928 §3: `VER NMETHODS METHODS`. A greeting with no methods parses (and then
 * gets X'FF': nothing acceptable).
 */
export function parseGreeting(b: Uint8Array): Socks5Parse<Socks5Greeting> {
  if (b.length < 1) return NEED_MORE
  if (b[0] !== SOCKS5_VERSION) return { kind: 'error', reason: `greeting version ${b[0]}, expected 5` }
  if (b.length < 2) return NEED_MORE
  const n = b[1]!
  if (b.length < 2 + n) return NEED_MORE
  return { kind: 'ok', value: { methods: Array.from(b.subarray(2, 2 + n)) }, length: 2 + n }
}

/** RFC 1929 §2: `VER ULEN UNAME PLEN PASSWD`, VER = X'01'. */
export function parseUserPass(b: Uint8Array): Socks5Parse<Socks5Credentials> {
  if (b.length < 1) return NEED_MORE
  if (b[0] !== SOCKS5_USERPASS_VERSION) return { kind: 'error', reason: `username/password version ${b[0]}, expected 1` }
  if (b.length < 2) return NEED_MORE
  const ulen = b[1]!
  if (b.length < 3 + ulen) return NEED_MORE
  const plen = b[2 + ulen]!
  const end = 3 + ulen + plen
  if (b.length < end) return NEED_MORE
  const user = utf8.decode(b.subarray(2, 2 + ulen))
  const password = utf8.decode(b.subarray(3 + ulen, end))
  return { kind: 'ok', value: { user, password }, length: end }
}

/**
 * RFC 1928 §4: `VER CMD RSV ATYP DST.ADDR DST.PORT`. An unknown ATYP is an error with
 * REP X'08' (its length is unknown, so nothing after it can be read).
 */
export function parseRequest(b: Uint8Array): Socks5Parse<Socks5Request> {
  if (b.length < 1) return NEED_MORE
  if (b[0] !== SOCKS5_VERSION) return { kind: 'error', reason: `request version ${b[0]}, expected 5` }
  if (b.length < 4) return NEED_MORE
  const cmd = b[1]!
  const atyp = b[3]!
  let addr: Socks5Address
  let at: number
  // RFC 1928 §5: the address field's length depends on ATYP.
  switch (atyp) {
    case Socks5Atyp.IPv4:
      if (b.length < 4 + 4 + 2) return NEED_MORE
      addr = { type: 'ipv4', ip: ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0 }
      at = 8
      break
    case Socks5Atyp.Domain: {
      if (b.length < 5) return NEED_MORE
      const n = b[4]!
      if (b.length < 5 + n + 2) return NEED_MORE
      if (n === 0) return { kind: 'error', reason: 'empty domain name', reply: Socks5Rep.HostUnreachable }
      addr = { type: 'domain', name: latin1(b.subarray(5, 5 + n)) }
      at = 5 + n
      break
    }
    case Socks5Atyp.IPv6:
      if (b.length < 4 + 16 + 2) return NEED_MORE
      addr = { type: 'ipv6', bytes: b.slice(4, 20) }
      at = 20
      break
    default:
      return { kind: 'error', reason: `unknown address type ${atyp}`, reply: Socks5Rep.AddressTypeNotSupported }
  }
  const port = (b[at]! << 8) | b[at + 1]!
  return { kind: 'ok', value: { cmd, addr, port }, length: at + 2 }
}

/** RFC 1928 §3: the method selection message `VER METHOD`. */
export function buildMethodReply(method: number): Uint8Array {
  return Uint8Array.of(SOCKS5_VERSION, method)
}

/** RFC 1929 §2: the sub-negotiation reply `VER STATUS` (0 = success). */
export function buildAuthReply(status: number): Uint8Array {
  return Uint8Array.of(SOCKS5_USERPASS_VERSION, status)
}

/**
 * RFC 1928 §6: `VER REP RSV ATYP BND.ADDR BND.PORT` with an IPv4 BND.ADDR
 * ({@link SOCKS5_REPLY_LENGTH} bytes). Failure replies carry 0.0.0.0:0.
 */
export function buildReply(rep: number, bindIp = 0, bindPort = 0): Uint8Array {
  const r = new Uint8Array(SOCKS5_REPLY_LENGTH)
  r[0] = SOCKS5_VERSION
  r[1] = rep
  r[2] = 0
  r[3] = Socks5Atyp.IPv4
  r[4] = bindIp >>> 24
  r[5] = (bindIp >>> 16) & 0xff
  r[6] = (bindIp >>> 8) & 0xff
  r[7] = bindIp & 0xff
  r[8] = (bindPort >>> 8) & 0xff
  r[9] = bindPort & 0xff
  return r
}

/** RFC 1928 §3: a client's greeting (for clients and tests). */
export function buildGreeting(methods: readonly number[]): Uint8Array {
  return Uint8Array.of(SOCKS5_VERSION, methods.length, ...methods)
}

/** RFC 1929 §2: a client's username/password request (for clients and tests). Both at most 255 UTF-8 bytes. */
export function buildUserPass(user: string, password: string): Uint8Array {
  const u = utf8e.encode(user)
  const p = utf8e.encode(password)
  if (u.length > 255 || p.length > 255) throw new RangeError('buildUserPass: username and password are at most 255 bytes each')
  return Uint8Array.of(SOCKS5_USERPASS_VERSION, u.length, ...u, p.length, ...p)
}

/** RFC 1928 §4: a client's request (for clients and tests). */
export function buildRequest(cmd: number, addr: Socks5Address, port: number): Uint8Array {
  let a: number[]
  switch (addr.type) {
    case 'ipv4':
      a = [Socks5Atyp.IPv4, addr.ip >>> 24, (addr.ip >>> 16) & 0xff, (addr.ip >>> 8) & 0xff, addr.ip & 0xff]
      break
    case 'domain': {
      const n = Array.from(addr.name, c => c.charCodeAt(0) & 0xff)
      if (n.length > 255) throw new RangeError('buildRequest: a domain name is at most 255 bytes')
      a = [Socks5Atyp.Domain, n.length, ...n]
      break
    }
    case 'ipv6':
      a = [Socks5Atyp.IPv6, ...addr.bytes]
      break
    default: {
      const never: never = addr
      throw new TypeError(`buildRequest: unknown address ${String(never)}`)
    }
  }
  return Uint8Array.of(SOCKS5_VERSION, cmd, 0, ...a, (port >>> 8) & 0xff, port & 0xff)
}

/** Text form of an address for logs: `10.0.1.2`, `example.com`, `[2001:db8::1]` (uncompressed). */
export function formatSocks5Address(a: Socks5Address): string {
  switch (a.type) {
    case 'ipv4':
      return formatIPv4(a.ip)
    case 'domain':
      return a.name
    case 'ipv6': {
      const groups: string[] = []
      for (let i = 0; i < 16; i += 2) groups.push(((a.bytes[i]! << 8) | a.bytes[i + 1]!).toString(16))
      return `[${groups.join(':')}]`
    }
    default: {
      const never: never = a
      return String(never)
    }
  }
}

// ------------------------------------------------------------------ rules

/** One allow/deny rule, matched on the (resolved) destination, its port and the user. */
export interface Socks5Rule {
  /** What a match does. */
  action: 'allow' | 'deny'
  /** Destination network, `10.0.1.0/24` or one address `10.0.1.7` (default: any). */
  dst?: string
  /** Destination port or inclusive range `[lo, hi]` (default: any). */
  ports?: number | readonly [number, number]
  /** Authenticated user (default: anyone, authenticated or not). */
  user?: string
}

/** What the rules said about one request. */
export interface Socks5Verdict {
  /** True only for a matching `allow` rule. */
  allowed: boolean
  /** Index of the matching rule, or null (default deny). */
  rule: number | null
  /** Why, for logs: `rule 2 (deny 10.0.0.0/8)` or `no rule matched (default deny)`. */
  reason: string
}

/** A compiled rule set: `(ip, port, user) => verdict`, first match wins, default deny. */
export type Socks5RuleMatcher = (ip: number, port: number, user: string | null) => Socks5Verdict

/** Compiles rules (throws a ConfigError naming the bad rule). No rule matching means deny. */
export function compileRules(rules: readonly Socks5Rule[]): Socks5RuleMatcher {
  const compiled = rules.map((r, i) => {
    const where = `socks5Proxy: rules[${i}]`
    if (r.action !== 'allow' && r.action !== 'deny') throw new ConfigError(`${where}: action must be 'allow' or 'deny', got ${String(r.action)}`)
    const net = r.dst === undefined ? { base: 0, mask: 0 } : parseCidr(r.dst, where)
    const [lo, hi] = r.ports === undefined ? [0, 65535] : typeof r.ports === 'number' ? [r.ports, r.ports] : r.ports
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 0 && hi <= 65535 && lo <= hi)) {
      throw new ConfigError(`${where}: ports must be a port or a range [lo, hi] within 0..65535, got ${JSON.stringify(r.ports)}`)
    }
    const text = [r.action, r.dst ?? 'any', r.ports === undefined ? '' : `ports ${lo}-${hi}`, r.user === undefined ? '' : `user ${r.user}`]
      .filter(x => x !== '').join(' ')
    return { allow: r.action === 'allow', ...net, lo, hi, user: r.user ?? null, text }
  })
  return (ip, port, user) => {
    for (let i = 0; i < compiled.length; i++) {
      const c = compiled[i]!
      if (((ip & c.mask) >>> 0) !== c.base || port < c.lo || port > c.hi) continue
      if (c.user !== null && c.user !== user) continue
      return { allowed: c.allow, rule: i, reason: `rule ${i} (${c.text})` }
    }
    return { allowed: false, rule: null, reason: 'no rule matched (default deny)' }
  }
}

/** `a.b.c.d/n` or `a.b.c.d` as base and mask; host bits must be zero. */
function parseCidr(text: string, where: string): { base: number; mask: number } {
  const slash = text.indexOf('/')
  const bits = slash < 0 ? 32 : Number(text.slice(slash + 1))
  if (slash >= 0 && !/^\d{1,2}$/.test(text.slice(slash + 1))) throw new ConfigError(`${where}: bad prefix length in '${text}'`)
  if (!(bits >= 0 && bits <= 32)) throw new ConfigError(`${where}: prefix length in '${text}' must be 0..32`)
  let ip: number
  try {
    ip = parseIPv4(slash < 0 ? text : text.slice(0, slash))
  } catch (err) {
    throw new ConfigError(`${where}: ${(err as Error).message}`)
  }
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
  if (((ip & mask) >>> 0) !== ip) throw new ConfigError(`${where}: '${text}' has host bits set; did you mean ${formatIPv4((ip & mask) >>> 0)}/${bits}?`)
  return { base: ip, mask }
}

// ------------------------------------------------------------------ the handler

/** A structured event of a {@link socks5Proxy} session (for logs and tests). */
export type Socks5LogEvent =
  | {
    /** A method was chosen (X'FF': none acceptable, the session closes). */
    readonly type: 'method'
    /** Session id. */
    readonly session: number
    /** The methods the client offered. */
    readonly offered: readonly number[]
    /** The method chosen. */
    readonly method: number
  }
  | {
    /** Username/password checked. */
    readonly type: 'auth'
    /** Session id. */
    readonly session: number
    /** The username given. */
    readonly user: string
    /** Whether it was accepted. */
    readonly ok: boolean
  }
  | {
    /** A request was allowed (connecting) or refused. */
    readonly type: 'request'
    /** Session id. */
    readonly session: number
    /** CMD. */
    readonly cmd: number
    /** The destination as given (address or name). */
    readonly dst: string
    /** The destination address, once known (resolved). */
    readonly ip: number | null
    /** DST.PORT. */
    readonly port: number
    /** The authenticated user, if any. */
    readonly user: string | null
    /** Whether the request goes ahead. */
    readonly allowed: boolean
    /** The reply code it got or will get on success. */
    readonly reply: Socks5ReplyCode
    /** Which rule decided, or why it was refused. */
    readonly reason: string
  }
  | {
    /** A BIND listens: the first reply went out with this address. */
    readonly type: 'bound'
    /** Session id. */
    readonly session: number
    /** BND.ADDR of the first reply (u32). */
    readonly ip: number
    /** BND.PORT of the first reply. */
    readonly port: number
    /** The only address that may connect (DST.ADDR). */
    readonly expect: number
  }
  | {
    /** The server connection is open; the success reply goes out. */
    readonly type: 'connected'
    /** Session id. */
    readonly session: number
    /** The destination as given. */
    readonly dst: string
    /** DST.PORT. */
    readonly port: number
    /** Bytes the client sent before the reply, now written to the server. */
    readonly earlyBytes: number
  }
  | {
    /** The server connection failed; a failure reply goes out. */
    readonly type: 'connect-failed'
    /** Session id. */
    readonly session: number
    /** The destination as given. */
    readonly dst: string
    /** DST.PORT. */
    readonly port: number
    /** The session's reason ('refused', 'timeout', ...). */
    readonly why: string
    /** The reply code sent. */
    readonly reply: Socks5ReplyCode
  }
  | {
    /** The client broke the protocol; the session closes (or resets). */
    readonly type: 'protocol-error'
    /** Session id. */
    readonly session: number
    /** Where in the protocol. */
    readonly phase: Socks5Phase
    /** What was wrong. */
    readonly reason: string
  }

/** Options of {@link socks5Proxy}. */
export interface Socks5Options {
  /** Username → password. When given, method X'02' is required; otherwise X'00' (no authentication). */
  users?: Readonly<Record<string, string>>
  /** Allow/deny rules, first match wins; no match denies (REP X'02'). `[]` denies everything. */
  rules: readonly Socks5Rule[]
  /** Maps a domain name (ATYP X'03') to an IPv4 address (u32), or null if it has none. */
  resolve?: (name: string) => number | null
  /** Splice after the success reply (default true); false relays through both TCPs. */
  splice?: boolean
  /** The final stage of the splice (default: the forwarder's). */
  mode?: SpliceMode
  /** Receives structured events. */
  onLog?: (event: Socks5LogEvent) => void
  /**
   * MSOCKS mobility (see `./msocks.ts`): accept MCONNECT (CMD X'80', a CONNECT whose
   * reply carries a connection identifier) and RECONNECT (CMD X'81'). Without it both
   * get REP X'07' like any unknown command.
   */
  msocks?: MsocksService
  /** Accept BIND (and, with `msocks`, MBIND) [false: REP X'07']. */
  bind?: boolean
  /** How long a BIND waits for the server to connect [{@link SOCKS5_BIND_TIMEOUT_MS}]. */
  bindTimeoutMs?: number
}

/** Where a session is in the protocol. */
export type Socks5Phase = 'greeting' | 'auth' | 'request' | 'connecting' | 'reconnecting' | 'done' | 'closed'

/** Per-session state, in `s.data.socks5`. */
interface Socks5State {
  phase: Socks5Phase
  /** Unparsed bytes of the current message. */
  buf: Uint8Array
  /** The authenticated user, if any. */
  user: string | null
  /** Bytes received after the request, before the reply (RFC 1928 does not forbid them). */
  early: Uint8Array[]
  earlyBytes: number
  /** Destination, for logs. */
  dst: string
  port: number
  /** MCONNECT: the reply carries a connection identifier. */
  mobile: boolean
  /** BIND: the server connects in; the second reply carries its address. */
  bind: boolean
}

const KEY = 'socks5'
const utf8 = new TextDecoder('utf-8')
const utf8e = new TextEncoder()
const EMPTY = new Uint8Array(0)

/** A SOCKS5 proxy handler (see the module comment). Throws a ConfigError on bad options. */
export function socks5Proxy(opts: Socks5Options): ProxyHandler {
  const users = opts.users === undefined ? null : new Map(Object.entries(opts.users).map(([u, p]) => [u, digest(p)]))
  const check = compileRules(opts.rules)
  const resolve = opts.resolve ?? null
  const doSplice = opts.splice ?? true
  const base: SpliceOptions = opts.mode === undefined ? {} : { mode: opts.mode }
  const log = opts.onLog ?? null
  const msocks = opts.msocks ?? null
  const bindOn = opts.bind ?? false
  const bindTimeoutMs = opts.bindTimeoutMs ?? SOCKS5_BIND_TIMEOUT_MS
  if (!(Number.isFinite(bindTimeoutMs) && bindTimeoutMs > 0)) throw new ConfigError(`socks5Proxy: bindTimeoutMs must be a number > 0 (ms), got ${String(opts.bindTimeoutMs)}`)
  if (msocks !== null && opts.mode === 'ipfwd-shared') {
    throw new ConfigError("socks5Proxy: mode 'ipfwd-shared' cannot move a spliced session, and MSOCKS RECONNECT does; use mode 'fwd' or 'ipfwd' with msocks")
  }

  const state = (s: ProxySessionApi): Socks5State => {
    let st = s.data[KEY] as Socks5State | undefined
    if (st === undefined) {
      st = { phase: 'greeting', buf: EMPTY, user: null, early: [], earlyBytes: 0, dst: '', port: 0, mobile: false, bind: false }
      s.data[KEY] = st
    }
    return st
  }

  /** Ends the session after `reply` (if any): RFC 1928 §6, RFC 1929 §2 both close on failure. */
  const finish = (s: ProxySessionApi, st: Socks5State, reply: Uint8Array | null): void => {
    st.phase = 'closed'
    st.buf = EMPTY
    st.early = []
    if (reply !== null) s.writeToClient(reply)
    s.close()
  }

  const protocolError = (s: ProxySessionApi, st: Socks5State, reason: string, reply: Uint8Array | null): void => {
    log?.({ type: 'protocol-error', session: s.id, phase: st.phase, reason })
    finish(s, st, reply)
  }

  /** RFC 1928 §3: pick the method our configuration requires, if offered. */
  const chooseMethod = (offered: readonly number[]): number => {
    const want = users === null ? Socks5Method.NoAuth : Socks5Method.UserPass
    return offered.includes(want) ? want : Socks5Method.NoAcceptable
  }

  /** Refuses a request with `rep` and closes; returns false. */
  const refuse = (s: ProxySessionApi, st: Socks5State, req: Socks5Request, ip: number | null, rep: Socks5ReplyCode, reason: string): false => {
    log?.({ type: 'request', session: s.id, cmd: req.cmd, dst: st.dst, ip, port: req.port, user: st.user, allowed: false, reply: rep, reason })
    finish(s, st, buildReply(rep))
    return false
  }

  /** RFC 1928 §4: act on a parsed request. True when connecting (else refused and closed). */
  const request = (s: ProxySessionApi, st: Socks5State, req: Socks5Request): boolean => {
    st.dst = formatSocks5Address(req.addr)
    st.port = req.port
    switch (req.cmd) {
      case Socks5Cmd.Connect:
        break
      case MSOCKS_CMD_CONNECT:
        if (msocks === null) return refuse(s, st, req, null, Socks5Rep.CommandNotSupported, `command ${req.cmd} (MCONNECT) needs msocks`)
        st.mobile = true
        break
      case Socks5Cmd.Bind:
        if (!bindOn) return refuse(s, st, req, null, Socks5Rep.CommandNotSupported, 'BIND is off (socks5Proxy({ bind: true }) enables it)')
        st.bind = true
        break
      case MSOCKS_CMD_BIND:
        if (msocks === null || !bindOn) return refuse(s, st, req, null, Socks5Rep.CommandNotSupported, `command ${req.cmd} (MBIND) needs msocks and bind`)
        st.bind = true
        st.mobile = true
        break
      // (RECONNECT is parsed before parseRequest: its body is not an address.)
      case Socks5Cmd.UdpAssociate:
      default:
        return refuse(s, st, req, null, Socks5Rep.CommandNotSupported, `command ${req.cmd} not supported`)
    }
    let ip: number
    switch (req.addr.type) {
      case 'ipv4':
        ip = req.addr.ip
        break
      case 'domain': {
        if (resolve === null) return refuse(s, st, req, null, Socks5Rep.AddressTypeNotSupported, 'domain names need a resolver')
        const r = resolve(req.addr.name)
        if (r === null) return refuse(s, st, req, null, Socks5Rep.HostUnreachable, `cannot resolve ${req.addr.name}`)
        ip = r >>> 0
        break
      }
      case 'ipv6':
        return refuse(s, st, req, null, Socks5Rep.AddressTypeNotSupported, 'IPv6 not supported')
      default: {
        const never: never = req.addr
        throw new TypeError(`socks5: unknown address ${String(never)}`)
      }
    }
    // No open relay: only an allow rule lets a request through.
    const v = check(ip, req.port, st.user)
    if (!v.allowed) return refuse(s, st, req, ip, Socks5Rep.NotAllowed, v.reason)
    if (req.port === 0 && !st.bind) return refuse(s, st, req, ip, Socks5Rep.HostUnreachable, 'port 0')
    if (st.bind) {
      let at: BoundAddress
      try {
        at = s.acceptFrom(ip, bindTimeoutMs)
      } catch (err) {
        return refuse(s, st, req, ip, Socks5Rep.NetworkUnreachable, `cannot listen for ${formatIPv4(ip)}: ${(err as Error).message}`)
      }
      log?.({ type: 'request', session: s.id, cmd: req.cmd, dst: st.dst, ip, port: req.port, user: st.user, allowed: true, reply: Socks5Rep.Succeeded, reason: v.reason })
      log?.({ type: 'bound', session: s.id, ip: at.ip, port: at.port, expect: ip })
      st.phase = 'connecting'
      // RFC 1928 §6: the first BIND reply says where the server is to connect.
      s.writeToClient(buildReply(Socks5Rep.Succeeded, at.ip, at.port))
      return true
    }
    log?.({ type: 'request', session: s.id, cmd: req.cmd, dst: st.dst, ip, port: req.port, user: st.user, allowed: true, reply: Socks5Rep.Succeeded, reason: v.reason })
    st.phase = 'connecting'
    s.connect(ip, req.port)
    return true
  }

  /** Parses as many messages as `st.buf` holds. */
  const advance = (s: ProxySessionApi, st: Socks5State): void => {
    for (;;) {
      switch (st.phase) {
        case 'greeting': {
          const r = parseGreeting(st.buf)
          if (r.kind === 'need-more') return
          if (r.kind === 'error') return protocolError(s, st, r.reason, null)
          st.buf = st.buf.subarray(r.length)
          const method = chooseMethod(r.value.methods)
          log?.({ type: 'method', session: s.id, offered: r.value.methods, method })
          // RFC 1928 §3: X'FF': the client must close; so do we, after telling it.
          if (method === Socks5Method.NoAcceptable) return finish(s, st, buildMethodReply(method))
          s.writeToClient(buildMethodReply(method))
          st.phase = method === Socks5Method.UserPass ? 'auth' : 'request'
          break
        }
        case 'auth': {
          const r = parseUserPass(st.buf)
          if (r.kind === 'need-more') return
          if (r.kind === 'error') return protocolError(s, st, r.reason, null)
          st.buf = st.buf.subarray(r.length)
          const { user, password } = r.value
          const want = users?.get(user)
          const ok = want !== undefined && timingSafeEqual(want, digest(password))
          log?.({ type: 'auth', session: s.id, user, ok })
          // RFC 1929 §2: a failure status means the server MUST close the connection.
          if (!ok) return finish(s, st, buildAuthReply(1))
          st.user = user
          s.writeToClient(buildAuthReply(0))
          st.phase = 'request'
          break
        }
        case 'request': {
          if (msocks !== null && st.buf.length >= 2 && st.buf[1] === MSOCKS_CMD_RECONNECT && st.buf[0] === SOCKS5_VERSION) return reconnect(s, st)
          const r = parseRequest(st.buf)
          if (r.kind === 'need-more') return
          if (r.kind === 'error') return protocolError(s, st, r.reason, r.reply === undefined ? null : buildReply(r.reply))
          const rest = st.buf.subarray(r.length)
          st.buf = EMPTY
          if (request(s, st, r.value)) keepEarly(s, st, rest)
          return
        }
        case 'connecting':
        case 'reconnecting':
        case 'done':
        case 'closed':
          return
        default: {
          const never: never = st.phase
          throw new TypeError(`socks5: unknown phase ${String(never)}`)
        }
      }
    }
  }

  /** MSOCKS RECONNECT: the session's server connection moves onto this client connection. */
  const reconnect = (s: ProxySessionApi, st: Socks5State): void => {
    const r = parseReconnect(st.buf)
    if (r.kind === 'need-more') return
    if (r.kind === 'error') {
      log?.({ type: 'protocol-error', session: s.id, phase: st.phase, reason: r.reason })
      return finish(s, st, buildReconnectReply(MsocksRep.BadCounters))
    }
    // Nothing may follow: the octets after the reply belong to the moved stream.
    if (st.buf.length > r.length) return protocolError(s, st, 'data after a RECONNECT request, before its reply', buildReconnectReply(MsocksRep.GeneralFailure))
    st.buf = EMPTY
    st.phase = 'reconnecting'
    msocks!.reconnect(s, st.user, r.value, (reply, ok) => {
      if (st.phase !== 'reconnecting') return
      if (!ok) return finish(s, st, reply)
      st.phase = 'done'
      s.writeToClient(reply)
    })
  }

  /** Keeps bytes sent before the reply, for the server. */
  const keepEarly = (s: ProxySessionApi, st: Socks5State, data: Uint8Array): void => {
    if (data.length === 0) return
    st.earlyBytes += data.length
    if (st.earlyBytes > SOCKS5_MAX_EARLY_DATA) {
      log?.({ type: 'protocol-error', session: s.id, phase: st.phase, reason: `more than ${SOCKS5_MAX_EARLY_DATA} bytes before the reply` })
      st.phase = 'closed'
      st.early = []
      s.reset()
      return
    }
    st.early.push(data.slice())
  }

  return {
    name: 'socks5',
    onClientData(s, data) {
      const st = state(s)
      switch (st.phase) {
        case 'connecting':
          return keepEarly(s, st, data)
        case 'reconnecting':
          return protocolError(s, st, 'data after a RECONNECT request, before its reply', null)
        case 'done':
          // Only after a failed splice, before relay() took over: pass it on.
          return s.writeToServer(data)
        case 'closed':
          return
        default:
          st.buf = st.buf.length === 0 ? data.slice() : concat(st.buf, data)
          return advance(s, st)
      }
    },
    onServerOpen(s) {
      const st = state(s)
      if (st.phase !== 'connecting') return
      st.phase = 'done'
      for (const c of st.early) s.writeToServer(c)
      log?.({ type: 'connected', session: s.id, dst: st.dst, port: st.port, earlyBytes: st.earlyBytes })
      st.early = []
      // RFC 1928 §6: BND.ADDR/BND.PORT are the address the server sees: our side of
      // connection B; in BIND's second reply, the address of the host that connected.
      let reply = st.bind
        ? buildReply(Socks5Rep.Succeeded, s.server?.remoteIp ?? 0, s.server?.remotePort ?? 0)
        : buildReply(Socks5Rep.Succeeded, s.server?.localIp ?? 0, s.server?.localPort ?? 0)
      if (st.mobile) reply = concat(reply, msocks!.issue(s, st.user))
      if (doSplice) {
        // The reply is the proxy's last word: splice once it went out, and nothing after it
        // comes from the proxy (splice before writing, so the condition counts this write).
        s.splice({ ...base, afterClientBytes: reply.length })
        s.writeToClient(reply)
      } else {
        s.writeToClient(reply)
        s.relay()
      }
    },
    onServerError(s, why) {
      const st = state(s)
      if (st.phase !== 'connecting') return
      const rep = why === 'refused' ? Socks5Rep.ConnectionRefused
        : why === 'timeout' || why === 'unreachable' ? Socks5Rep.HostUnreachable
          : Socks5Rep.GeneralFailure
      log?.({ type: 'connect-failed', session: s.id, dst: st.dst, port: st.port, why, reply: rep })
      finish(s, st, buildReply(rep))
    },
    onClose(s) {
      msocks?.closed(s)
    },
    onSpliceFailed(s) {
      // The reply went out; the session stays in control mode: relay from here.
      s.relay()
    },
  }
}

/** SHA-256 of a password, so comparisons take the same time whatever the lengths. */
function digest(password: string): Buffer {
  return createHash('sha256').update(password, 'utf8').digest()
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const r = new Uint8Array(a.length + b.length)
  r.set(a, 0)
  r.set(b, a.length)
  return r
}

function latin1(b: Uint8Array): string {
  let s = ''
  for (const c of b) s += String.fromCharCode(c)
  return s
}
