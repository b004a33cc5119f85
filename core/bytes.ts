/**
 * Big-endian field access on byte arrays, the way every header on the wire is laid out.
 * Plain functions on `Uint8Array` so the fast path neither allocates nor goes through
 * a `DataView`.
 * @module
 */

/** Reads an unsigned 16-bit big-endian field at `off`. */
export function get16(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!
}

/** Writes an unsigned 16-bit big-endian field at `off`. */
export function set16(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 8) & 0xff
  b[off + 1] = v & 0xff
}

/** Reads an unsigned 32-bit big-endian field at `off` (result in 0..2^32-1). */
export function get32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0
}

/** Writes an unsigned 32-bit big-endian field at `off`. */
export function set32(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 24) & 0xff
  b[off + 1] = (v >>> 16) & 0xff
  b[off + 2] = (v >>> 8) & 0xff
  b[off + 3] = v & 0xff
}

/** Formats bytes as lowercase hex, `sep` between bytes (for logs and test messages). */
export function toHex(b: Uint8Array, sep = ''): string {
  let s = ''
  for (let i = 0; i < b.length; i++) {
    if (i > 0) s += sep
    s += b[i]!.toString(16).padStart(2, '0')
  }
  return s
}

/** Formats a MAC address (`aa:bb:cc:dd:ee:ff`). */
export function formatMac(b: Uint8Array, off = 0): string {
  return toHex(b.subarray(off, off + 6), ':')
}

/** Parses `aa:bb:cc:dd:ee:ff` (or `-` separators) into 6 bytes; throws a TypeError naming the input if malformed. */
export function parseMac(s: string): Uint8Array {
  const parts = s.split(/[:-]/)
  if (parts.length !== 6 || parts.some(p => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new TypeError(`bad MAC address '${s}': expected six hex bytes like 02:00:00:00:00:01`)
  }
  return Uint8Array.from(parts.map(p => parseInt(p, 16)))
}

/** Formats an IPv4 address held as an unsigned 32-bit number. */
export function formatIPv4(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`
}

/** Parses dotted-quad IPv4 text into an unsigned 32-bit number; throws a TypeError naming the input if malformed. */
export function parseIPv4(s: string): number {
  const parts = s.split('.')
  if (parts.length !== 4 || parts.some(p => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new TypeError(`bad IPv4 address '${s}': expected four numbers 0-255 like 10.0.0.1`)
  }
  return parts.reduce((acc, p) => ((acc << 8) | Number(p)) >>> 0, 0)
}
