/**
 * NULL proxy: a plug gateway. Every client is connected to one server and the bytes go
 * through unchanged: relayed by the proxy's two TCPs, spliced as soon as the server
 * connection is up, or spliced once the server's first `afterBytes` bytes (a banner, a
 * greeting) went through the proxy.
 *
 * ```
 *   client open ──connect(server, port)──▶ server open ──▶ 'never':        relay()
 *                                                      ├─▶ 'immediately':  splice()
 *                                                      └─▶ {afterBytes:n}: count the server's
 *                                                          bytes, write them through, splice()
 *                                                          once n went to the client
 * ```
 * A server that cannot be reached resets the client (RST): a plug gateway has no way to
 * say why. A splice the forwarder cannot carry out falls back to relaying.
 * @module
 */
import type { ProxyHandler, SpliceMode } from '../session.js'
import { ipv4Option, portOption, splicePolicy } from './options.js'

/** When a {@link nullProxy} splices: never (relay only), as soon as connected, or after the server's first bytes. */
export type NullSplice =
  | 'never'
  | 'immediately'
  | {
    /** Splice right after the server chunk that brings its bytes to at least this many. */
    afterBytes: number
  }

/** Options of {@link nullProxy}. */
export interface NullProxyOptions {
  /** The server: dotted IPv4 text or an unsigned 32-bit number. */
  server: string | number
  /** The server's port (1..65535). */
  port: number
  /** When to splice (default 'immediately'). */
  splice?: NullSplice
  /** The final stage of the splice (default: the forwarder's). */
  mode?: SpliceMode
}

/** Per-session key in `s.data`: bytes seen from the server so far (`afterBytes` mode). */
const SEEN = 'null.serverBytes'

/** A plug gateway to one server (see the module comment). Throws a ConfigError on bad options. */
export function nullProxy(opts: NullProxyOptions): ProxyHandler {
  const ip = ipv4Option(opts.server, 'nullProxy: server')
  const port = portOption(opts.port, 'nullProxy: port')
  const policy = splicePolicy(opts.splice, opts.mode, 'nullProxy', SEEN)

  const handler: ProxyHandler = {
    name: 'null',
    onClientOpen(s) {
      // No onClientData: the client's bytes are relayed (queued until the server is up).
      s.connect(ip, port)
    },
    ...policy,
    onServerError(s) {
      s.reset()
    },
    onSpliceFailed(s) {
      // The session stays in control mode: keep the bytes moving.
      s.relay()
    },
  }
  return handler
}
