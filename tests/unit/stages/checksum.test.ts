// core/checksum.ts against a byte-at-a-time reference of RFC 1071, and the incremental
// update of RFC 1624 against full recomputation: random headers, every field, odd
// lengths and offsets, 0x0000/0xFFFF edge cases, and one field swept through all 65536 values.
import t from 'tap'
import { checksum, csumUpdate16, csumUpdate32, fold, pseudoHeaderSum, sumBytes } from '../../../core/checksum.js'
import { get16, get32, set16, set32 } from '../../../core/bytes.js'
import { Random, testSeed } from '../../../core/random.js'

const seed = testSeed()
t.comment(`seed=${seed}`)
const rng = new Random(seed)

/** RFC 1071 §4.1, literally: 16-bit words, end-around carry after every addition. */
function refChecksum(b: Uint8Array, off: number, len: number): number {
  let sum = 0
  for (let i = 0; i < len; i += 2) {
    const w = (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0)
    sum += w
    if (sum > 0xffff) sum = (sum & 0xffff) + 1
  }
  return ~sum & 0xffff
}

t.test('checksum equals the RFC 1071 reference for random data, odd lengths and offsets', async t => {
  let mismatches = 0
  for (let n = 0; n < 3000; n++) {
    const len = rng.int(0, 300)
    const off = rng.int(0, 7)
    const b = rng.bytes(new Uint8Array(off + len + 3))
    if (checksum(b, off, len) !== refChecksum(b, off, len)) mismatches++
  }
  t.equal(mismatches, 0)
  for (const len of [0, 1, 2, 3, 7, 8, 9, 1499, 1500, 65535]) {
    const ff = new Uint8Array(len).fill(0xff)
    const zz = new Uint8Array(len)
    t.equal(checksum(ff, 0, len), refChecksum(ff, 0, len), `all 0xff, ${len} bytes`)
    t.equal(checksum(zz, 0, len), 0xffff, `all zero, ${len} bytes: checksum 0xffff`)
  }
})

t.test('a filled-in checksum verifies (sum folds to 0xffff) and the initial sum chains', async t => {
  for (let n = 0; n < 500; n++) {
    const len = rng.int(2, 200) & ~1
    const b = rng.bytes(new Uint8Array(len))
    const at = rng.int(0, len / 2 - 1) * 2
    set16(b, at, 0)
    set16(b, at, checksum(b, 0, len))
    t.equal(fold(sumBytes(b, 0, len)), 0xffff)
    const cut = rng.int(0, len / 2) * 2
    t.equal(checksum(b, cut, len - cut, sumBytes(b, 0, cut)), checksum(b, 0, len), 'sums over even splits chain')
  }
})

t.test('fold handles sums far beyond 32 bits', async t => {
  t.equal(fold(0), 0)
  t.equal(fold(0xffff), 0xffff)
  t.equal(fold(0x10000), 1)
  t.equal(fold(0x1fffe), 0xffff)
  t.equal(fold(2 ** 40 + 5), fold((2 ** 40 % 65535) + 5))
  const big = new Uint8Array(65535 * 2).fill(0xff)
  t.equal(checksum(big, 0, big.length), refChecksum(big, 0, big.length))
})

t.test('pseudoHeaderSum matches summing the 12-byte pseudo-header', async t => {
  for (let n = 0; n < 500; n++) {
    const src = rng.nextU32()
    const dst = rng.nextU32()
    const proto = rng.int(0, 255)
    const len = rng.int(0, 65535)
    const ph = new Uint8Array(12)
    set32(ph, 0, src)
    set32(ph, 4, dst)
    ph[9] = proto
    set16(ph, 10, len)
    t.equal(fold(pseudoHeaderSum(src, dst, proto, len)), fold(sumBytes(ph, 0, 12)))
  }
})

/** A random header of `len` bytes (even) with a valid checksum at `csumAt`. */
function randomHeader(len: number, csumAt: number): Uint8Array {
  const b = rng.bytes(new Uint8Array(len))
  set16(b, csumAt, 0)
  set16(b, csumAt, checksum(b, 0, len))
  return b
}

/** True when every word of `b` except the checksum field is zero: RFC 1624's degenerate case. */
function allZeroBut(b: Uint8Array, csumAt: number): boolean {
  for (let i = 0; i < b.length; i++) if (i !== csumAt && i !== csumAt + 1 && b[i] !== 0) return false
  return true
}

function edgeWord(): number {
  const r = rng.int(0, 5)
  return r === 0 ? 0 : r === 1 ? 0xffff : r === 2 ? 0xff00 : r === 3 ? 0x00ff : rng.int(0, 0xffff)
}

t.test('csumUpdate16 equals full recomputation for every 16-bit field of random headers', async t => {
  let bad = 0
  let cases = 0
  let degenerate = 0
  for (let n = 0; n < 400; n++) {
    const len = rng.int(2, 30) * 2
    const csumAt = rng.int(0, len / 2 - 1) * 2
    const b = randomHeader(len, csumAt)
    for (let f = 0; f < len; f += 2) {
      if (f === csumAt) continue
      const old = get16(b, f)
      const next = edgeWord()
      const hc = get16(b, csumAt)
      set16(b, f, next)
      const inc = csumUpdate16(hc, old, next)
      set16(b, csumAt, 0)
      const full = checksum(b, 0, len)
      set16(b, csumAt, inc)
      cases++
      if (allZeroBut(b, csumAt)) {
        // Documented degenerate case: 0x0000 instead of 0xffff.
        degenerate++
        if (inc !== 0 || full !== 0xffff) bad++
        continue
      }
      if (inc !== full) bad++
      // The updated header must verify.
      if (fold(sumBytes(b, 0, len)) !== 0xffff) bad++
    }
  }
  t.equal(bad, 0, `${cases} field changes (${degenerate} all-zero cases)`)
  // The degenerate case, pinned: a 2-word buffer whose data word becomes zero.
  const b = Uint8Array.of(0x67, 0xa8, 0, 0)
  set16(b, 2, checksum(b, 0, 4))
  t.equal(csumUpdate16(get16(b, 2), 0x67a8, 0), 0x0000, 'all-zero data: the update yields 0x0000 ...')
  t.equal(checksum(new Uint8Array(4), 0, 4), 0xffff, '... where a full computation yields 0xffff')
})

t.test('csumUpdate32 equals full recomputation for every 32-bit field (addresses, seq numbers)', async t => {
  let bad = 0
  for (let n = 0; n < 400; n++) {
    const len = rng.int(4, 30) * 2
    const csumAt = rng.int(0, len / 2 - 1) * 2
    const b = randomHeader(len, csumAt)
    for (let f = 0; f + 4 <= len; f += 2) {
      if (f === csumAt || f + 2 === csumAt) continue
      const old = get32(b, f)
      const next = rng.chance(0.2) ? [0, 0xffffffff, 0xffff0000, 0x0000ffff][rng.int(0, 3)]! : rng.nextU32()
      const hc = get16(b, csumAt)
      set32(b, f, next)
      const inc = csumUpdate32(hc, old, next)
      set16(b, csumAt, 0)
      const full = checksum(b, 0, len)
      set16(b, csumAt, inc)
      if (allZeroBut(b, csumAt) ? inc !== 0 : inc !== full) bad++
    }
  }
  t.equal(bad, 0)
})

t.test('one field swept through all 65536 values, from headers whose checksum is 0x0000 and 0xffff', async t => {
  // Header whose checksum field is 0x0000: choose the filler word so the data sums to 0xffff.
  const withZero = new Uint8Array(20)
  rng.bytes(withZero)
  set16(withZero, 10, 0)
  set16(withZero, 18, 0)
  set16(withZero, 18, ~fold(sumBytes(withZero, 0, 20)) & 0xffff)
  t.equal(checksum(withZero, 0, 20), 0, 'checksum 0x0000 case built')
  // Checksum 0xffff needs all-zero data; the field starts at zero and sweeps from there
  // (the sweep's v = 0 is the degenerate case and is checked as documented).
  const withFfff = new Uint8Array(20)
  t.equal(checksum(withFfff, 0, 20), 0xffff, 'checksum 0xffff case built')
  for (const [name, base] of [['0x0000', withZero], ['0xffff', withFfff]] as const) {
    let bad = 0
    for (let v = 0; v <= 0xffff; v++) {
      const b = Uint8Array.from(base)
      const hc = checksum(b, 0, 20)
      const old = get16(b, 8)
      set16(b, 8, v)
      const inc = csumUpdate16(hc, old, v)
      if (allZeroBut(b, 10)) {
        if (inc !== 0) bad++
        continue
      }
      if (inc !== checksum(b, 0, 20)) bad++
      // And back again (unless going back reaches the all-zero case).
      if (!allZeroBut(base, 10) && csumUpdate16(inc, v, old) !== hc) bad++
    }
    t.equal(bad, 0, `from a ${name} checksum, every new value`)
  }
})

t.test('IPv4 TTL decrement: RFC 1624 update over every TTL and protocol', async t => {
  const h = Uint8Array.of(0x45, 0, 0, 84, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2)
  let bad = 0
  for (let ttl = 1; ttl <= 255; ttl++) {
    for (let proto = 0; proto <= 255; proto++) {
      h[8] = ttl
      h[9] = proto
      set16(h, 10, 0)
      set16(h, 10, checksum(h, 0, 20))
      const word = (ttl << 8) | proto
      const inc = csumUpdate16(get16(h, 10), word, word - 0x100)
      h[8] = ttl - 1
      set16(h, 10, 0)
      if (inc !== checksum(h, 0, 20)) bad++
    }
  }
  t.equal(bad, 0)
})
