import t from 'tap'
import { Random, testSeed } from '../../../core/random.js'
import { MAX_WSCALE, parseOptions, TcpOptions, writeSackOption, writeSynOptions, writeTsOption } from '../../../stages/tcp/options.js'

function parse(bytes: number[]): TcpOptions {
  const o = new TcpOptions()
  parseOptions(Uint8Array.from(bytes), 0, bytes.length, o)
  return o
}

t.test('well-formed options parse', async t => {
  const o = parse([2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 5, 10, 0, 0, 0, 10, 0, 0, 0, 20, 0])
  t.match(o, { mss: 1460, wscale: 7, sackPermitted: true, hasTs: true, tsVal: 1, tsEcr: 2, sackCount: 1, problem: null })
  t.same([...o.sack.subarray(0, 2)], [10, 20])
})

t.test('unknown options are skipped by their length; EOL ends the list', async t => {
  const o = parse([99, 4, 1, 2, 2, 4, 1, 0, 0, 2, 4, 9, 9])
  t.equal(o.mss, 256)
  t.equal(o.problem, null)
})

t.test('bad lengths: zero, one, truncated, overlong, wrong per kind', async t => {
  t.equal(parse([2, 0, 1, 1]).problem, 'bad-option-length', 'length 0 stops parsing')
  t.equal(parse([2, 1]).problem, 'bad-option-length', 'length 1')
  t.equal(parse([2]).problem, 'truncated-option', 'kind without a length byte')
  t.equal(parse([2, 4, 5]).problem, 'truncated-option', 'option longer than the list')
  const wrongMss = parse([2, 3, 5, 3, 3, 7])
  t.equal(wrongMss.mss, -1)
  t.equal(wrongMss.wscale, 7, 'parsing continues after a known option with the wrong length')
  t.equal(wrongMss.problem, 'bad-option-length')
  t.equal(parse([8, 6, 0, 0, 0, 0]).hasTs, false, 'TS with length 6 ignored')
  t.equal(parse([5, 6, 0, 0, 0, 0]).sackCount, 0, 'SACK of 6 bytes ignored')
  t.equal(parse([5, 2]).sackCount, 0, 'SACK with no block ignored')
  t.equal(parse([4, 3, 0]).sackPermitted, false)
  t.equal(parse([3, 4, 7, 0]).wscale, -1)
})

t.test('window scale above 14 is capped (RFC 7323 §2.3)', async t => {
  const o = parse([3, 3, 15])
  t.equal(o.wscale, MAX_WSCALE)
  t.equal(o.problem, 'wscale-capped')
})

t.test('random option bytes never throw or read past the end', async t => {
  const seed = testSeed()
  t.comment(`seed=${seed}`)
  const r = new Random(seed)
  const o = new TcpOptions()
  for (let i = 0; i < 20000; i++) {
    const len = r.int(0, 40)
    const buf = new Uint8Array(64).fill(0xaa)
    r.bytes(buf.subarray(8, 8 + len))
    // A sentinel after `end` must never be interpreted: poison it with a valid MSS.
    buf.set([2, 4, 0xff, 0xff], 8 + len)
    parseOptions(buf, 8, 8 + len, o)
    if (o.mss === 0xffff && !hasMssInside(buf, 8, 8 + len)) t.fail(`read past the end (seed ${seed}, case ${i})`)
  }
  t.pass('20000 random option lists parsed')
})

function hasMssInside(b: Uint8Array, off: number, end: number): boolean {
  for (let i = off; i + 3 < end; i++) if (b[i] === 2 && b[i + 1] === 4 && b[i + 2] === 0xff && b[i + 3] === 0xff) return true
  return false
}

t.test('writers produce what the parser reads', async t => {
  const b = new Uint8Array(60)
  let n = writeSynOptions(b, 0, { mss: 1400, wscale: 9, sackPermitted: true, ts: true, tsVal: 5, tsEcr: 6 })
  t.equal(n, 20)
  let o = new TcpOptions()
  parseOptions(b, 0, n, o)
  t.match(o, { mss: 1400, wscale: 9, sackPermitted: true, hasTs: true, tsVal: 5, tsEcr: 6 })
  n = writeSynOptions(b, 0, { mss: 536, wscale: -1, sackPermitted: true, ts: false, tsVal: 0, tsEcr: 0 })
  t.equal(n % 4, 0)
  o = new TcpOptions()
  parseOptions(b, 0, n, o)
  t.match(o, { mss: 536, wscale: -1, sackPermitted: true, hasTs: false })
  n = writeSynOptions(b, 0, { mss: 536, wscale: 0, sackPermitted: false, ts: true, tsVal: 1, tsEcr: 0 })
  parseOptions(b, 0, n, o)
  t.match(o, { wscale: 0, sackPermitted: false, hasTs: true })
  n = writeTsOption(b, 0, 0xdeadbeef, 7)
  n += writeSackOption(b, n, Uint32Array.of(1, 2, 3, 4), 2)
  parseOptions(b, 0, n, o)
  t.match(o, { hasTs: true, tsVal: 0xdeadbeef, tsEcr: 7, sackCount: 2 })
  t.same([...o.sack.subarray(0, 4)], [1, 2, 3, 4])
})
