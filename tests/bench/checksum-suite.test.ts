import t from 'tap'
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { runBenchmarks } from '../../benchmarks/run.js'
import { checksumBytewise, CHECKSUM_SIZES, sumBytesBytewise } from '../../benchmarks/suites/checksum.js'
import { checksum, fold, sumBytes } from '../../core/checksum.js'
import { Random, testSeed } from '../../core/random.js'

// The checksum suite in smoke mode (the shape of its table, never the timings), and its
// byte-wise baseline: it must stay the previous implementation, equal to core's checksum.
interface Table { title: string; columns: string[]; rows: (string | number)[][] }

t.test('the checksum suite runs and reports old and new for every size', async t => {
  const out = t.testdir({})
  const summary = await runBenchmarks({ quick: true, smoke: true, only: ['checksum'], out })
  t.same(summary.files.map(f => basename(f)).sort(), ['RESULTS.md', 'checksum.json'])
  const json = JSON.parse(readFileSync(`${out}/checksum.json`, 'utf8')) as { tables: Table[] }
  const rows = json.tables[0]!.rows
  t.same(rows.map(r => r[0]), CHECKSUM_SIZES)
  for (const r of rows) {
    t.ok(typeof r[1] === 'number' && r[1] > 0 && typeof r[2] === 'number' && r[2] > 0, `${String(r[0])} B: positive ns, old and new`)
    t.match(String(r[3]), /^\d+\.\d\dx$/)
  }
  t.match(readFileSync(`${out}/RESULTS.md`, 'utf8'), /\| bytes \| byte-wise ns \| word-wise ns \| speedup \|/)
})

t.test('the baseline agrees with core on random ranges', async t => {
  const seed = testSeed()
  t.comment(`seed=${seed}`)
  const rng = new Random(seed)
  let mismatches = 0
  for (let n = 0; n < 300; n++) {
    const len = rng.int(0, 3000)
    const off = rng.int(0, 5)
    const b = rng.bytes(new Uint8Array(off + len))
    const initial = rng.int(0, 0x3ffff)
    if (checksumBytewise(b, off, len, initial) !== checksum(b, off, len, initial)) mismatches++
    if (fold(sumBytesBytewise(b, off, len, initial)) !== fold(sumBytes(b, off, len, initial))) mismatches++
  }
  t.equal(mismatches, 0)
})
