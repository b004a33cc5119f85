/**
 * Option checks shared by the built-in handlers: addresses and ports from a config,
 * turned into numbers or a {@link ConfigError} that names the option; and the splice
 * policy ('never' | 'immediately' | `{ afterBytes }`) the plug-style handlers share.
 * @module
 */
import { parseIPv4 } from '../../../core/bytes.js'
import { ConfigError } from '../../../core/errors.js'
import type { ProxyHandler, ProxySessionApi, SpliceMode, SpliceOptions } from '../session.js'
import type { NullSplice } from './null.js'

/** An IPv4 option (dotted text or u32) as a u32; throws a ConfigError naming `what`. */
export function ipv4Option(v: string | number, what: string): number {
  if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v >>> 0
    throw new ConfigError(`${what}: ${v} is not an IPv4 address (an integer 0..2^32-1 or dotted text)`)
  }
  try {
    return parseIPv4(v)
  } catch (err) {
    throw new ConfigError(`${what}: ${(err as Error).message}`)
  }
}

/** A port option; throws a ConfigError naming `what`. */
export function portOption(v: number, what: string): number {
  if (Number.isInteger(v) && v > 0 && v < 65536) return v
  throw new ConfigError(`${what}: ${v} is not a port 1..65535`)
}

/** The two callbacks a {@link splicePolicy} fills in on a handler. */
export type SplicePolicy = Pick<ProxyHandler, 'onServerOpen' | 'onServerData'>

/**
 * The plug gateway's splice timing, checked once: on server open relay ('never'), splice
 * ('immediately', or `afterBytes: 0`), or count the server's bytes in `s.data[key]` and
 * splice right after the chunk that reaches `afterBytes` (the splice moves whatever the
 * proxy still holds; from then on the session relays by itself). Throws a ConfigError
 * naming `what` on a bad `splice`.
 */
export function splicePolicy(splice: NullSplice | undefined, mode: SpliceMode | undefined, what: string, key: string): SplicePolicy {
  const when = splice ?? 'immediately'
  const after = typeof when === 'object' && when !== null ? when.afterBytes : null
  if ((typeof when !== 'object' || when === null) && when !== 'never' && when !== 'immediately') {
    throw new ConfigError(`${what}: splice must be 'never', 'immediately' or { afterBytes: n }, got ${String(when)}`)
  }
  if (after !== null && !(Number.isInteger(after) && after >= 0)) {
    throw new ConfigError(`${what}: splice.afterBytes must be an integer >= 0, got ${after}`)
  }
  const base: SpliceOptions = mode === undefined ? {} : { mode }
  const policy: SplicePolicy = {
    onServerOpen(s: ProxySessionApi): void {
      if (when === 'never') s.relay()
      else if (after === null || after === 0) s.splice({ ...base })
      else s.data[key] = 0
    },
  }
  if (after !== null && after > 0) {
    policy.onServerData = (s: ProxySessionApi, data: Uint8Array): void => {
      const seen = ((s.data[key] as number | undefined) ?? 0) + data.length
      s.data[key] = seen
      if (seen >= after) s.splice({ ...base, afterClientBytes: data.length })
      s.writeToClient(data)
    }
  }
  return policy
}
