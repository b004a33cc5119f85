/**
 * RouteTable: IPv4 longest-prefix match (RFC 1812 §5.2.4.3). One hash map per prefix
 * length in use, probed from the longest length down; a lookup allocates nothing.
 * Every change bumps {@link RouteTable.version}, so callers may cache a lookup and
 * re-check it with one integer compare.
 * @module
 */
import { formatIPv4, parseIPv4 } from '../../core/bytes.js'
import { ConfigError } from '../../core/errors.js'

/** One route. `I` is whatever names an interface for the caller. */
export interface Route<I> {
  /** Network address (masked). */
  readonly network: number
  /** Prefix length 0..32. */
  readonly prefixLength: number
  /** Outgoing interface. */
  readonly iface: I
  /** Next-hop router, or 0 when the destination is on the link (directly connected). */
  readonly gateway: number
  /** Preference among routes of equal prefix (lower wins). */
  readonly metric: number
}

/** The network mask of a prefix length (u32). */
export function prefixMask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0
}

/** Parses `a.b.c.d/len` (or a bare address, as /32) into [address, length]; throws {@link ConfigError}. */
export function parseCidr(text: string, where = 'address'): [number, number] {
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const lenText = slash < 0 ? '32' : text.slice(slash + 1)
  let ip: number
  try {
    ip = parseIPv4(addr)
  } catch {
    throw new ConfigError(`${where}: bad IPv4 address '${text}': expected a.b.c.d/len like 10.0.0.1/24`)
  }
  if (!/^\d{1,2}$/.test(lenText) || Number(lenText) > 32) {
    throw new ConfigError(`${where}: bad prefix length in '${text}': expected 0..32 after '/'`)
  }
  return [ip, Number(lenText)]
}

/** A longest-prefix-match routing table. */
export class RouteTable<I> {
  /** Incremented on every change. */
  version = 0
  private readonly byLength: (Map<number, Route<I>> | undefined)[] = new Array(33)
  /** Prefix lengths in use, longest first. */
  private lengths: number[] = []

  /** Adds (or replaces, for the same prefix, when the metric is not worse) a route. */
  add(cidr: string | [number, number], iface: I, gateway = 0, metric = 0): Route<I> {
    const [addr, len] = typeof cidr === 'string' ? parseCidr(cidr, 'route') : cidr
    if (!(len >= 0 && len <= 32 && Number.isInteger(len))) throw new ConfigError(`route: prefix length ${len} is not in 0..32`)
    const network = (addr & prefixMask(len)) >>> 0
    let m = this.byLength[len]
    if (m === undefined) {
      m = new Map()
      this.byLength[len] = m
      this.lengths = [...this.lengths, len].sort((a, b) => b - a)
    }
    const old = m.get(network)
    const route: Route<I> = { network, prefixLength: len, iface, gateway: gateway >>> 0, metric }
    if (old === undefined || metric <= old.metric) m.set(network, route)
    this.version++
    return m.get(network)!
  }

  /** Removes the route for exactly this prefix; returns true if there was one. */
  remove(cidr: string | [number, number]): boolean {
    const [addr, len] = typeof cidr === 'string' ? parseCidr(cidr, 'route') : cidr
    const m = this.byLength[len]
    if (m === undefined || !m.delete((addr & prefixMask(len)) >>> 0)) return false
    if (m.size === 0) {
      this.byLength[len] = undefined
      this.lengths = this.lengths.filter(l => l !== len)
    }
    this.version++
    return true
  }

  /** Removes every route through `iface`. */
  removeInterface(iface: I): void {
    for (const r of this.routes()) if (r.iface === iface) this.remove([r.network, r.prefixLength])
  }

  /** The most specific route to `dst`, or undefined (RFC 1812 §5.2.4.3 longest match). */
  lookup(dst: number): Route<I> | undefined {
    const ls = this.lengths
    for (let i = 0; i < ls.length; i++) {
      const len = ls[i]!
      const r = this.byLength[len]!.get((dst & prefixMask(len)) >>> 0)
      if (r !== undefined) return r
    }
    return undefined
  }

  /** Every route, most specific first. */
  routes(): Route<I>[] {
    const out: Route<I>[] = []
    for (const len of this.lengths) out.push(...this.byLength[len]!.values())
    return out
  }

  /** Number of routes. */
  get size(): number {
    let n = 0
    for (const len of this.lengths) n += this.byLength[len]!.size
    return n
  }

  /** The table as text (`10.0.0.0/24 via 10.0.0.254 dev mem0`), `name` naming interfaces. */
  describe(name: (iface: I) => string = String): string {
    return this.routes()
      .map(r => `${formatIPv4(r.network)}/${r.prefixLength}${r.gateway ? ` via ${formatIPv4(r.gateway)}` : ''} dev ${name(r.iface)}${r.metric ? ` metric ${r.metric}` : ''}`)
      .join('\n')
  }
}
