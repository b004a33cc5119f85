/**
 * The Internet checksum (core/checksum.ts): ns per buffer of 20 (an IP header), 1460 (an
 * MSS segment), 9000 (a jumbo frame) and 65535 bytes (a GSO super-frame), the current
 * word-at-a-time `checksum` next to the byte-wise loop it replaced (kept here, verbatim,
 * as the baseline). Buffers sit in one slab as pooled frames do, each range starting where
 * a TCP header starts in a frame (headroom 128 + Ethernet 14 + IP 20, so 2 mod 4), and both
 * implementations must agree on every one of them before anything is timed.
 * @module
 */
import { checksum } from '../../core/checksum.js'
import { Random } from '../../core/random.js'
import { timeOpsCtx, type BenchFigure } from '../lib/report.js'
import type { ResultTable, Suite } from '../lib/suite.js'

/** Buffer sizes measured, in bytes. */
export const CHECKSUM_SIZES = [20, 1460, 9000, 65535]
/** Where each range starts in its buffer: a TCP header in a pooled frame. */
const RANGE_OFF = 128 + 14 + 20
/** Buffers per size, cycled through (the loads are not all from one cache line set). */
const BUFFERS = 8
/** Bytes summed per timed call: enough that the timer's own cost does not show. */
const BYTES_PER_CALL = 512 * 1024

/** The byte-wise `sumBytes` before 2026-12-01 (16-bit words, unrolled by 8 bytes): the baseline. */
export function sumBytesBytewise(b: Uint8Array, off: number, len: number, sum = 0): number {
  let i = off
  const end = off + len
  const even = end - ((end - off) & 1)
  for (; i + 8 <= even; i += 8) {
    sum += ((b[i]! << 8) | b[i + 1]!) + ((b[i + 2]! << 8) | b[i + 3]!) + ((b[i + 4]! << 8) | b[i + 5]!) + ((b[i + 6]! << 8) | b[i + 7]!)
  }
  for (; i < even; i += 2) sum += (b[i]! << 8) | b[i + 1]!
  if (i < end) sum += b[i]! << 8
  return sum
}

/** The baseline `checksum` (the same fold as core's, over {@link sumBytesBytewise}). */
export function checksumBytewise(b: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = sumBytesBytewise(b, off, len, initial)
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536)
  return ~sum & 0xffff
}

/** One size's figures. */
export interface ChecksumRow {
  /** Range length. */
  bytes: number
  /** Median ns per call of the byte-wise baseline. */
  oldNs: number
  /** Median ns per call of core's `checksum`. */
  newNs: number
}

/** The checksum suite. */
export const checksumSuite: Suite = {
  id: 'checksum',
  title: 'Internet checksum (RFC 1071): word-at-a-time vs the byte-wise loop',
  async run(ctx) {
    const rng = new Random(0x1071)
    const rows: ChecksumRow[] = []
    const figures: BenchFigure[] = []
    for (let s = 0; s < CHECKSUM_SIZES.length; s++) {
      const size = CHECKSUM_SIZES[s]!
      const stride = Math.ceil((RANGE_OFF + size) / 2048) * 2048
      const slab = new ArrayBuffer(stride * BUFFERS)
      const bufs: Uint8Array[] = []
      for (let k = 0; k < BUFFERS; k++) bufs.push(rng.bytes(new Uint8Array(slab, k * stride, stride)))
      for (const b of bufs) {
        const want = checksumBytewise(b, RANGE_OFF, size)
        const got = checksum(b, RANGE_OFF, size)
        if (got !== want) throw new Error(`checksum suite: ${size} bytes: checksum ${got} but the byte-wise baseline gives ${want}`)
      }
      const ops = Math.max(BUFFERS, Math.ceil(BYTES_PER_CALL / size / BUFFERS) * BUFFERS)
      let sink = 0
      ctx.progress(s / CHECKSUM_SIZES.length, `${size} bytes, byte-wise`)
      const old = await timeOpsCtx(`${size} B byte-wise`, () => {
        for (let k = 0; k < ops; k++) sink += checksumBytewise(bufs[k % BUFFERS]!, RANGE_OFF, size)
      }, ops, ctx)
      ctx.progress((s + 0.5) / CHECKSUM_SIZES.length, `${size} bytes, word-wise`)
      const cur = await timeOpsCtx(`${size} B word-wise`, () => {
        for (let k = 0; k < ops; k++) sink += checksum(bufs[k % BUFFERS]!, RANGE_OFF, size)
      }, ops, ctx)
      // The sums are used, so no call can be dropped as dead code.
      if (sink < 0) throw new Error('unreachable')
      figures.push(old, cur)
      // Medians: on a shared machine the mean carries other processes' bursts.
      rows.push({ bytes: size, oldNs: old.p50, newNs: cur.p50 })
    }
    ctx.progress(1, 'done')
    const t: ResultTable = {
      title: 'Internet checksum: ns per buffer (median; checksum(b, off, len) with off = 2 mod 4), old and new side by side',
      columns: ['bytes', 'byte-wise ns', 'word-wise ns', 'speedup', 'byte-wise GB/s', 'word-wise GB/s'],
      rows: rows.map(r => [r.bytes, r.oldNs, r.newNs, `${(r.oldNs / r.newNs).toFixed(2)}x`, r.bytes / r.oldNs, r.bytes / r.newNs]),
      notes: [
        'byte-wise: the previous core/checksum.ts loop (16-bit words from byte loads, unrolled by 8 bytes), kept in benchmarks/suites/checksum.ts.',
        'word-wise: ranges of 64 bytes or more are summed as 32-bit words through a cached DataView (read little-endian, swapped back per block) (32-bit words ≡ hi + lo mod 0xffff), folded once; shorter ranges take the byte-wise loop.',
      ],
    }
    return { tables: [t], data: { rows, figures } }
  },
}
