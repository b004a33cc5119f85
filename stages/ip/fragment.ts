/**
 * Fragmentation on output (RFC 791 §3.2 "Fragmentation", RFC 1812 §5.2.6): splits a
 * datagram that does not fit the link MTU into fragments whose data are multiples of 8
 * bytes. Options marked "copied" travel in every fragment; the others only in the first.
 * A slow path: each fragment is a fresh Msg.
 * @module
 */
import { get16, set16 } from '../../core/bytes.js'
import { allocMsg, type Msg } from '../../core/msg.js'
import { IP, IpFlags, fillIpv4Checksum } from './header.js'

/** The smallest MTU every IPv4 link must carry (RFC 791 §3.2: 68 octets). */
export const MIN_IPV4_MTU = 68

/** Why a datagram could not be fragmented. */
export type FragmentError = 'df-set' | 'mtu-too-small'

/**
 * Writes into `out` the options of the header at `b[off..off+hlen)` that RFC 791 marks
 * "copied" (type bit 0x80), padded with End-of-Options to a multiple of 4. Returns their
 * padded length. Assumes the option framing was validated (see `optionsWellFormed`).
 */
export function copiedOptions(b: Uint8Array, off: number, hlen: number, out: Uint8Array, outOff: number): number {
  let i = off + IP.HLEN
  const end = off + hlen
  let n = 0
  while (i < end) {
    const type = b[i]!
    if (type === 0) break
    if (type === 1) {
      i++
      continue
    }
    const len = b[i + 1]!
    if ((type & 0x80) !== 0) {
      out.set(b.subarray(i, i + len), outOff + n)
      n += len
    }
    i += len
  }
  const padded = (n + 3) & ~3
  out.fill(0, outOff + n, outOff + padded)
  return padded
}

/**
 * Splits the datagram at `msg.off` into fragments of at most `mtu` bytes and hands each
 * to `emit` (in order, each with `nextHop` copied). Re-fragmenting a fragment keeps its
 * offset and its MF bit on the last piece. Returns the number of fragments, or why none
 * were made; `msg` stays the caller's either way.
 */
export function fragmentDatagram(msg: Msg, mtu: number, emit: (frag: Msg) => void, ignoreDf = false): number | FragmentError {
  const b = msg.buf
  const o = msg.off
  const hlen = (b[o]! & 0x0f) << 2
  const total = get16(b, o + IP.LEN)
  const frag = get16(b, o + IP.FRAG)
  // RFC 791: a datagram with DF set must not be fragmented (the caller sends ICMP 3/4).
  if ((frag & IpFlags.DF) !== 0 && !ignoreDf) return 'df-set'
  if (mtu < MIN_IPV4_MTU || mtu - hlen < 8) return 'mtu-too-small'
  const baseOffset = (frag & IpFlags.OFFSET_MASK) * 8
  const lastMf = frag & IpFlags.MF
  const dataLen = total - hlen
  let pos = 0
  let count = 0
  // Later fragments: the fixed header plus the copied options only.
  const hdr = new Uint8Array(IP.MAX_HLEN)
  hdr.set(b.subarray(o, o + IP.HLEN))
  const hdrLen = IP.HLEN + copiedOptions(b, o, hlen, hdr, IP.HLEN)
  hdr[0] = 0x40 | (hdrLen >>> 2)
  while (pos < dataLen) {
    const h = count === 0 ? hlen : hdrLen
    const room = ((mtu - h) >>> 3) << 3
    const n = Math.min(room, dataLen - pos)
    const last = pos + n >= dataLen
    const f = allocMsg(h + n)
    f.nextHop = msg.nextHop
    f.ingress = msg.ingress
    f.rxTime = msg.rxTime
    const fo = f.off
    if (count === 0) f.buf.set(b.subarray(o, o + hlen), fo)
    else f.buf.set(hdr.subarray(0, hdrLen), fo)
    f.buf.set(b.subarray(o + hlen + pos, o + hlen + pos + n), fo + h)
    f.end = fo + h + n
    set16(f.buf, fo + IP.LEN, h + n)
    const mf = last ? lastMf : IpFlags.MF
    set16(f.buf, fo + IP.FRAG, (frag & IpFlags.DF) | mf | (((baseOffset + pos) >>> 3) & IpFlags.OFFSET_MASK))
    fillIpv4Checksum(f.buf, fo)
    emit(f)
    count++
    pos += n
  }
  return count
}
