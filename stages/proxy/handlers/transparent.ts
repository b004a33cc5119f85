/**
 * TRANSPARENT proxy: for connections a forwarder intercepted (`intercept` rules: the
 * client connected to the server's address and its route goes through us), connect to
 * the destination the client asked for and relay or splice, like a plug gateway whose
 * server is chosen per connection.
 *
 * ```
 *   client ─SYN to server:80─▶ forwarder (intercepted: TCB answers as server:80)
 *     client open ──(allow/deny rules on the original destination)──▶ connect(server, 80)
 *       ──▶ server open ──▶ 'never': relay() | 'immediately': splice() | {afterBytes:n}: splice after n
 * ```
 * The server side connects from the forwarder's own address on the interface towards the
 * server (not the client's): the server sees the proxy as its peer, and the return
 * traffic comes back to us without any route trickery (the client side keeps the
 * server's address, so after a splice FWD rewrites both addresses and ports).
 *
 * A refused or unreachable server, a denied destination, or a connection that was not
 * intercepted resets the client (RST from the original destination's address).
 * @module
 */
import { ConfigError } from '../../../core/errors.js'
import type { ProxyHandler, SpliceMode } from '../session.js'
import { splicePolicy } from './options.js'
import type { NullSplice } from './null.js'
import { compileRules, type Socks5Rule, type Socks5RuleMatcher } from './socks5.js'

/** Options of {@link transparentProxy}. */
export interface TransparentProxyOptions {
  /** When to splice (default 'immediately'): never, once connected, or after the server's first `afterBytes` bytes. */
  splice?: NullSplice
  /** The final stage of the splice (default: the forwarder's). */
  mode?: SpliceMode
  /**
   * Allow/deny rules on the original destination (first match wins, no match denies; the
   * `user` field never matches: there is no authentication). Default: allow every
   * intercepted connection (the intercept rules already chose them).
   */
  rules?: readonly Socks5Rule[]
  /** Called with each decision, for logs. */
  onLog?: (e: TransparentLogEvent) => void
}

/** A transparent proxy's log event. */
export interface TransparentLogEvent {
  /** What happened. */
  type: 'connect' | 'denied' | 'not-intercepted' | 'server-error'
  /** Session id. */
  session: number
  /** The original destination, `a.b.c.d:port`. */
  dst: string
  /** Why (the rule that decided, the server error). */
  reason?: string
}

/** Per-session key in `s.data`: bytes seen from the server so far (`afterBytes` mode). */
const SEEN = 'transparent.serverBytes'

function fmt(ip: number, port: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}:${port}`
}

/** A transparent proxy to each intercepted connection's destination (see the module comment). Throws a ConfigError on bad options. */
export function transparentProxy(opts: TransparentProxyOptions = {}): ProxyHandler {
  const policy = splicePolicy(opts.splice, opts.mode, 'transparentProxy', SEEN)
  let check: Socks5RuleMatcher | null = null
  if (opts.rules !== undefined) {
    try {
      check = compileRules(opts.rules)
    } catch (err) {
      throw new ConfigError((err as Error).message.replace(/^socks5Proxy:/, 'transparentProxy:'))
    }
  }
  const log = opts.onLog ?? null

  const handler: ProxyHandler = {
    name: 'transparent',
    onClientOpen(s) {
      const c = s.client
      const dst = fmt(c.localIp, c.localPort)
      if (c.intercepted !== true) {
        // Reached on the forwarder's own port: there is no original destination to go to.
        log?.({ type: 'not-intercepted', session: s.id, dst })
        s.reset()
        return
      }
      if (check !== null) {
        const v = check(c.localIp, c.localPort, null)
        if (!v.allowed) {
          log?.({ type: 'denied', session: s.id, dst, reason: v.reason })
          s.reset()
          return
        }
      }
      log?.({ type: 'connect', session: s.id, dst })
      s.connect(c.localIp, c.localPort)
    },
    ...policy,
    onServerError(s, why) {
      log?.({ type: 'server-error', session: s.id, dst: fmt(s.client.localIp, s.client.localPort), reason: why })
      s.reset()
    },
    onSpliceFailed(s) {
      s.relay()
    },
  }
  return handler
}
