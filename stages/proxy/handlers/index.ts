/**
 * Built-in proxy handlers: pure protocol logic on the session API (`ProxySessionApi` in
 * `stages/proxy/session.ts`), no I/O of their own. Each is a factory returning a
 * `ProxyHandler` for a proxy forwarder.
 *
 * - {@link nullProxy}: a plug gateway to one server; relays, splices at once, or splices
 *   after the server's first bytes.
 * - {@link socks5Proxy}: SOCKS5 CONNECT (RFC 1928) with username/password (RFC 1929),
 *   allow/deny rules (default deny), spliced after the reply.
 * - {@link httpProxy}: an HTTP/1.x server proxy routing requests by Host and path to
 *   server pools; response bodies of known length are spliced, then unspliced to read the
 *   next request.
 * - {@link transparentProxy}: for intercepted connections (a forwarder's `intercept`
 *   rules), connects to the original destination and splices.
 *
 * Read first: RFC 1928 §3-6 and RFC 1929 §2 (SOCKS5), RFC 9112 §2-7 and §9.3 (HTTP/1.1
 * messages, body length, persistence), RFC 9110 §9.3.6 and §15 (CONNECT, status codes),
 * and the session lifecycle in `stages/proxy/session.ts`.
 *
 * The protocol parsers (`parseGreeting`, `parseRequest`, `buildReply`, `parseRequestHead`,
 * `bodyLength`, ...) are exported from `./socks5.js` and `./http.js` for tests and for
 * handlers that extend these protocols.
 * @module
 */
export { nullProxy } from './null.js'
export type { NullProxyOptions, NullSplice } from './null.js'
export { socks5Proxy } from './socks5.js'
export type { Socks5LogEvent, Socks5Options, Socks5Phase, Socks5ReplyCode, Socks5Rule } from './socks5.js'
export { httpProxy } from './http.js'
export { MsocksService, MsocksRep, resplicePoints } from './msocks.js'
export type { MsocksLogEvent, MsocksMover, MsocksReconnect, MsocksReconnectReply, MsocksRepCode, MsocksServiceOptions, MsocksStats, ResplicePoints, RespliceState } from './msocks.js'
export { transparentProxy } from './transparent.js'
export type { TransparentLogEvent, TransparentProxyOptions } from './transparent.js'
export type { HttpLogEvent, HttpProxyOptions, HttpRoute, HttpServer } from './http.js'
