import t from 'tap'
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { runBenchmarks } from '../../benchmarks/run.js'
import { FrameTemplate, CLIENT_IP, PROXY_A_IP } from '../../benchmarks/lib/proxy-rig.js'
import { checksum, pseudoHeaderSum } from '../../core/checksum.js'

// The Scout comparison suites in smoke mode (tiny loads; the shape of the output is
// checked, never the timings). Each suite also checks itself while it runs: bytes out =
// bytes in, no drops, every splice completed; a failure there rejects the run.
interface Table { title: string; columns: string[]; rows: (string | number)[][]; notes?: string[] }
const readJson = (f: string): { suite: string; quick: boolean; tables: Table[] } => JSON.parse(readFileSync(f, 'utf8'))
const positive = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v > 0
// Derived figures (differences of two timings) can come out negative from a 5-round smoke run.
const finite = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v)

t.test('scout-segment, splice-cost and memory run and write well-formed output', async t => {
  const out = t.testdir({})
  const ids = ['scout-segment', 'splice-cost', 'memory']
  const summary = await runBenchmarks({ quick: true, smoke: true, only: ids, out })
  t.same(summary.files.map(f => basename(f)).sort(), [
    'RESULTS.md', 'memory.json', 'scout-segment-speedup.svg', 'scout-segment.json',
    'splice-cost-seq-trace-fwd-fast-client.svg', 'splice-cost-seq-trace-fwd.svg', 'splice-cost-seq-trace-ipfwd.svg', 'splice-cost.json',
  ])

  const seg = readJson(`${out}/scout-segment.json`)
  t.equal(seg.quick, true)
  const [t2, tTrusted, t3] = seg.tables
  t.match(tTrusted!.title, /receive checksum offload/)
  t.equal(tTrusted!.rows.length, 6)
  t.equal(tTrusted!.notes!.filter(n => /^(MET|MISSED): with checksum offload/.test(n)).length, 4)
  t.match(t2!.title, /^Table II/)
  t.same(t2!.rows.map(r => r[0]), ['2-path', '1-path', 'FWD', 'IP/FWD', 'IP/FWD (shared path)', 'IP router'], 'the five Scout configurations and IP/FWD on the shared path, in order')
  for (const r of t2!.rows) {
    t.ok(finite(r[1]) && finite(r[5]), `${String(r[0])}: ns per 1-byte and 1460-byte segment`)
    t.match(String(r[3]), /^-?\d+\.\d\dx$/, 'a speedup')
    t.match(String(r[4]), /^[\d.]+ \([\d.]+x\)$/, "the paper's figure beside it")
  }
  t.equal(t2!.rows[0]![3], '1.00x', '2-path is the baseline')
  t.equal(t2!.notes!.filter(n => /^(MET|MISSED): /.test(n)).length, 5, 'every Table II target is judged')
  t.match(t3!.title, /^Table III/)
  t.equal(t3!.rows.length, 6)
  // Net figures (gross minus the harness' cost) can also go negative in a smoke run on a busy machine.
  for (const r of t3!.rows) for (const c of [1, 2, 3, 4, 5, 6]) t.ok(finite(r[c]), `${String(r[0])}: Mbyte/s column ${c}`)
  t.equal(t3!.rows[0]![7], '11.7 / 10.8 / 8.6')

  const sp = readJson(`${out}/splice-cost.json`)
  const [idle, busy] = sp.tables
  t.equal(idle!.rows.length, 3, 'FWD, IP/FWD, IP/FWD on the shared path')
  t.match(String(idle!.rows[2]![0]), /new shared path/)
  for (const r of idle!.rows) t.ok(positive(r[2]) && r[1] === 10, `${String(r[0])}: 10 idle splices timed`)
  t.equal(idle!.notes!.filter(n => /^(MET|MISSED): idle splice/.test(n)).length, 3)
  for (const r of busy!.rows) {
    t.equal(r[r.length - 1], 'yes', `${String(r[0])}: the busy transfer completed`)
    t.ok(positive(r[2]), 'bytes were held at the splice')
  }

  const mem = readJson(`${out}/memory.json`)
  const row = mem.tables[0]!.rows[0]!
  t.equal(row[0], 100)
  t.ok(positive(row[1]) && positive(row[3]) && positive(row[5]), 'bytes per connection unspliced, FWD, IP/FWD')
  // The shared path's share (a table row) is small beside the peers' baseline: a 100-connection smoke run can show noise of either sign.
  t.ok(finite(row[6]) && finite(row[7]), 'bytes per connection on the shared IP/FWD path')
  t.match(mem.tables[0]!.columns[6]!, /shared IP\/FWD/)
  t.equal(mem.tables[0]!.notes!.filter(n => /^(MET|MISSED): spliced state/.test(n)).length, 1)

  for (const f of ['scout-segment-speedup.svg', 'splice-cost-seq-trace-fwd.svg']) {
    const svg = readFileSync(`${out}/${f}`, 'utf8')
    t.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/, `${f} is an SVG`)
  }
  t.match(readFileSync(`${out}/splice-cost-seq-trace-fwd.svg`, 'utf8'), /<path|<circle|<rect/, 'the trace has marks')
  const md = readFileSync(`${out}/RESULTS.md`, 'utf8')
  t.match(md, /\*\*Table II: processing per TCP segment/)
  t.match(md, /\| IP\/FWD \| -?[\d.,]+ \| -?[\d.]+ \| -?[\d.]+x \| 24 \(2\.85x\) \|/)
  t.match(md, /!\[seq-trace-fwd\]\(splice-cost-seq-trace-fwd\.svg\)/)
})

t.test('frame templates keep a valid TCP checksum across seq/ack patches', async t => {
  const ends = { srcMac: new Uint8Array(6), dstMac: new Uint8Array(6), srcIp: CLIENT_IP, dstIp: PROXY_A_IP, srcPort: 40000, dstPort: 1080 }
  const f = new FrameTemplate(ends, 0xfffffff0, 7, 1460)
  const ok = (): boolean => checksum(f.bytes, 34, f.bytes.length - 34, pseudoHeaderSum(CLIENT_IP, PROXY_A_IP, 6, f.bytes.length - 34)) === 0
  t.ok(ok(), 'as built')
  for (const [s, a] of [[0x10, 0x12345678], [0xffffffff, 0], [0x80000000, 0xdeadbeef]] as const) {
    f.setSeq(s)
    f.setAck(a)
    t.ok(ok(), `seq ${s.toString(16)} ack ${a.toString(16)}`)
  }
})
