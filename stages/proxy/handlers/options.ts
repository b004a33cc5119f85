/**
 * Option checks shared by the built-in handlers: addresses and ports from a config,
 * turned into numbers or a {@link ConfigError} that names the option.
 * @module
 */
import { parseIPv4 } from '../../../core/bytes.js'
import { ConfigError } from '../../../core/errors.js'

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
