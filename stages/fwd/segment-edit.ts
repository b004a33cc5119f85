/**
 * In-place edits of a TCP segment that the splice's transitional stages (the preliminary
 * FWD and the resplice FWD) make on top of FWD's rewrite: finding options, NOP-ing SACK
 * blocks, recomputing the checksum after a header change, and the copy an old TCB gets
 * for its ACK processing (Scout splice step 3).
 * @module
 */
import { set16 } from '../../core/bytes.js'
import { checksum, fold, pseudoHeaderSum } from '../../core/checksum.js'
import { allocMsg, VNET_F_NEEDS_CSUM, type Msg, type VnetHeader } from '../../core/msg.js'
import { TcpField } from '../tcp/segment.js'

/**
 * Offset of the next option of `kind` in the TCP header at `tcp`, searching from `from`
 * (default: the first option); -1 if there is none or the options are malformed.
 */
export function findOption(buf: Uint8Array, tcp: number, kind: number, from = tcp + 20): number {
  const end = tcp + ((buf[tcp + TcpField.DATA_OFF]! >>> 4) << 2)
  let i = from
  while (i < end) {
    const k = buf[i]!
    if (k === 0) break
    if (k === 1) {
      i++
      continue
    }
    const len = buf[i + 1] ?? 0
    if (len < 2 || i + len > end) break
    if (k === kind) return i
    i += len
  }
  return -1
}

/** Finds the Timestamps option of the TCP header at `tcp`; returns its offset or -1. */
export function findTimestamps(buf: Uint8Array, tcp: number): number {
  const at = findOption(buf, tcp, 8)
  return at >= 0 && buf[at + 1] === 10 ? at : -1
}

/** NOPs out every SACK option of the TCP header at `tcp` (its blocks may name octets of the other sender's space). */
export function stripSack(buf: Uint8Array, tcp: number): void {
  for (let at = findOption(buf, tcp, 5); at >= 0; at = findOption(buf, tcp, 5, at)) buf.fill(1, at, at + buf[at + 1]!)
}

/**
 * Recomputes the checksum of the TCP segment `buf[tcp..end)` between `src` and `dst`; for
 * a partial-checksum frame (`v` NEEDS_CSUM) only its pseudo-header part, as the device
 * sums the rest (virtio §5.1.6.2).
 */
export function refill(buf: Uint8Array, tcp: number, end: number, src: number, dst: number, v: VnetHeader | null): void {
  const len = end - tcp
  if (v !== null && (v.flags & VNET_F_NEEDS_CSUM) !== 0) return set16(buf, tcp + TcpField.CHECKSUM, fold(pseudoHeaderSum(src, dst, 6, len)))
  set16(buf, tcp + TcpField.CHECKSUM, 0)
  set16(buf, tcp + TcpField.CHECKSUM, checksum(buf, tcp, len, pseudoHeaderSum(src, dst, 6, len)))
}

/**
 * A copy of the segment at `msg.buf[tcp..end)` (by default to `msg.end`; the header's end
 * for a pure-ACK copy) for an old TCB or to send apart; `msg` goes on.
 */
export function copySegment(msg: Msg, tcp: number, end = msg.end): Msg {
  const n = end - tcp
  const copy = allocMsg(n)
  copy.buf.set(msg.buf.subarray(tcp, end), copy.off)
  copy.end = copy.off + n
  const v = msg.vnet
  // A shortened copy is no GSO super-frame, whatever the original was.
  copy.vnet = v !== null && v.gsoType !== 0 && end !== msg.end ? { ...v, gsoType: 0, gsoSize: 0 } : v
  return copy
}
