// core/checksum.ts's word-at-a-time sum against a literal RFC 1071 reference: random
// buffers at random byte offsets inside shared ArrayBuffers (so 32-bit words are read at
// every alignment), odd and even range offsets, lengths 0..9000 (both sides of the
// byte-wise/word-wise threshold), random initial sums, chained sums, carries from all-0xff
// data past the 1 MiB block, switching between many buffers (the view cache), a
// SharedArrayBuffer, and ranges reaching outside the array.
import t from 'tap'
import { checksum, fold, sumBytes, transportChecksumOk } from '../../../core/checksum.js'
import { Random, testSeed } from '../../../core/random.js'

const seed = testSeed()
t.comment(`seed=${seed} (replay with PATHSPLICE_SEED=${seed})`)
const rng = new Random(seed)

/** Folds any non-negative integer below 2^53 to 16 bits (end-around carry), independently of core's fold. */
function refFold(x: number): number {
  while (x > 0xffff) x = (x % 65536) + Math.floor(x / 65536)
  return x
}

/** RFC 1071 §4.1, literally: 16-bit big-endian words, end-around carry after every addition. */
function refSum(b: Uint8Array, off: number, len: number, initial: number): number {
  let sum = refFold(initial)
  for (let i = 0; i < len; i += 2) {
    sum += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0)
    if (sum > 0xffff) sum = (sum & 0xffff) + 1
  }
  return sum
}

/** A random initial sum: zero, a pseudo-header-sized sum, or a large unfolded accumulator. */
function randomInitial(): number {
  const k = rng.int(0, 3)
  if (k === 0) return 0
  if (k === 1) return rng.int(0, 0x3ffff)
  if (k === 2) return rng.int(0, 0xffffffff)
  return rng.int(0, 2 ** 40)
}

t.test('sumBytes and checksum equal the reference: random data, offsets, lengths 0..9000, initial sums', async t => {
  // One ArrayBuffer holding many Uint8Arrays, as a pool slab does, plus stand-alone ones.
  const slab = new ArrayBuffer(64 * 1024)
  let mismatches = 0
  let cases = 0
  let wide = 0
  for (let n = 0; n < 2500; n++) {
    const len = rng.chance(0.3) ? rng.int(0, 200) : rng.int(0, 9000)
    const off = rng.int(0, 9)
    const size = off + len + rng.int(0, 9)
    const b = rng.chance(0.7) ? new Uint8Array(slab, rng.int(0, slab.byteLength - size), size) : new Uint8Array(size + 3).subarray(rng.int(0, 3))
    rng.bytes(b)
    const initial = randomInitial()
    const ref = refSum(b, off, len, initial)
    const got = sumBytes(b, off, len, initial)
    cases++
    if (len >= 64) wide++
    if (fold(got) !== ref || checksum(b, off, len, initial) !== (~ref & 0xffff)) {
      if (mismatches++ < 5) t.fail(`len=${len} off=${off} byteOffset=${b.byteOffset} initial=${initial}: sum ${fold(got)} want ${ref}`)
    }
    if (!Number.isSafeInteger(got)) {
      if (mismatches++ < 5) t.fail(`unfolded sum ${got} is not an exact integer`)
    }
  }
  t.equal(mismatches, 0, `${cases} random ranges (${wide} word-wise) agree with RFC 1071`)
  t.ok(wide > 1000 && wide < cases, 'both the byte-wise and the word-wise paths were exercised')
})

t.test('every length 0..200 at every offset 0..7 and byte offset 0..3', async t => {
  const buf = new ArrayBuffer(256)
  let mismatches = 0
  for (let bo = 0; bo < 4; bo++) {
    const b = rng.bytes(new Uint8Array(buf, bo, 240))
    for (let off = 0; off < 8; off++) {
      for (let len = 0; len <= 200; len++) {
        const initial = randomInitial()
        if (fold(sumBytes(b, off, len, initial)) !== refSum(b, off, len, initial)) mismatches++
      }
    }
  }
  t.equal(mismatches, 0)
})

t.test('chained sums over even splits equal the sum of the whole range', async t => {
  let mismatches = 0
  for (let n = 0; n < 500; n++) {
    const len = rng.int(0, 9000)
    const off = rng.int(0, 5)
    const b = rng.bytes(new Uint8Array(off + len))
    const cut = rng.int(0, len >> 1) * 2
    if (fold(sumBytes(b, off + cut, len - cut, sumBytes(b, off, cut))) !== refSum(b, off, len, 0)) mismatches++
  }
  t.equal(mismatches, 0)
})

t.test('zero data leaves the sum unchanged, nonzero data never sums to zero', async t => {
  const z = new Uint8Array(9100)
  for (const len of [0, 1, 63, 64, 65, 1460, 9000]) {
    for (const off of [0, 1, 2, 3]) {
      t.equal(sumBytes(z, off, len), 0, `zeros, len ${len}, off ${off}: sum 0`)
      t.equal(checksum(z, off, len), 0xffff, `zeros, len ${len}, off ${off}: checksum 0xffff`)
      t.equal(sumBytes(z, off, len, 12345), 12345, 'the initial sum passes through')
    }
  }
  // A single 0xff byte anywhere in a long zero range: the sum is nonzero.
  for (let n = 0; n < 200; n++) {
    const len = rng.int(64, 9000)
    const b = new Uint8Array(len)
    const at = rng.int(0, len - 1)
    b[at] = 0xff
    t.not(fold(sumBytes(b, 0, len)), 0)
    t.equal(fold(sumBytes(b, 0, len)), refSum(b, 0, len, 0))
  }
})

t.test('all-0xff data (every carry) at large lengths, past the 1 MiB block', async t => {
  for (const len of [64, 65, 1460, 9000, 65535, 65536, (1 << 20) - 2, (1 << 20) + 5, 3 * (1 << 20) + 3]) {
    for (const off of [0, 1, 2]) {
      const b = new Uint8Array(off + len).fill(0xff)
      const got = sumBytes(b, off, len, 0xffffffff)
      t.ok(Number.isSafeInteger(got), `len ${len}: exact`)
      t.equal(fold(got), refSum(b, off, len, 0xffffffff), `all 0xff, len ${len}, off ${off}`)
    }
  }
})

t.test('switching between many buffers (the view cache), including a SharedArrayBuffer', async t => {
  const bufs: Uint8Array[] = []
  for (let k = 0; k < 40; k++) {
    const backing = k % 5 === 0 ? new SharedArrayBuffer(3000) : new ArrayBuffer(3000)
    bufs.push(rng.bytes(new Uint8Array(backing, rng.int(0, 7), 2000)))
  }
  let mismatches = 0
  for (let n = 0; n < 2000; n++) {
    const b = bufs[rng.int(0, bufs.length - 1)]!
    const off = rng.int(0, 100)
    const len = rng.int(0, b.length - off)
    if (fold(sumBytes(b, off, len)) !== refSum(b, off, len, 0)) mismatches++
  }
  t.equal(mismatches, 0)
})

t.test('a range reaching outside the array counts the missing bytes as zero, never its neighbours, never throws', async t => {
  const slab = new ArrayBuffer(4096)
  rng.bytes(new Uint8Array(slab))
  for (const [start, size, len] of [[1000, 200, 300], [1001, 201, 1000], [4000, 96, 200], [3999, 97, 97 + 64]] as const) {
    const b = new Uint8Array(slab, start, size)
    const padded = new Uint8Array(len)
    padded.set(b)
    let got = -1
    t.doesNotThrow(() => {
      got = checksum(b, 0, len)
    })
    t.equal(got, ~refSum(padded, 0, len, 0) & 0xffff, `${len} bytes from a ${size}-byte array at ${start} of the slab: zero-padded`)
  }
})

t.test('transportChecksumOk agrees with checksum() over the pseudo-header, valid or corrupted', async t => {
  let disagree = 0
  let valid = 0
  for (let n = 0; n < 3000; n++) {
    const len = rng.chance(0.5) ? rng.int(20, 80) : rng.int(20, 3000)
    const off = rng.int(0, 6)
    const b = rng.bytes(new Uint8Array(off + len + rng.int(0, 4)))
    const src = rng.nextU32()
    const dst = rng.nextU32()
    const proto = rng.chance(0.5) ? 6 : 17
    // Make about half of them valid: fill the checksum field (bytes 16-17) correctly.
    if (rng.chance(0.5)) {
      b[off + 16] = 0
      b[off + 17] = 0
      const c = checksum(b, off, len, (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len)
      b[off + 16] = c >>> 8
      b[off + 17] = c & 0xff
      if (rng.chance(0.3)) b[off + rng.int(0, len - 1)]! ^= 1 << rng.int(0, 7)
    }
    const want = checksum(b, off, len, (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len) === 0
    if (want) valid++
    // Addresses as uint32 and as int32 (the fast path passes int32).
    if (transportChecksumOk(b, off, len, src, dst, proto) !== want || transportChecksumOk(b, off, len, src | 0, dst | 0, proto) !== want) disagree++
  }
  t.equal(disagree, 0)
  // Valid: half are filled in, 30% of those then corrupted, so ~1050 of 3000 (sd ~26);
  // 700 either way is over 13 sd away.
  t.ok(valid >= 700 && 3000 - valid >= 700, `both outcomes exercised (${valid} valid, ${3000 - valid} not)`)
})
