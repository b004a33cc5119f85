/**
 * HTTP: an HTTP/1.x server proxy (the Scout paper's "HTTP server proxy"). Each request on
 * a keep-alive client connection is routed by Host and path to a server pool (first
 * matching route, round-robin within its pool); a response body of known length is
 * spliced and unspliced by the forwarder at its last byte, so the proxy reads the next
 * request in control mode.
 *
 * Read first: RFC 9112 (HTTP/1.1) §2.2 message parsing, §3 request line, §3.2 request
 * target and Host, §4 status line, §5 field syntax, §6.3 message body length, §7.1
 * chunked coding, §9.3 persistence; RFC 9110 §7.6.1 Connection, §9.3.6 CONNECT, §15
 * status codes.
 *
 * ```
 *  client ──request head──▶ parse, route ──(first request)──▶ connect(pool server)
 *         ──body bytes────▶ counted (Content-Length) or followed (chunked), written through
 *  server ──1xx──────────▶ written through; the final response follows
 *         ──final head───▶ body length (RFC 9112 §6.3):
 *                            known, persistent, client idle: write head + what came with it,
 *                              splice({ unspliceAfterServerBytes: rest }) ──▶ onUnspliced:
 *                              next request
 *                            known, otherwise (or splice: false): written through, counted
 *                            chunked: splice (or follow it when splice: false)
 *                            until close, 101, not persistent: splice (or relay) to the end
 * ```
 *
 * Choices where the RFCs leave room or the session API sets limits:
 * - One session has one server connection. The first request picks the server; a later
 *   request whose route's pool does not hold that server gets 421 Misdirected Request
 *   (RFC 9110 §15.5.20) and the connection closes, so the client retries on a new one.
 * - No route: 404; a route with an empty pool: 503; server unreachable: 502 (504 on a
 *   timeout); bad response from the server: 502; malformed request: 400; head larger
 *   than {@link HTTP_MAX_HEAD_BYTES}: 431; HTTP/2+ request line: 505. Each error
 *   response carries `Connection: close` and a one-line body, and the session closes.
 *   An error found while earlier pipelined requests still await their responses is
 *   answered after them.
 * - Heads are forwarded unchanged (no Via, no X-Forwarded-For). Hence a message with both
 *   Transfer-Encoding and Content-Length is rejected (400, or 502 for a response):
 *   RFC 9112 §6.3 rule 3 lets a forwarding intermediary only strip Content-Length.
 * - A response is spliced with unsplice only when it is the only request in flight and
 *   the client has sent nothing after it: bytes the client sends while spliced go to the
 *   server unparsed (a pipelined request then is not routed, and a HEAD among them would
 *   desynchronize the response parser). Otherwise the body is written through.
 * - Chunked request bodies are followed (RFC 9112 §7.1) and written through; chunked
 *   responses are spliced without unsplice (their end is not known in advance), or
 *   followed in control mode when `splice` is false.
 * - HTTP/1.0 keep-alive persists only when both the request and the response say
 *   `keep-alive` (RFC 9112 §9.3; heads are forwarded, so both ends agree).
 * - CONNECT (off by default: 501) opens a tunnel to an allowed `host:port`, only as the
 *   first request of a connection (else 421); the default allow-list denies all (403).
 * @module
 */
import { formatIPv4, parseIPv4 } from '../../../core/bytes.js'
import { ConfigError } from '../../../core/errors.js'
import type { ProxyHandler, ProxySessionApi, SpliceOptions } from '../session.js'
import { ipv4Option, portOption } from './options.js'

// ------------------------------------------------------------------ heads

/** Largest request or response head (through its empty line) read before 431 / 502. */
export const HTTP_MAX_HEAD_BYTES = 16384

/** Most bytes held for a server connection that is not open yet; more resets the session. */
export const HTTP_MAX_BUFFERED_BYTES = 1 << 20

/** One header field line: the name in lower case, the value without surrounding whitespace. */
export interface HttpField {
  /** Field name, lower case. */
  readonly name: string
  /** Field value, leading and trailing SP/HTAB removed (RFC 9112 §5.1). */
  readonly value: string
}

/** A parsed request head (RFC 9112 §3). */
export interface RequestHead {
  /** Discriminant. */
  readonly kind: 'request'
  /** Method token, case-sensitive (RFC 9110 §9.1). */
  readonly method: string
  /** Request-target as received. */
  readonly target: string
  /** HTTP/1.minor (a higher minor than 1 is read as 1.1, RFC 9110 §6.2). */
  readonly minor: number
  /** Header fields in order. */
  readonly fields: readonly HttpField[]
  /** Host name, lower case, without port (absolute-form target first, then Host; RFC 9112 §3.2.2), or null. */
  readonly host: string | null
  /** Port of the authority (absolute- or authority-form target, else Host), or null. */
  readonly port: number | null
  /** Path and query of an origin- or absolute-form target, `*` for asterisk-form, `''` for authority-form. */
  readonly path: string
}

/** A parsed response head (RFC 9112 §4). */
export interface ResponseHead {
  /** Discriminant. */
  readonly kind: 'response'
  /** HTTP/1.minor. */
  readonly minor: number
  /** Status code, 100..599. */
  readonly status: number
  /** Reason phrase (may be empty). */
  readonly reason: string
  /** Header fields in order. */
  readonly fields: readonly HttpField[]
}

/** Result of parsing a head: not complete yet, the head and its length, or the status to answer with. */
export type HeadParse<T> =
  | {
    /** The head is not complete yet. */
    readonly kind: 'need-more'
  }
  | {
    /** A whole head. */
    readonly kind: 'ok'
    /** The parsed head. */
    readonly head: T
    /** Its length in bytes, through the empty line (the body, if any, follows). */
    readonly length: number
  }
  | {
    /** Not a valid head. */
    readonly kind: 'error'
    /** The status to answer with (400, 431, 505; 502 for a response). */
    readonly status: number
    /** Why, for logs. */
    readonly reason: string
  }

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const VISIBLE = /^[\x21-\x7e]+$/
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_~!$&'()*+,;=%]*)(:\d{0,5})?$/

/**
 * Index just past the first empty line at or after `from`, or -1: CRLF CRLF, or also a
 * bare LF LF / LF CRLF, so that a head with bare LFs is answered (400) at once instead of
 * waiting for a CRLF CRLF that never comes.
 */
function headEnd(b: Uint8Array, from: number): number {
  for (let i = from; i + 1 < b.length; i++) {
    if (b[i] !== 10) continue
    if (b[i + 1] === 10) return i + 2
    if (b[i + 1] === 13 && i + 2 < b.length && b[i + 2] === 10) return i + 3
  }
  return -1
}

/** Finds the head and splits it into lines (strict CRLF: a bare CR or LF is an error). */
function headLines(b: Uint8Array, start: number, max: number): HeadParse<string[]> {
  const end = headEnd(b, start)
  if (end < 0) return b.length - start >= max ? { kind: 'error', status: 0, reason: `head larger than ${max} bytes` } : { kind: 'need-more' }
  if (end - start > max) return { kind: 'error', status: 0, reason: `head larger than ${max} bytes` }
  let text = ''
  for (let i = start; i < end; i++) text += String.fromCharCode(b[i]!)
  // RFC 9112 §2.2: a bare CR is invalid; we do not take a bare LF as a line end either.
  const lines = text.endsWith('\r\n\r\n') ? text.slice(0, -4).split('\r\n') : null
  if (lines === null || lines.some(l => l.includes('\r') || l.includes('\n'))) return { kind: 'error', status: 1, reason: 'bare CR or LF in the head' }
  return { kind: 'ok', head: lines, length: end }
}

/** RFC 9112 §5: `field-name ":" OWS field-value OWS`, one per line. */
function parseFields(lines: readonly string[]): HttpField[] | string {
  const fields: HttpField[] = []
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!
    // RFC 9112 §5.2: obs-fold in a request is rejected (400); a proxy replaces a response with 502.
    if (l.startsWith(' ') || l.startsWith('\t')) return 'obsolete line folding'
    const colon = l.indexOf(':')
    if (colon <= 0) return `field line without a name: ${JSON.stringify(l.slice(0, 40))}`
    const name = l.slice(0, colon)
    // RFC 9112 §5.1: no whitespace between the field name and the colon (MUST reject with 400).
    if (!TOKEN.test(name)) return `bad field name ${JSON.stringify(name.slice(0, 40))}`
    const value = l.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    // RFC 9110 §5.5: CR, LF and NUL are invalid in a value; we refuse other controls too.
    if (BAD_VALUE.test(value)) return `control character in field ${name}`
    fields.push({ name: name.toLowerCase(), value })
  }
  return fields
}

/** `host[:port]` → lower-case host and port (null if absent or empty). */
function splitAuthority(a: string): { host: string; port: number | null } | null {
  const m = HOST.exec(a)
  if (m === null) return null
  const p = m[2] === undefined || m[2] === ':' ? null : Number(m[2].slice(1))
  if (p !== null && p > 65535) return null
  return { host: m[1]!.toLowerCase(), port: p }
}

/**
 * Parses a request head: optional empty lines (RFC 9112 §2.2), the request-line (§3),
 * header fields (§5), then Host and target rules (§3.2). `length` counts the empty lines
 * skipped and the head's final CRLF CRLF.
 */
export function parseRequestHead(b: Uint8Array, max = HTTP_MAX_HEAD_BYTES): HeadParse<RequestHead> {
  let start = 0
  // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line.
  while (start + 1 < b.length && b[start] === 13 && b[start + 1] === 10) start += 2
  const hl = headLines(b, start, max)
  if (hl.kind === 'need-more') return hl
  if (hl.kind === 'error') return { kind: 'error', status: hl.status === 0 ? 431 : 400, reason: hl.reason }
  const lines = hl.head
  const bad = (reason: string): HeadParse<RequestHead> => ({ kind: 'error', status: 400, reason })
  // RFC 9112 §3: request-line = method SP request-target SP HTTP-version, single spaces.
  const parts = lines[0]!.split(' ')
  if (parts.length !== 3) return bad('malformed request-line')
  const [method, target, version] = parts as [string, string, string]
  if (!TOKEN.test(method)) return bad('bad method')
  if (!VISIBLE.test(target)) return bad('bad request-target')
  const v = /^HTTP\/(\d)\.(\d)$/.exec(version)
  if (v === null) return bad('bad HTTP-version')
  if (v[1] !== '1') return { kind: 'error', status: 505, reason: `HTTP/${v[1]}.${v[2]} not supported` }
  const minor = Number(v[2])
  const fields = parseFields(lines)
  if (typeof fields === 'string') return bad(fields)
  // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, or with more than one, or a bad one.
  const hosts = fields.filter(f => f.name === 'host')
  if (hosts.length > 1) return bad('more than one Host field')
  if (hosts.length === 0 && minor >= 1) return bad('HTTP/1.1 request without Host')
  let auth = hosts.length === 1 ? splitAuthority(hosts[0]!.value) : null
  if (hosts.length === 1 && auth === null) return bad('bad Host field')
  let path: string
  if (target.startsWith('/')) {
    path = target // §3.2.1 origin-form
  } else if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(target)) {
    // §3.2.2 absolute-form: the target's authority wins over Host.
    const rest = target.slice(target.indexOf('//') + 2)
    const cut = rest.search(/[/?#]/)
    const a = splitAuthority(cut < 0 ? rest : rest.slice(0, cut))
    if (a === null || a.host === '') return bad('bad authority in absolute-form target')
    auth = a
    path = cut < 0 ? '/' : rest[cut] === '/' ? rest.slice(cut) : `/${rest.slice(cut)}`
  } else if (method === 'CONNECT') {
    // §3.2.3 authority-form: host:port, for CONNECT only.
    const a = splitAuthority(target)
    if (a === null || a.host === '' || a.port === null) return bad('CONNECT needs host:port')
    auth = a
    path = ''
  } else if (target === '*' && method === 'OPTIONS') {
    path = '*' // §3.2.4 asterisk-form
  } else {
    return bad('bad request-target form')
  }
  if (method === 'CONNECT' && path !== '') return bad('CONNECT needs an authority-form target')
  const host = auth === null || auth.host === '' ? null : auth.host
  const head: RequestHead = { kind: 'request', method, target, minor, fields, host, port: auth?.port ?? null, path }
  return { kind: 'ok', head, length: hl.length }
}

/** Parses a response head: the status-line (RFC 9112 §4) and header fields (§5). Errors carry status 502. */
export function parseResponseHead(b: Uint8Array, max = HTTP_MAX_HEAD_BYTES): HeadParse<ResponseHead> {
  const hl = headLines(b, 0, max)
  if (hl.kind === 'need-more') return hl
  const bad = (reason: string): HeadParse<ResponseHead> => ({ kind: 'error', status: 502, reason })
  if (hl.kind === 'error') return bad(hl.reason)
  // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]; the SP
  // before an empty reason is often missing: accepted.
  const m = /^HTTP\/1\.(\d) (\d{3})(?: (.*))?$/.exec(hl.head[0]!)
  if (m === null) return bad('malformed status-line')
  const status = Number(m[2])
  if (status < 100 || status > 599) return bad(`status ${status} out of range`)
  const fields = parseFields(hl.head)
  if (typeof fields === 'string') return bad(fields)
  return { kind: 'ok', head: { kind: 'response', minor: Number(m[1]), status, reason: m[3] ?? '', fields }, length: hl.length }
}

/** The values of every field named `name` (lower case), in order. */
export function fieldValues(head: RequestHead | ResponseHead, name: string): string[] {
  return head.fields.filter(f => f.name === name).map(f => f.value)
}

/** Comma-separated list elements of every field named `name`, trimmed and lower-cased. */
function listTokens(head: RequestHead | ResponseHead, name: string): string[] {
  return fieldValues(head, name).flatMap(v => v.split(',')).map(t => t.trim().toLowerCase()).filter(t => t !== '')
}

/**
 * Whether one message lets the connection persist (RFC 9112 §9.3): not with
 * `Connection: close`; HTTP/1.1 by default; HTTP/1.0 only with `keep-alive`.
 */
export function isPersistent(head: RequestHead | ResponseHead): boolean {
  const conn = listTokens(head, 'connection')
  if (conn.includes('close')) return false
  return head.minor >= 1 || conn.includes('keep-alive')
}

/** How a message's body is delimited (RFC 9112 §6.3). */
export type BodyLength =
  | {
    /** A body of known length (0: none). */
    readonly kind: 'length'
    /** Its length in bytes. */
    readonly length: number
  }
  | {
    /** Chunked transfer coding (RFC 9112 §7.1): ends with the last chunk. */
    readonly kind: 'chunked'
  }
  | {
    /** The body ends when the server closes (responses only). */
    readonly kind: 'until-close'
  }
  | {
    /** After this head the connection carries another protocol. */
    readonly kind: 'tunnel'
  }
  | {
    /** The framing is faulty: 400 for a request, 502 for a response. */
    readonly kind: 'invalid'
    /** Why, for logs. */
    readonly reason: string
  }

/**
 * RFC 9112 §6.3 message body length, rule by rule, for a request head, or for a response
 * head given its request's method. `tunnel`: the connection carries another protocol
 * after this head (2xx to CONNECT, 101 Switching Protocols).
 */
export function bodyLength(head: RequestHead | ResponseHead, requestMethod = 'GET'): BodyLength {
  if (head.kind === 'response') {
    const st = head.status
    // RFC 9110 §15.2.2: after 101 the connection speaks the protocol switched to.
    if (st === 101) return { kind: 'tunnel' }
    // Rule 2: a 2xx response to CONNECT switches to tunnel mode.
    if (requestMethod === 'CONNECT' && st >= 200 && st < 300) return { kind: 'tunnel' }
    // Rule 1: HEAD responses, 1xx, 204 and 304 end at their head.
    if (requestMethod === 'HEAD' || st < 200 || st === 204 || st === 304) return { kind: 'length', length: 0 }
  }
  const te = fieldValues(head, 'transfer-encoding')
  const cl = fieldValues(head, 'content-length')
  if (te.length > 0) {
    // Rule 3: both present "ought to be handled as an error" (smuggling); we forward heads unchanged.
    if (cl.length > 0) return { kind: 'invalid', reason: 'both Transfer-Encoding and Content-Length' }
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
    if (head.minor === 0) return { kind: 'invalid', reason: 'Transfer-Encoding in an HTTP/1.0 message' }
    const codings = listTokens(head, 'transfer-encoding').map(c => c.split(';')[0]!.trim())
    // Rule 4: chunked last → chunked; else a request is an error, a response runs until close.
    if (codings.at(-1) === 'chunked') {
      if (codings.indexOf('chunked') !== codings.length - 1) return { kind: 'invalid', reason: 'chunked applied more than once' }
      return { kind: 'chunked' }
    }
    if (head.kind === 'request') return { kind: 'invalid', reason: 'request Transfer-Encoding does not end with chunked' }
    return { kind: 'until-close' }
  }
  if (cl.length > 0) {
    // Rules 5 and 6: a list of identical decimal values is that value (RFC 9110 §8.6); else invalid.
    const values = cl.flatMap(v => v.split(',')).map(v => v.trim())
    if (!values.every(v => /^\d{1,15}$/.test(v)) || new Set(values.map(Number)).size !== 1) {
      return { kind: 'invalid', reason: `bad Content-Length ${JSON.stringify(cl.join(', ').slice(0, 40))}` }
    }
    return { kind: 'length', length: Number(values[0]) }
  }
  // Rule 7: a request without either has no body; rule 8: a response runs until close.
  return head.kind === 'request' ? { kind: 'length', length: 0 } : { kind: 'until-close' }
}

// ------------------------------------------------------------------ chunked bodies

type ChunkState = 'size' | 'ext' | 'size-lf' | 'data' | 'data-cr' | 'data-lf' | 'trailer-start' | 'trailer' | 'trailer-lf' | 'end-lf' | 'done' | 'error'

/**
 * Follows a chunked body (RFC 9112 §7.1) to find its end, without decoding it:
 * `chunk-size [chunk-ext] CRLF chunk-data CRLF` ... `0 [chunk-ext] CRLF` trailer
 * lines, CRLF. Bytes may come in any chunking.
 */
export class ChunkedScanner {
  private st: ChunkState = 'size'
  private left = 0
  private digits = 0
  /** Why the framing is broken, or null. */
  error: string | null = null

  /** True once the last chunk and the trailer section ended. */
  get done(): boolean {
    return this.st === 'done'
  }

  /**
   * Scans `b` and returns how many of its bytes belong to the body: all of them unless
   * the body ends (or an error is found) inside `b`. After an error it returns 0.
   */
  scan(b: Uint8Array): number {
    let i = 0
    while (i < b.length) {
      const c = b[i]!
      switch (this.st) {
        case 'size': {
          const d = hexValue(c)
          if (d >= 0) {
            // 13 hex digits stay below 2^53: larger sizes are refused, not rounded.
            if (++this.digits > 13) return this.fail('chunk size too large', i)
            this.left = this.left * 16 + d
          } else if (this.digits === 0) {
            return this.fail('chunk size expected', i)
          } else if (c === 0x3b || c === 0x20 || c === 0x09) {
            this.st = 'ext' // `;` chunk-ext, or BWS before it
          } else if (c === 13) {
            this.st = 'size-lf'
          } else {
            return this.fail('bad chunk size', i)
          }
          break
        }
        case 'ext':
          if (c === 13) this.st = 'size-lf'
          else if (c === 10) return this.fail('bare LF in chunk-ext', i)
          break
        case 'size-lf':
          if (c !== 10) return this.fail('CR without LF after chunk size', i)
          this.st = this.left === 0 ? 'trailer-start' : 'data'
          break
        case 'data': {
          const n = Math.min(this.left, b.length - i)
          this.left -= n
          i += n
          if (this.left === 0) this.st = 'data-cr'
          continue
        }
        case 'data-cr':
          if (c !== 13) return this.fail('chunk data longer than its size', i)
          this.st = 'data-lf'
          break
        case 'data-lf':
          if (c !== 10) return this.fail('CR without LF after chunk data', i)
          this.st = 'size'
          this.digits = 0
          break
        case 'trailer-start':
          if (c === 13) this.st = 'end-lf'
          else if (c === 10) return this.fail('bare LF in trailer section', i)
          else this.st = 'trailer'
          break
        case 'trailer':
          if (c === 13) this.st = 'trailer-lf'
          else if (c === 10) return this.fail('bare LF in trailer section', i)
          break
        case 'trailer-lf':
          if (c !== 10) return this.fail('CR without LF in trailer section', i)
          this.st = 'trailer-start'
          break
        case 'end-lf':
          if (c !== 10) return this.fail('CR without LF at the end of the body', i)
          this.st = 'done'
          return i + 1
        case 'done':
        case 'error':
          return i
        default: {
          const never: never = this.st
          throw new TypeError(`ChunkedScanner: unknown state ${String(never)}`)
        }
      }
      i++
    }
    return i
  }

  private fail(why: string, at: number): number {
    this.st = 'error'
    this.error = why
    return at
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10
  return -1
}

// ------------------------------------------------------------------ responses we make

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  421: 'Misdirected Request',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
}

/** A complete `HTTP/1.1 <status>` response with `Connection: close` and a one-line text body. */
export function buildErrorResponse(status: number): Uint8Array {
  const reason = REASONS[status] ?? 'Error'
  const body = `${status} ${reason}\n`
  return ascii(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`)
}

/** RFC 9110 §9.3.6: the proxy's answer once a CONNECT tunnel is up. */
export const CONNECT_ESTABLISHED: Uint8Array = ascii('HTTP/1.1 200 Connection Established\r\n\r\n')

function ascii(s: string): Uint8Array {
  const b = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff
  return b
}

// ------------------------------------------------------------------ options and routing

/** One upstream server. */
export interface HttpServer {
  /** Dotted IPv4 text or an unsigned 32-bit number. */
  ip: string | number
  /** Port, 1..65535. */
  port: number
}

/** A route: requests matching every given condition go to `servers` (round-robin). */
export interface HttpRoute {
  /** Host name (case-insensitive, port ignored); `*.example.com` matches any subdomain (default: any). */
  host?: string
  /**
   * Path prefix, matched on whole segments: `/api` matches `/api`, `/api/x`, `/api?q`,
   * not `/apiary`; a prefix ending in `/` matches as is (default: any).
   */
  pathPrefix?: string
  /** The pool. An empty pool answers 503. */
  servers: readonly HttpServer[]
}

/** A structured event of an {@link httpProxy} session (for logs and tests). */
export type HttpLogEvent =
  | {
    /** A request was routed and forwarded (or a CONNECT accepted). */
    readonly type: 'request'
    /** Session id. */
    readonly session: number
    /** Its method. */
    readonly method: string
    /** Its host, if any. */
    readonly host: string | null
    /** Its path. */
    readonly path: string
    /** The server, `ip:port`. */
    readonly server: string
    /** True when this request opens the server connection. */
    readonly connecting: boolean
  }
  | {
    /** The proxy answers an error status and closes. */
    readonly type: 'reject'
    /** Session id. */
    readonly session: number
    /** The status sent. */
    readonly status: number
    /** Why. */
    readonly reason: string
  }
  | {
    /** A splice (or, when not splicing, a relay to the end) was requested. */
    readonly type: 'splice'
    /** Session id. */
    readonly session: number
    /** Body bytes after which the forwarder unsplices, or null: to the end. */
    readonly unspliceAfter: number | null
    /** What was spliced. */
    readonly why: string
  }
  | {
    /** The session was reset: the stream could not be followed any more. */
    readonly type: 'abort'
    /** Session id. */
    readonly session: number
    /** Why. */
    readonly reason: string
  }

/** Options of {@link httpProxy}. */
export interface HttpProxyOptions {
  /** Routes, first match wins. */
  routes: readonly HttpRoute[]
  /** The pool for requests no route matches (default: none, 404). */
  default?: readonly HttpServer[]
  /** Splice response bodies (default true); false writes everything through in control mode. */
  splice?: boolean
  /** The final stage of the splice (default: the forwarder's). */
  mode?: 'fwd' | 'ipfwd'
  /** Accept CONNECT requests (default false: 501). */
  allowConnect?: boolean
  /** Which CONNECT destinations are allowed (default: none, 403). */
  connectAllow?: (ip: number, port: number) => boolean
  /** Maps a CONNECT target's host name to an IPv4 address (u32), or null (502). */
  resolve?: (name: string) => number | null
  /** Largest head accepted (default {@link HTTP_MAX_HEAD_BYTES}). */
  maxHeadBytes?: number
  /** Receives structured events. */
  onLog?: (event: HttpLogEvent) => void
}

interface Upstream {
  readonly ip: number
  readonly port: number
}

interface Pool {
  readonly servers: readonly Upstream[]
  next: number
}

interface CompiledRoute {
  /** Exact host, or the suffix `.example.com` of a wildcard. */
  readonly host: string | null
  readonly wildcard: boolean
  readonly prefix: string | null
  readonly pool: Pool
}

function compilePool(servers: readonly HttpServer[], where: string): Pool {
  return { servers: servers.map((x, i) => ({ ip: ipv4Option(x.ip, `${where}[${i}].ip`), port: portOption(x.port, `${where}[${i}].port`) })), next: 0 }
}

function hostMatches(r: CompiledRoute, host: string | null): boolean {
  if (r.host === null) return true
  if (host === null) return false
  return r.wildcard ? host.endsWith(r.host) && host.length > r.host.length : host === r.host
}

function pathMatches(prefix: string | null, path: string): boolean {
  if (prefix === null) return true
  if (!path.startsWith(prefix)) return false
  if (prefix.endsWith('/') || path.length === prefix.length) return true
  const next = path[prefix.length]!
  return next === '/' || next === '?' || next === '#'
}

// ------------------------------------------------------------------ the handler

/** A growable byte buffer: append at the end, consume from the front. */
class ByteBuf {
  private b = new Uint8Array(0)
  private start = 0
  private end = 0

  get length(): number {
    return this.end - this.start
  }

  /** The bytes held; valid until the next append. */
  view(): Uint8Array {
    return this.b.subarray(this.start, this.end)
  }

  append(d: Uint8Array): void {
    const n = this.length
    if (this.end + d.length > this.b.length) {
      if (n + d.length <= this.b.length) {
        this.b.copyWithin(0, this.start, this.end)
      } else {
        const nb = new Uint8Array(Math.max(n + d.length, 2 * this.b.length, 1024))
        nb.set(this.view(), 0)
        this.b = nb
      }
      this.start = 0
      this.end = n
    }
    this.b.set(d, this.end)
    this.end += d.length
  }

  consume(n: number): void {
    this.start += n
    if (this.start >= this.end) this.clear()
  }

  clear(): void {
    this.start = 0
    this.end = 0
  }
}

/** A body being counted or followed in control mode. */
type BodyCursor = { kind: 'length'; left: number } | { kind: 'chunked'; scanner: ChunkedScanner }

/** How many bytes of `b` a body takes, and whether it ended or broke. */
function takeBody(c: BodyCursor, b: Uint8Array): { n: number; done: boolean; error: string | null } {
  if (c.kind === 'length') {
    const n = Math.min(c.left, b.length)
    c.left -= n
    return { n, done: c.left === 0, error: null }
  }
  const n = c.scanner.scan(b)
  return { n, done: c.scanner.done, error: c.scanner.error }
}

/** A request sent (or queued) to the server whose response has not ended yet. */
interface InFlight {
  readonly method: string
  readonly minor: number
  /** The request lets the connection persist. */
  readonly persistent: boolean
}

/**
 * - `requests`: reading requests and responses in control mode
 * - `connect`: CONNECT accepted, waiting for the server
 * - `tunnel`: spliced or relayed to the end
 * - `closed`: we let go (an error answered, or the session closing)
 */
type HttpPhase = 'requests' | 'connect' | 'tunnel' | 'closed'

/** Per-session state, in `s.data.http`. */
interface HttpState {
  phase: HttpPhase
  /** Client bytes not processed yet. */
  readonly req: ByteBuf
  /** Where to resume looking for the end of the request head. */
  reqScan: number
  reqBody: BodyCursor | null
  /** Server bytes not processed yet. */
  readonly res: ByteBuf
  resScan: number
  resBody: BodyCursor | null
  readonly inFlight: InFlight[]
  /** The client will send no more requests (its last one was not persistent). */
  lastRequest: boolean
  /** Close once the current response ended. */
  closeAfter: boolean
  /** An error to answer once the responses in flight ended. */
  deferred: number | null
  server: Upstream | null
  open: boolean
  /** Bytes for a server connection that is not open yet. */
  toServer: Uint8Array[]
  toServerBytes: number
  /** While spliced until the end of a body: bytes left then, and the client counter then. */
  spliced: { left: number; toClientAt: number } | null
}

const KEY = 'http'

/** An HTTP/1.x server proxy handler (see the module comment). Throws a ConfigError on bad options. */
export function httpProxy(opts: HttpProxyOptions): ProxyHandler {
  const routes: CompiledRoute[] = opts.routes.map((r, i) => {
    const where = `httpProxy: routes[${i}]`
    const h = r.host?.toLowerCase() ?? null
    const wildcard = h !== null && h.startsWith('*.')
    if (r.pathPrefix !== undefined && !r.pathPrefix.startsWith('/')) throw new ConfigError(`${where}.pathPrefix must start with '/', got '${r.pathPrefix}'`)
    return { host: wildcard ? h.slice(1) : h, wildcard, prefix: r.pathPrefix ?? null, pool: compilePool(r.servers, `${where}.servers`) }
  })
  const fallback = opts.default === undefined ? null : compilePool(opts.default, 'httpProxy: default')
  const doSplice = opts.splice ?? true
  if ((opts.mode as string | undefined) === 'ipfwd-shared') {
    throw new ConfigError("httpProxy: mode 'ipfwd-shared' cannot unsplice, and HTTP/1.1 keep-alive unsplices after each response to read the next request; use mode 'ipfwd' or 'fwd'")
  }
  const base: SpliceOptions = opts.mode === undefined ? {} : { mode: opts.mode }
  const allowConnect = opts.allowConnect ?? false
  const connectAllow = opts.connectAllow ?? (() => false)
  const resolve = opts.resolve ?? null
  const maxHead = opts.maxHeadBytes ?? HTTP_MAX_HEAD_BYTES
  if (!(Number.isInteger(maxHead) && maxHead >= 64)) throw new ConfigError(`httpProxy: maxHeadBytes must be an integer >= 64, got ${maxHead}`)
  const log = opts.onLog ?? null

  const state = (s: ProxySessionApi): HttpState => {
    let st = s.data[KEY] as HttpState | undefined
    if (st === undefined) {
      st = {
        phase: 'requests', req: new ByteBuf(), reqScan: 0, reqBody: null, res: new ByteBuf(), resScan: 0, resBody: null,
        inFlight: [], lastRequest: false, closeAfter: false, deferred: null, server: null, open: false,
        toServer: [], toServerBytes: 0, spliced: null,
      }
      s.data[KEY] = st
    }
    return st
  }

  const route = (head: RequestHead): Pool | null => {
    for (const r of routes) if (hostMatches(r, head.host) && pathMatches(r.prefix, head.path)) return r.pool
    return fallback
  }

  /** Lets go of a session that cannot go on (RST to both): the peers cannot tell where a message ends. */
  const abort = (s: ProxySessionApi, st: HttpState, reason: string): void => {
    log?.({ type: 'abort', session: s.id, reason })
    st.phase = 'closed'
    s.reset()
  }

  /** Answers `status` and closes. */
  const answer = (s: ProxySessionApi, st: HttpState, status: number): void => {
    st.phase = 'closed'
    st.req.clear()
    st.res.clear()
    s.writeToClient(buildErrorResponse(status))
    s.close()
  }

  /** Refuses the request being read: answered now, or after the responses in flight. */
  const reject = (s: ProxySessionApi, st: HttpState, status: number, reason: string): void => {
    log?.({ type: 'reject', session: s.id, status, reason })
    st.deferred = status
    st.req.clear()
    st.reqBody = null
    if (st.inFlight.length === 0) answer(s, st, status)
  }

  /**
   * The body of the last request forwarded is broken: the server got part of it and will
   * not answer. Answer 400 for it now if it is the only request in flight and no response
   * is under way; else the client cannot be told in order: reset.
   */
  const badBody = (s: ProxySessionApi, st: HttpState, why: string): void => {
    const reason = `bad chunked request body: ${why}`
    if (st.inFlight.length > 1 || st.resBody !== null || st.res.length > 0) return abort(s, st, reason)
    log?.({ type: 'reject', session: s.id, status: 400, reason })
    answer(s, st, 400)
  }

  /** Bytes for the server: written, or held until it is connected. */
  const toServer = (s: ProxySessionApi, st: HttpState, data: Uint8Array): void => {
    if (data.length === 0) return
    if (st.open) return s.writeToServer(data)
    st.toServerBytes += data.length
    if (st.toServerBytes > HTTP_MAX_BUFFERED_BYTES) return abort(s, st, `more than ${HTTP_MAX_BUFFERED_BYTES} bytes before the server connection opened`)
    st.toServer.push(data.slice())
  }

  /** RFC 9110 §9.3.6: CONNECT host:port, as the first request only. */
  const connectMethod = (s: ProxySessionApi, st: HttpState, head: RequestHead): void => {
    if (!allowConnect) return reject(s, st, 501, 'CONNECT is not enabled')
    if (st.server !== null || st.inFlight.length > 0) return reject(s, st, 421, 'CONNECT after another request on this connection')
    const name = head.host!
    let ip: number | null
    try {
      ip = parseIPv4(name)
    } catch {
      ip = resolve === null ? null : resolve(name)
    }
    if (ip === null) return reject(s, st, 502, `cannot resolve ${name}`)
    const port = head.port!
    if (port === 0 || !connectAllow(ip >>> 0, port)) return reject(s, st, 403, `CONNECT to ${formatIPv4(ip >>> 0)}:${port} not allowed`)
    st.server = { ip: ip >>> 0, port }
    st.phase = 'connect'
    log?.({ type: 'request', session: s.id, method: head.method, host: head.host, path: head.path, server: `${formatIPv4(ip >>> 0)}:${port}`, connecting: true })
    s.connect(ip >>> 0, port)
  }

  /** A complete request head: route, connect (first request), forward. */
  const request = (s: ProxySessionApi, st: HttpState, head: RequestHead, raw: Uint8Array): void => {
    if (head.method === 'CONNECT') return connectMethod(s, st, head)
    const pool = route(head)
    if (pool === null) return reject(s, st, 404, `no route for ${head.host ?? '(no host)'} ${head.path}`)
    if (pool.servers.length === 0) return reject(s, st, 503, `empty pool for ${head.host ?? '(no host)'} ${head.path}`)
    const bl = bodyLength(head)
    if (bl.kind === 'invalid') return reject(s, st, 400, bl.reason)
    let connecting = false
    if (st.server === null) {
      st.server = pool.servers[pool.next % pool.servers.length]!
      pool.next = (pool.next + 1) % pool.servers.length
      connecting = true
    } else if (!pool.servers.some(x => x.ip === st.server!.ip && x.port === st.server!.port)) {
      // One session, one server connection: the client should ask again on a new connection.
      return reject(s, st, 421, `${head.host ?? '(no host)'} ${head.path} routes to another pool than this connection's server`)
    }
    log?.({ type: 'request', session: s.id, method: head.method, host: head.host, path: head.path, server: `${formatIPv4(st.server.ip)}:${st.server.port}`, connecting })
    if (connecting) s.connect(st.server.ip, st.server.port)
    toServer(s, st, raw)
    const persistent = isPersistent(head)
    st.inFlight.push({ method: head.method, minor: head.minor, persistent })
    if (!persistent) st.lastRequest = true
    if (bl.kind === 'chunked') st.reqBody = { kind: 'chunked', scanner: new ChunkedScanner() }
    else if (bl.kind === 'length' && bl.length > 0) st.reqBody = { kind: 'length', left: bl.length }
  }

  /** Processes the client's bytes: request heads and bodies. */
  const pumpClient = (s: ProxySessionApi, st: HttpState): void => {
    const buf = st.req
    while (st.phase === 'requests' && buf.length > 0) {
      if (st.reqBody !== null) {
        const r = takeBody(st.reqBody, buf.view())
        toServer(s, st, buf.view().subarray(0, r.n))
        buf.consume(r.n)
        if (r.error !== null) return badBody(s, st, r.error)
        if (r.done) st.reqBody = null
        continue
      }
      // After the last request (or a refused one) the client has nothing more to say.
      if (st.lastRequest || st.deferred !== null) return buf.clear()
      // RFC 9112 §2.2: ignore empty lines before a request-line (a CRLF after a body).
      const v = buf.view()
      if (v[0] === 13 && st.reqScan === 0) {
        if (v.length < 2) return
        if (v[1] === 10) {
          buf.consume(2)
          continue
        }
      }
      const end = headEnd(v, st.reqScan)
      if (end < 0) {
        st.reqScan = Math.max(0, v.length - 3)
        if (v.length >= maxHead) reject(s, st, 431, `request head larger than ${maxHead} bytes`)
        return
      }
      st.reqScan = 0
      const r = parseRequestHead(v.subarray(0, end), maxHead)
      if (r.kind === 'need-more') return reject(s, st, 400, 'incomplete request head') // cannot happen: the head is complete
      if (r.kind === 'error') return reject(s, st, r.status, r.reason)
      request(s, st, r.head, v.subarray(0, r.length))
      buf.consume(r.length)
    }
  }

  /** The client sends nothing but what the server answers: a splice cannot swallow a request. */
  const clientIdle = (st: HttpState): boolean =>
    st.inFlight.length === 1 && st.reqBody === null && st.req.length === 0 && st.deferred === null && !st.lastRequest

  /** Splices (or relays) to the end of the connection. */
  const toTheEnd = (s: ProxySessionApi, st: HttpState, why: string): void => {
    // What the proxy holds belongs to this stream: it goes before the splice.
    if (st.res.length > 0) s.writeToClient(st.res.view())
    st.res.clear()
    if (st.req.length > 0) s.writeToServer(st.req.view())
    st.req.clear()
    st.phase = 'tunnel'
    log?.({ type: 'splice', session: s.id, unspliceAfter: null, why: doSplice ? why : `${why} (relayed)` })
    if (doSplice) s.splice({ ...base })
    else s.relay()
  }

  /** The current response ended. Returns false when the session was let go. */
  const responseDone = (s: ProxySessionApi, st: HttpState): boolean => {
    st.inFlight.shift()
    st.resBody = null
    if (st.closeAfter) {
      st.phase = 'closed'
      s.close()
      return false
    }
    if (st.deferred !== null && st.inFlight.length === 0) {
      answer(s, st, st.deferred)
      return false
    }
    return true
  }

  /** The server sent something we cannot forward: 502 (RFC 9112 §6.3 rule 5), and close. */
  const badGateway = (s: ProxySessionApi, st: HttpState, reason: string): void => {
    log?.({ type: 'reject', session: s.id, status: 502, reason: `server: ${reason}` })
    answer(s, st, 502)
  }

  /** Processes the server's bytes: response heads and bodies. */
  const pumpServer = (s: ProxySessionApi, st: HttpState): void => {
    const buf = st.res
    while (st.phase === 'requests' && buf.length > 0) {
      if (st.resBody !== null) {
        const r = takeBody(st.resBody, buf.view())
        if (r.n > 0) s.writeToClient(buf.view().subarray(0, r.n))
        buf.consume(r.n)
        if (r.error !== null) return abort(s, st, `bad chunked response body: ${r.error}`)
        if (r.done && !responseDone(s, st)) return
        continue
      }
      const req = st.inFlight[0]
      if (req === undefined) return abort(s, st, 'the server sent bytes no request asked for')
      const v = buf.view()
      const end = headEnd(v, st.resScan)
      if (end < 0) {
        st.resScan = Math.max(0, v.length - 3)
        if (v.length >= maxHead) badGateway(s, st, `response head larger than ${maxHead} bytes`)
        return
      }
      st.resScan = 0
      const r = parseResponseHead(v.subarray(0, end), maxHead)
      if (r.kind !== 'ok') return badGateway(s, st, r.kind === 'error' ? r.reason : 'incomplete response head')
      const head = r.head
      // RFC 9110 §15.2: a proxy forwards 1xx responses; the final response follows.
      if (head.status < 200 && head.status !== 101) {
        s.writeToClient(v.subarray(0, r.length))
        buf.consume(r.length)
        continue
      }
      const bl = bodyLength(head, req.method)
      if (bl.kind === 'invalid') return badGateway(s, st, bl.reason)
      s.writeToClient(v.subarray(0, r.length))
      buf.consume(r.length)
      if (bl.kind === 'tunnel') return toTheEnd(s, st, `${head.status} to ${req.method}`)
      // RFC 9112 §9.3; an HTTP/1.0 client persists only when the response says keep-alive.
      const persistent = req.persistent && isPersistent(head) && (req.minor >= 1 || listTokens(head, 'connection').includes('keep-alive'))
      if (!persistent) {
        st.lastRequest = true
        st.closeAfter = true
      }
      switch (bl.kind) {
        case 'length': {
          const now = Math.min(bl.length, buf.length)
          if (now > 0) s.writeToClient(buf.view().subarray(0, now))
          buf.consume(now)
          const left = bl.length - now
          if (left === 0) {
            if (!responseDone(s, st)) return
          } else if (!persistent) {
            return toTheEnd(s, st, 'last response on the connection')
          } else if (doSplice && clientIdle(st)) {
            // The rest of the body is spliced; the forwarder unsplices after its last byte.
            st.spliced = { left, toClientAt: s.bytes.toClient }
            log?.({ type: 'splice', session: s.id, unspliceAfter: left, why: `${head.status} body of ${bl.length} bytes` })
            s.splice({ ...base, unspliceAfterServerBytes: left })
            return
          } else {
            st.resBody = { kind: 'length', left }
          }
          break
        }
        case 'chunked':
          // RFC 9112 §7.1: the end is known only at the last chunk: no unsplice point.
          if (doSplice) return toTheEnd(s, st, 'chunked response')
          st.resBody = { kind: 'chunked', scanner: new ChunkedScanner() }
          break
        case 'until-close':
          // RFC 9112 §6.3 rule 8: the body ends when the server closes.
          return toTheEnd(s, st, 'close-delimited response')
        default: {
          const never: never = bl
          throw new TypeError(`httpProxy: unknown body length ${String(never)}`)
        }
      }
    }
  }

  return {
    name: 'http',
    onClientData(s, data) {
      const st = state(s)
      switch (st.phase) {
        case 'requests':
          st.req.append(data)
          return pumpClient(s, st)
        case 'connect':
          // Tunnel bytes sent before our 200: kept for the server (CONNECT has no content).
          st.req.append(data)
          if (st.req.length > HTTP_MAX_BUFFERED_BYTES) abort(s, st, `more than ${HTTP_MAX_BUFFERED_BYTES} bytes before the tunnel opened`)
          return
        case 'tunnel':
          // Only after a failed splice, before relay() took over.
          return s.writeToServer(data)
        case 'closed':
          return
        default: {
          const never: never = st.phase
          throw new TypeError(`httpProxy: unknown phase ${String(never)}`)
        }
      }
    },
    onServerOpen(s) {
      const st = state(s)
      st.open = true
      if (st.phase === 'connect') {
        if (st.req.length > 0) s.writeToServer(st.req.view())
        st.req.clear()
        st.phase = 'tunnel'
        log?.({ type: 'splice', session: s.id, unspliceAfter: null, why: doSplice ? 'CONNECT tunnel' : 'CONNECT tunnel (relayed)' })
        if (doSplice) {
          // As SOCKS: our 200 is the last thing the proxy says; splice right after it.
          s.splice({ ...base, afterClientBytes: CONNECT_ESTABLISHED.length })
          s.writeToClient(CONNECT_ESTABLISHED)
        } else {
          s.writeToClient(CONNECT_ESTABLISHED)
          s.relay()
        }
        return
      }
      if (st.phase !== 'requests') return
      for (const c of st.toServer) s.writeToServer(c)
      st.toServer = []
      st.toServerBytes = 0
    },
    onServerError(s, why) {
      const st = state(s)
      if (st.phase !== 'requests' && st.phase !== 'connect') return
      const status = why === 'timeout' ? 504 : 502
      log?.({ type: 'reject', session: s.id, status, reason: `server connection failed: ${why}` })
      answer(s, st, status)
    },
    onServerData(s, data) {
      const st = state(s)
      if (st.phase === 'tunnel') return s.writeToClient(data) // only after a failed splice
      if (st.phase !== 'requests') return
      st.res.append(data)
      pumpServer(s, st)
    },
    onServerEnd(s) {
      const st = state(s)
      if (st.phase === 'requests' && st.resBody === null && st.inFlight.length > 0) {
        // The server closed before (all of) a response head: the client gets a 502.
        log?.({ type: 'reject', session: s.id, status: 502, reason: 'the server closed before responding' })
        return answer(s, st, 502)
      }
      // A body cut short, or nothing in flight: pass the close on.
      if (st.phase !== 'closed') st.phase = 'closed'
      s.close()
    },
    onUnspliced(s) {
      const st = state(s)
      if (st.spliced === null) return
      st.spliced = null
      // The body went through; the next request is read in control mode.
      if (responseDone(s, st)) {
        pumpClient(s, st)
        pumpServer(s, st)
      }
    },
    onSpliceFailed(s) {
      const st = state(s)
      if (st.phase === 'tunnel') return s.relay()
      const sp = st.spliced
      if (sp === null) return
      st.spliced = null
      // Bytes relayed while the splice was being tried count against the body.
      const left = sp.left - (s.bytes.toClient - sp.toClientAt)
      if (left > 0) st.resBody = { kind: 'length', left }
      else if (left === 0) responseDone(s, st)
      else abort(s, st, 'lost track of the response stream during a failed splice')
    },
    onUnspliceFailed(s) {
      // Still spliced: let the splice run to the end; the handler lets go.
      const st = state(s)
      st.phase = 'closed'
      s.close()
    },
  }
}
