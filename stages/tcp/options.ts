/**
 * TCP options (RFC 9293 §3.1, §3.7.1; RFC 7323; RFC 2018; RFC 2883): a robust parser
 * into a reusable {@link TcpOptions} record and writers for the layouts we send.
 *
 * Parsing never throws and never reads past `end`: unknown options are skipped by their
 * length, a known option with the wrong length is ignored, and a zero, one or overlong
 * length stops parsing (RFC 9293 §3.1 "must be prepared to handle an illegal option
 * length"; we keep the segment, as Linux does, and report the problem to the caller).
 * @module
 */
import { get16, get32, set16, set32 } from '../../core/bytes.js'

/** Option kinds (IANA "TCP Option Kind Numbers"). */
export const OptKind = Object.freeze({
  /** End of option list. */
  EOL: 0,
  /** No-operation (padding). */
  NOP: 1,
  /** Maximum segment size, SYN only (RFC 9293 §3.7.1). */
  MSS: 2,
  /** Window scale, SYN only (RFC 7323 §2). */
  WS: 3,
  /** SACK permitted, SYN only (RFC 2018 §2). */
  SACK_PERMITTED: 4,
  /** SACK blocks (RFC 2018 §3). */
  SACK: 5,
  /** Timestamps (RFC 7323 §3). */
  TS: 8,
})

/** RFC 7323 §2.3: a shift count above 14 is treated as 14. */
export const MAX_WSCALE = 14

/** Most SACK blocks an option can hold (40 bytes of option space: 2 + 4 * 8). */
export const MAX_SACK_BLOCKS = 4

/** Problems the parser reports (the segment is still processed). */
export type OptionProblem = null | 'bad-option-length' | 'truncated-option' | 'wscale-capped'

/**
 * The options of one segment, parsed into a reusable record (one per TCB or stage, so a
 * parse allocates nothing). `-1` marks an absent numeric option.
 */
export class TcpOptions {
  /** MSS option value, or -1. */
  mss = -1
  /** Window scale shift (already capped at 14), or -1. */
  wscale = -1
  /** SACK-permitted seen. */
  sackPermitted = false
  /** Timestamps option seen. */
  hasTs = false
  /** TSval (valid when `hasTs`). */
  tsVal = 0
  /** TSecr (valid when `hasTs`). */
  tsEcr = 0
  /** Number of SACK blocks in `sack`. */
  sackCount = 0
  /** SACK blocks as [left0, right0, left1, right1, ...] sequence numbers. */
  readonly sack = new Uint32Array(MAX_SACK_BLOCKS * 2)
  /** The first problem seen while parsing, or null. */
  problem: OptionProblem = null

  /** Clears every field. */
  reset(): void {
    this.mss = -1
    this.wscale = -1
    this.sackPermitted = false
    this.hasTs = false
    this.tsVal = 0
    this.tsEcr = 0
    this.sackCount = 0
    this.problem = null
  }
}

/**
 * Parses the option bytes `buf[off..end)` into `out` (reset first). Never throws; returns
 * `out.problem`.
 */
export function parseOptions(buf: Uint8Array, off: number, end: number, out: TcpOptions): OptionProblem {
  out.reset()
  let i = off
  while (i < end) {
    const kind = buf[i]!
    if (kind === OptKind.EOL) break
    if (kind === OptKind.NOP) {
      i++
      continue
    }
    if (i + 1 >= end) {
      // RFC 9293 §3.1: a kind byte with no room for its length byte.
      out.problem ??= 'truncated-option'
      break
    }
    const len = buf[i + 1]!
    if (len < 2) {
      // RFC 9293 §3.1: a zero or one length would loop forever; stop here.
      out.problem ??= 'bad-option-length'
      break
    }
    if (i + len > end) {
      out.problem ??= 'truncated-option'
      break
    }
    switch (kind) {
      case OptKind.MSS:
        if (len === 4) out.mss = get16(buf, i + 2)
        else out.problem ??= 'bad-option-length'
        break
      case OptKind.WS:
        if (len === 3) {
          let s = buf[i + 2]!
          if (s > MAX_WSCALE) {
            // RFC 7323 §2.3: log and use 14 instead of a larger shift.
            out.problem ??= 'wscale-capped'
            s = MAX_WSCALE
          }
          out.wscale = s
        } else out.problem ??= 'bad-option-length'
        break
      case OptKind.SACK_PERMITTED:
        if (len === 2) out.sackPermitted = true
        else out.problem ??= 'bad-option-length'
        break
      case OptKind.SACK: {
        // RFC 2018 §3: length 2 + 8n, n = 1..4.
        const n = (len - 2) >> 3
        if ((len - 2) % 8 !== 0 || n < 1 || n > MAX_SACK_BLOCKS) {
          out.problem ??= 'bad-option-length'
          break
        }
        for (let b = 0; b < n; b++) {
          out.sack[b * 2] = get32(buf, i + 2 + b * 8)
          out.sack[b * 2 + 1] = get32(buf, i + 6 + b * 8)
        }
        out.sackCount = n
        break
      }
      case OptKind.TS:
        if (len === 10) {
          out.hasTs = true
          out.tsVal = get32(buf, i + 2)
          out.tsEcr = get32(buf, i + 6)
        } else out.problem ??= 'bad-option-length'
        break
      default:
        // RFC 9293 §3.1 / RFC 1122 §4.2.2.5: ignore options we do not know, by their length.
        break
    }
    i += len
  }
  return out.problem
}

/** What to put into a SYN or SYN-ACK. -1 / false leaves an option out. */
export interface SynOptions {
  /** MSS to advertise. */
  mss: number
  /** Our window scale shift, or -1 for none. */
  wscale: number
  /** Send SACK-permitted. */
  sackPermitted: boolean
  /** Send timestamps. */
  ts: boolean
  /** TSval. */
  tsVal: number
  /** TSecr. */
  tsEcr: number
}

/**
 * Writes SYN options at `buf[off..)` in Linux's order (MSS, SACK-permitted + TS, NOP + WS),
 * padded to a multiple of 4. Returns the length written (at most 20).
 */
export function writeSynOptions(buf: Uint8Array, off: number, o: SynOptions): number {
  let i = off
  buf[i] = OptKind.MSS
  buf[i + 1] = 4
  set16(buf, i + 2, o.mss)
  i += 4
  if (o.ts) {
    if (o.sackPermitted) {
      buf[i++] = OptKind.SACK_PERMITTED
      buf[i++] = 2
    } else {
      buf[i++] = OptKind.NOP
      buf[i++] = OptKind.NOP
    }
    buf[i] = OptKind.TS
    buf[i + 1] = 10
    set32(buf, i + 2, o.tsVal)
    set32(buf, i + 6, o.tsEcr)
    i += 10
  } else if (o.sackPermitted) {
    buf[i++] = OptKind.NOP
    buf[i++] = OptKind.NOP
    buf[i++] = OptKind.SACK_PERMITTED
    buf[i++] = 2
  }
  if (o.wscale >= 0) {
    buf[i++] = OptKind.NOP
    buf[i++] = OptKind.WS
    buf[i++] = 3
    buf[i++] = o.wscale
  }
  return i - off
}

/** Writes NOP NOP TS(val, ecr) at `buf[off..)`; returns 12. */
export function writeTsOption(buf: Uint8Array, off: number, tsVal: number, tsEcr: number): number {
  buf[off] = OptKind.NOP
  buf[off + 1] = OptKind.NOP
  buf[off + 2] = OptKind.TS
  buf[off + 3] = 10
  set32(buf, off + 4, tsVal)
  set32(buf, off + 8, tsEcr)
  return 12
}

/** Writes NOP NOP SACK with `count` blocks from `blocks` ([l0, r0, l1, r1, ...]); returns 4 + 8 * count. */
export function writeSackOption(buf: Uint8Array, off: number, blocks: Uint32Array, count: number): number {
  buf[off] = OptKind.NOP
  buf[off + 1] = OptKind.NOP
  buf[off + 2] = OptKind.SACK
  buf[off + 3] = 2 + 8 * count
  for (let b = 0; b < count; b++) {
    set32(buf, off + 4 + b * 8, blocks[b * 2]!)
    set32(buf, off + 8 + b * 8, blocks[b * 2 + 1]!)
  }
  return 4 + 8 * count
}
