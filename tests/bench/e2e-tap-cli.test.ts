// benchmarks/e2e-tap.ts's command line: --help, and bad flags refused before any namespace
// is created (exit 2, the reason named). The measurement itself needs root and minutes; it
// is run by hand (benchmarks/results/*/e2e-tap.md), not here.
import t from 'tap'
import { execFile } from 'node:child_process'

const LOADER = './node_modules/@tapjs/typescript/dist/esm/import.mjs'
/** Runs the script (the runs start at once: each spends seconds compiling TypeScript). */
function e2e(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, ['--import', LOADER, 'benchmarks/e2e-tap.ts', ...args], { encoding: 'utf8', timeout: 60_000 }, (e, out, err) => {
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : null, out, err })
    })
  })
}
const runs = { help: e2e('--help'), only: e2e('--only', 'fwd,bogus'), secs: e2e('--seconds', '0'), unknown: e2e('--frobnicate') }

t.test('--help prints the usage and exits 0', async t => {
  const r = await runs.help
  t.equal(r.code, 0)
  t.match(r.out, /Usage: node dist\/benchmarks\/e2e-tap\.js/)
  t.match(r.out, /--only <list>/)
  t.match(r.out, /kernel-forward, node-pipe, c-bridge, ip-router, 2-path, 1-path, fwd, ipfwd/)
})

t.test('bad flags exit 2 with the reason, before anything starts', async t => {
  const only = await runs.only
  t.equal(only.code, 2)
  t.match(only.err, /unknown configuration\(s\) bogus in --only; choose from kernel-forward/)
  const secs = await runs.secs
  t.equal(secs.code, 2)
  t.match(secs.err, /--seconds must be an integer >= 1, got '0'/)
  const unknown = await runs.unknown
  t.equal(unknown.code, 2)
  t.match(unknown.err, /Unknown option '--frobnicate'/)
  t.notMatch(only.out + secs.out + unknown.out, /iperf3|Gbit/, 'nothing measured')
})
