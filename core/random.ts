/**
 * A small, fast, seedable PRNG (sfc32) for impairments and randomized tests, so a failing
 * run can be replayed from its printed seed. Not for cryptography: ISNs and connection
 * identifiers use `node:crypto`.
 * @module
 */

/** A seeded pseudo-random generator. */
export class Random {
  /** The seed this generator started from (print it in tests). */
  readonly seed: number
  private a: number
  private b: number
  private c: number
  private d: number

  /** Creates a generator; the same seed gives the same sequence on every platform. */
  constructor(seed: number) {
    this.seed = seed >>> 0
    this.a = 0x9e3779b9
    this.b = 0x243f6a88
    this.c = 0xb7e15162
    this.d = this.seed
    for (let i = 0; i < 15; i++) this.nextU32()
  }

  /** Next unsigned 32-bit integer. */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && this.next() < p
  }

  /** Fills `out` with random bytes and returns it. */
  bytes(out: Uint8Array): Uint8Array {
    for (let i = 0; i < out.length; i++) out[i] = this.nextU32() & 0xff
    return out
  }
}

/** A fresh seed for a randomized test: `PATHSPLICE_SEED` if set (to replay a failure), else random. */
export function testSeed(): number {
  const env = process.env.PATHSPLICE_SEED
  if (env !== undefined && env !== '') return Number(env) >>> 0
  return (Math.random() * 4294967296) >>> 0
}
