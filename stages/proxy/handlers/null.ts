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
import { ConfigError } from '../../../core/errors.js'
import type { ProxyHandler, ProxySessionApi, SpliceOptions } from '../session.js'
import { ipv4Option, portOption } from './options.js'

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
  mode?: 'fwd' | 'ipfwd'
}

/** Per-session key in `s.data`: bytes seen from the server so far (`afterBytes` mode). */
const SEEN = 'null.serverBytes'

/** A plug gateway to one server (see the module comment). Throws a ConfigError on bad options. */
export function nullProxy(opts: NullProxyOptions): ProxyHandler {
  const ip = ipv4Option(opts.server, 'nullProxy: server')
  const port = portOption(opts.port, 'nullProxy: port')
  const when = opts.splice ?? 'immediately'
  const after = typeof when === 'object' ? when.afterBytes : null
  if (after !== null && !(Number.isInteger(after) && after >= 0)) {
    throw new ConfigError(`nullProxy: splice.afterBytes must be an integer >= 0, got ${after}`)
  }
  const base: SpliceOptions = opts.mode === undefined ? {} : { mode: opts.mode }

  const handler: ProxyHandler = {
    name: 'null',
    onClientOpen(s) {
      // No onClientData: the client's bytes are relayed (queued until the server is up).
      s.connect(ip, port)
    },
    onServerOpen(s) {
      if (when === 'never') s.relay()
      else if (after === null || after === 0) s.splice({ ...base })
      else s.data[SEEN] = 0
    },
    onServerError(s) {
      s.reset()
    },
    onSpliceFailed(s) {
      // The session stays in control mode: keep the bytes moving.
      s.relay()
    },
  }
  if (after !== null && after > 0) {
    handler.onServerData = (s: ProxySessionApi, data: Uint8Array): void => {
      const seen = ((s.data[SEEN] as number | undefined) ?? 0) + data.length
      s.data[SEEN] = seen
      // Once this chunk reaches n bytes, splice right after it: the splice moves whatever
      // the proxy still holds, and from then on the session relays by itself.
      if (seen >= after) s.splice({ ...base, afterClientBytes: data.length })
      s.writeToClient(data)
    }
  }
  return handler
}
